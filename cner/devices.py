"""Device and numeric precision choices shared by training and inference."""
from __future__ import annotations

import torch

from cner.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device={name} but no CUDA GPU is available; use auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"training.precision must be auto, fp32, bf16 or fp16, found {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("training.precision=fp16 needs a GPU; use bf16 or fp32 on the CPU")
    return name


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
