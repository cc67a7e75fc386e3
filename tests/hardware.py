"""Skip markers for tests of hardware-dependent paths: each path is tested where the machine
has what it needs and skipped, with the reason, where it does not.

The conditions are read through their modules (``devices.cpu_has_bf16()``, not a copy imported
by name), so a plugin that patches them before the test modules are collected simulates other
hardware, e.g. an AVX2-only CPU::

    # /tmp/avx2.py
    import cner.runtime.devices
    cner.runtime.devices.cpu_has_bf16 = lambda: False

    PYTHONPATH=/tmp python -m pytest -p avx2 -rs tests/...
"""
from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch

from cner.runtime import devices


def cpu_bf16() -> bool:
    """oneDNN runs bf16 on this CPU (AVX-512 BW/VL/DQ or AVX-NE-CONVERT; not AVX2 only)."""
    return devices.cpu_has_bf16()


def onednn_bf16_packing() -> bool:
    """oneDNN can pack bf16 linear weights (``torch.ops.mkldnn._reorder_linear_weight``): a
    oneDNN build and a CPU where oneDNN has bf16 kernels. The CPU flags are also read where
    the kernel lists them, so that a CPU without them skips even if PyTorch said otherwise."""
    if not torch.backends.mkldnn.is_available() or not cpu_bf16():
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                          if line.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is None:  # not Linux x86: PyTorch's own check above is all there is
        return True
    return ({"avx512bw", "avx512vl", "avx512dq"} <= set(flags)) or "avx_ne_convert" in flags


def cxx_compiler() -> str | None:
    """The C++ compiler TorchInductor would use on CPU (``$CXX`` or g++), if it is on PATH."""
    try:
        from torch._inductor import config

        candidates = [c for c in config.cpp.cxx if c]
    except (ImportError, AttributeError):
        candidates = []
    candidates = candidates or [os.environ.get("CXX") or
                                ("clang++" if sys.platform == "darwin" else "g++")]
    return next((found for c in candidates if (found := shutil.which(c))), None)


needs_bf16 = pytest.mark.skipif(
    not cpu_bf16(), reason="bf16 on CPU needs oneDNN bf16 kernels (AVX-512 BW/VL/DQ, "
    "AVX-NE-CONVERT or AMX); this CPU has none (cner.runtime.devices.cpu_has_bf16() is False)")

needs_bf16_packing = pytest.mark.skipif(
    not onednn_bf16_packing(), reason="oneDNN bf16 weight packing needs a oneDNN build of "
    "PyTorch and a CPU with avx512bw/avx512vl/avx512dq or avx_ne_convert")

needs_compiler = pytest.mark.skipif(
    cxx_compiler() is None, reason="TorchInductor (compile=True / --compile) needs a C++ "
    "compiler on CPU ($CXX or g++ on PATH); none found")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
