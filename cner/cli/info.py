"""`cner info`: the versions, hardware and settings a run depends on, for bug reports.

Importing this module imports click only; torch loads when the command runs, so that
`cner --help` and argument errors stay fast.
"""
from __future__ import annotations

import os
import platform

import click

# CPU flags (as /proc/cpuinfo spells them) that decide which kernels and precisions run fast.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                "amx_int8")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_info() -> dict[str, object]:
    """The CPU's model name and which of `CPU_FEATURES` it has (Linux: /proc/cpuinfo)."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model is not None and flags:
                    break
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine() or "unknown",
            "features": {name: name in flags for name in CPU_FEATURES} if flags else None}


def collect() -> dict[str, object]:
    """Everything `cner info` reports, as a JSON-ready dict."""
    import torch

    from cner.config import CORPORA_ENV, corpora_root
    from cner.runtime.devices import cpu_has_bf16, resolve_device, resolve_precision

    device = resolve_device("auto")
    gpus = [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        capability = None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    root = corpora_root()
    return {
        "cner": _version("cner"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "cpu": {**cpu_info(), "torch_capability": capability, "cpus_usable": cpus,
                "onednn_bf16": cpu_has_bf16()},
        "torch_threads": torch.get_num_threads(),
        "gpu": gpus or None,
        "device_auto": str(device),
        "precision_auto": resolve_precision("auto", device),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"),
        "corpora_root": {"path": os.path.abspath(root), "exists": root.is_dir(),
                         "from": CORPORA_ENV if os.environ.get(CORPORA_ENV, "").strip()
                         else "default"},
    }


def format_info(info: dict) -> str:
    cpu = info["cpu"]
    features = cpu["features"]
    if features is None:
        feature_text = "unknown (no /proc/cpuinfo)"
    else:
        feature_text = ", ".join(f"{name} {'yes' if has else 'no'}"
                                 for name, has in features.items())
    root = info["corpora_root"]
    rows = [
        ("cner", info["cner"] or "not installed"),
        ("python", f"{info['python']} ({info['platform']})"),
        ("torch", info["torch"]),
        ("transformers", info["transformers"] or "not installed"),
        ("cpu", cpu["model"]),
        ("cpu features", feature_text),
        ("torch cpu kernels", cpu["torch_capability"] or "unknown"),
        ("cpus usable", cpu["cpus_usable"]),
        ("torch threads", info["torch_threads"]),
        ("gpu", ", ".join(info["gpu"]) if info["gpu"] else "none"),
        ("device auto", info["device_auto"]),
        ("precision auto", info["precision_auto"]),
        ("HF_HUB_OFFLINE", info["HF_HUB_OFFLINE"] if info["HF_HUB_OFFLINE"] is not None
         else "unset"),
        ("corpora root", f"{root['path']} (from {root['from']}; "
                         f"{'exists' if root['exists'] else 'missing'})"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in rows)


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_command(as_json: bool) -> None:
    """Print the versions of cner, Python, torch and transformers, the CPU and its features
    (AVX2, AVX-512 bf16, AMX), the precision `auto` picks, torch threads, the GPU, HF_HUB_OFFLINE
    and the corpora root ($CNER_CORPORA): what a bug report or a benchmark needs.

    \b
    Example:
      cner info
      cner info --json > machine.json
    """
    import json

    info = collect()
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
    else:
        click.echo(format_info(info))
