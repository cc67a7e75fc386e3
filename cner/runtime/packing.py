"""oneDNN-packed weights for the linear layers of an uncompiled bf16 encoder on CPU.

`torch.nn.functional.linear` on bf16 CPU tensors hands oneDNN a plain weight matrix on every
call, which re-lays it out for its kernels each time. Packing each weight once, as
TorchInductor's ``freezing`` does for compiled models, made uncompiled bert-base annotation
10-15% faster here (1,519-1,580 -> 1,683-1,815 chars/s on 200 MSRA sentences, interleaved in
one process); the small 256-wide shape did not change measurably. The packed copy is extra
memory (one more copy of the linear weights); the module's parameters stay as they are.

The packing ops are PyTorch internals (``torch.ops.mkldnn``, used by TorchInductor), so every
layer is checked against ``F.linear`` once, and anything missing or different leaves the
layer unpacked.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# The packed op's rows are padded up to a multiple of this. oneDNN builds a kernel for each
# new input shape, and a tagger's batches (rows = batch x padded length) rarely repeat one:
# 32-text `Tagger.pipe` calls on unseen MSRA sentences took 4.0 s per 1,000 sentences against
# 2.8 s for the same shapes seen before (small shape, 1 thread); with the rows padded to a
# multiple of 32, 3.0 s. A few dozen row counts per layer shape stay in oneDNN's cache.
ROW_BUCKET = 32


def _packed_forward(layer: nn.Linear) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A forward for ``layer`` that runs on a packed copy of its weight, or ``None`` when the
    oneDNN ops are unavailable or do not reproduce ``F.linear`` on a probe input."""
    try:
        ops = torch.ops.mkldnn
        weight = ops._reorder_linear_weight(layer.weight.detach(), None)
        bias = None if layer.bias is None else layer.bias.detach()
        out_features = layer.out_features

        def forward(x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, x.size(-1))  # shape: (N, in_features)
            rows = flat.size(0)
            padded = -(-rows // ROW_BUCKET) * ROW_BUCKET
            if padded != rows:
                flat = nn.functional.pad(flat, (0, 0, 0, padded - rows))  # shape: (N', in)
            y = ops._linear_pointwise(flat, weight, bias, "none", [], "")  # shape: (N', out)
            return y[:rows].reshape(*x.shape[:-1], out_features)

        probe = torch.randn(3, 5, layer.in_features, generator=torch.Generator().manual_seed(0)
                            ).to(layer.weight.dtype)
        expected = nn.functional.linear(probe, layer.weight, layer.bias).float()
        if not torch.allclose(forward(probe).float(), expected, rtol=2e-2, atol=2e-2):
            return None
        return forward
    except (RuntimeError, AttributeError, NotImplementedError):
        return None


@torch.no_grad()
def pack_linear_layers(module: nn.Module) -> Callable[[], None]:
    """Run every bf16 CPU ``nn.Linear`` in ``module`` on oneDNN-packed weights (inference
    only: later changes to the weights are not seen). Returns a function that undoes it."""
    if not torch.backends.mkldnn.is_available():
        return lambda: None
    packed = []
    for layer in module.modules():
        if (isinstance(layer, nn.Linear) and layer.weight.dtype == torch.bfloat16
                and layer.weight.device.type == "cpu"):
            forward = _packed_forward(layer)
            if forward is not None:
                layer.forward = forward
                packed.append(layer)

    def undo() -> None:
        for layer in packed:
            del layer.forward  # the class's forward shows through again
        packed.clear()
    return undo
