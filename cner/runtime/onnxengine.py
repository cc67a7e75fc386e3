"""The onnx backend: a tagger's emissions from its ONNX export, run by onnxruntime.

`OnnxEngine` is an `Engine` whose `emissions` call an onnxruntime session (CPU execution
provider, fp32) instead of the PyTorch encoder; the tagger it wraps keeps its CRF, tags and
scheme, so the predictor's windows, batching, CRF decoding, merging and offsets are the very
ones of the PyTorch backend. Made by `cner.runtime.engine.prepare_engine` with
``backend="onnx"``; the file comes from `cner.runtime.onnxexport.find_onnx`.

onnxruntime's intra-op threads are set explicitly to torch's (`torch.get_num_threads`, what
``cner serve --threads``, Ray actors and the test suite set), and its inter-op pool to one:
the two libraries never run at once here (the CRF runs after the session returns).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cner.errors import ConfigError, ModelError
from cner.runtime.engine import Engine


def open_session(model: bytes | str | Path, *, threads: int):
    """An onnxruntime session on the CPU execution provider with ``threads`` intra-op
    threads (``model``: a file or the serialised model)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no shape notes on stderr
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options,
                                providers=["CPUExecutionProvider"])


class OnnxEngine(Engine):
    """A `TokenTagger` whose emissions come from an onnxruntime session (fp32, CPU)."""

    backend = "onnx"

    def __init__(self, model: nn.Module, session, inputs: list[str], path: Path) -> None:
        super().__init__(model, torch.device("cpu"), "fp32", inference_only=True)
        self.session = session
        self.inputs = list(inputs)
        self.path = path

    def emissions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Emission scores float32 ``(B, L, T)`` of collated inputs (`collate_inputs`)."""
        feed = {name: inputs[name].numpy() for name in self.inputs}  # each (B, L+2) int64
        scores = self.session.run(None, feed)[0]  # shape: (B, L, T)
        return torch.from_numpy(scores)

    def compile(self, warm_up) -> Engine:
        raise ModelError("the onnx backend is not compiled with TorchInductor (onnxruntime "
                         "optimises its graph itself); drop --compile")


def prepare_onnx_engine(model: nn.Module, onnx_file: str | Path, *, device: torch.device,
                        precision: str, compile: bool) -> OnnxEngine:
    """The `OnnxEngine` of ``model`` over its export ``onnx_file`` (checked against the model
    directory by `find_onnx` first). fp32 on the CPU only."""
    from cner.models.onnxgraph import graph_inputs
    from cner.runtime.onnxexport import meta_path, read_onnx_meta, require_onnx

    require_onnx()
    if device.type != "cpu":
        raise ConfigError(f"the onnx backend runs on the CPU (onnxruntime's CPU provider), "
                          f"not {device}; use --device cpu or the torch backend")
    if precision not in ("auto", "fp32"):
        raise ConfigError(f"the onnx backend runs fp32, not {precision}; use --precision "
                          "fp32 (or auto), or the torch backend")
    if compile:
        raise ConfigError("the onnx backend is not compiled with TorchInductor; drop "
                          "--compile, or use the torch backend")
    wanted = graph_inputs(model)
    inputs = read_onnx_meta(meta_path(onnx_file)).inputs
    if list(inputs) != wanted:
        raise ModelError(f"{onnx_file} takes {', '.join(inputs)} but the model needs "
                         f"{', '.join(wanted)}; export again with cner export --onnx")
    try:
        session = open_session(onnx_file, threads=torch.get_num_threads())
    except Exception as exc:  # onnxruntime raises its own types for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"onnxruntime cannot load {onnx_file}: {first[:300]}") from None
    if [i.name for i in session.get_inputs()] != wanted:
        raise ModelError(f"{onnx_file} does not take the inputs its description names; "
                         "export again with cner export --onnx")
    model.to("cpu").eval()
    return OnnxEngine(model, session, wanted, Path(onnx_file))
