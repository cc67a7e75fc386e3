"""Device and numeric precision choices shared by training and inference."""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from cner.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str, *, option: str = "device") -> torch.device:
    """``auto`` (a CUDA GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``. ``option``
    names the setting in errors (``training.device`` in a config, ``--device`` on a command)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option}={name} is not a device; use auto, cpu, cuda or cuda:N"
                          ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}={name} but no CUDA GPU is available; use auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device, *, option: str = "precision") -> str:
    """``auto`` -> bf16 where the hardware has it (fp16 on older GPUs), else fp32."""
    if name not in PRECISIONS:
        raise ConfigError(f"{option} must be auto, fp32, bf16 or fp16, found {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(f"{option}=fp16 needs a GPU; use bf16 or fp32 on the CPU")
    return name


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU (AVX-512 bf16 / AMX; not on AVX2-only CPUs)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast to ``precision`` on ``device`` (disabled for fp32)."""
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
