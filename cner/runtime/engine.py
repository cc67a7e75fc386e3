"""The one place that turns a model and a device/precision/compile request into a ready engine.

Annotation (`Tagger`), evaluation (`cner evaluate`), classification (`Classifier`) and the
training loop's evaluations all run their model through an `Engine` made by `prepare_engine`,
so the same model on the same hardware computes the same way everywhere.

What an inference-only engine does to its model, in order (each step measured; README):

* moves it to the device, in eval mode;
* on CPU, transformer attention runs as plain matmul-softmax ("eager"): on 2 cores and MSRA
  sentences (~75 positions) it beat the CPU SDPA kernel by 3-5% eager and 5-8% compiled;
* in half precision, casts every part except the CRF once (the CRF's sums of exponentials
  stay in float32) rather than casting per call under autocast;
* compiled: TorchInductor with frozen weights (`cner.runtime.compile`), checked by a warm-up
  call so a failure is one clear error and leaves the engine as it was;
* else, bf16 on CPU: the encoder's linear layers on oneDNN-packed weights
  (`cner.runtime.packing`);
* a tagger whose encoder is a transformer with absolute position embeddings
  (`SHARED_ROW_ENCODERS`) runs several windows in one row (`shares_rows`,
  `cner.encoding.shared_rows`) instead of padding each to the batch's widest.

A training-time engine (``inference_only=False``) shares its model with the optimiser, so it
changes nothing in it: half precision is autocast only.

``backend="onnx"`` (`OnnxEngine` below): none of the above; a tagger's emissions come
from its ONNX export (`cner.runtime.onnxexport`) run by onnxruntime, fp32 on the CPU, and the
rest (windows, batching, CRF decoding, offsets) stays as it is. onnxruntime's intra-op
threads are torch's (`torch.get_num_threads`) and its inter-op pool one thread: the two
libraries never run at once (the CRF runs after the session returns).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import nn

from cner.errors import ConfigError, ModelError
from cner.runtime.devices import autocast, resolve_device, resolve_precision


BACKENDS = ("torch", "onnx")  # what computes a tagger's emissions (`Engine.backend`)
# Encoder types (``config.model_type``) whose output for a window is the same alone or
# sharing a row with others (position ids restart per window, a block-diagonal mask):
# absolute position embeddings looked up by ``position_ids``; checked in
# tests/test_shared_rows.py. RoBERTa's position ids are offset by its padding id, and
# relative or rotary positions work otherwise: those types pad.
SHARED_ROW_ENCODERS = frozenset({"bert", "electra", "albert"})


def is_transformer(encoder: object) -> bool:
    """Whether ``encoder`` is a Hugging Face transformer (not cner's BiLSTM)."""
    return hasattr(encoder, "set_attn_implementation")


def encoder_flops_per_position(model: nn.Module) -> float:
    """Matrix-product FLOPs of the encoder per position, without attention: 2 x its
    parameters outside the embeddings (bert-base: ~170 M)."""
    encoder = getattr(model, "encoder", model)
    named = encoder.named_parameters() if isinstance(encoder, nn.Module) else ()
    return 2.0 * sum(p.numel() for name, p in named if "embedding" not in name)


def batch_overhead_positions(model: nn.Module) -> float:
    """A model call's fixed cost in positions: ~2 GFLOP over the encoder's FLOPs per
    position; 8 to 512."""
    return float(min(512, max(8, 2e9 / max(1.0, encoder_flops_per_position(model)))))


# Matmul-softmax attention runs at about a third of the linear layers' FLOP rate (the mask,
# the softmax and small batched products): fitted on the small shape, where rows of 128
# shared by MSRA sentences (5% fewer positions than padded batches of 1,000 sorted ones) ran
# 5% slower, and 20% fewer positions on 32-sentence calls ran 14% faster.
ATTENTION_SLOWDOWN = 3.0


def attention_width(model: nn.Module) -> float:
    """The row width at which a position's attention costs what its other matrix products
    cost (`ATTENTION_SLOWDOWN` x 4 x hidden x layers FLOPs per position and width, against
    `encoder_flops_per_position`): the small shape ~510, bert-base ~1,500. ``inf`` for an
    encoder without attention."""
    config = getattr(getattr(model, "encoder", None), "config", None)
    hidden = getattr(config, "hidden_size", None)
    layers = getattr(config, "num_hidden_layers", None)
    if not is_transformer(getattr(model, "encoder", None)) or not hidden or not layers:
        return float("inf")
    return encoder_flops_per_position(model) / (ATTENTION_SLOWDOWN * 4 * hidden * layers)


class Engine:
    """A model ready to run: ``model``, ``device``, ``precision`` (``fp32``/``bf16``/
    ``fp16``), whether it is ``compiled``, and `autocast` for its calls. ``backend``: what
    computes a tagger's `emissions` (``torch``; ``onnx``: `OnnxEngine` below)."""

    backend = "torch"

    def __init__(self, model: nn.Module, device: torch.device, precision: str, *,
                 inference_only: bool) -> None:
        self.model = model
        self.device = device
        self.precision = precision
        self.inference_only = inference_only
        self.compiled = False
        self.shares_rows = False  # several windows to a model row (`shared_row_emissions`)
        self._unpack: Callable[[], None] = lambda: None  # undoes `_pack`

    def autocast(self) -> AbstractContextManager:
        return autocast(self.device, self.precision)

    def emissions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """A tagger's emission scores ``(B, L, T)`` (the engine's precision) of collated
        inputs (`cner.encoding.batching.collate_inputs`), already on the device."""
        with torch.inference_mode(), self.autocast():
            return self.model.emissions(**inputs)  # shape: (B, L, T)

    def shared_row_emissions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """A tagger's emission scores ``(R, W, T)`` at every position of shared rows
        (`cner.encoding.shared_rows.collate_shared_rows`), already on the device."""
        with torch.inference_mode(), self.autocast():
            return self.model.shared_row_emissions(**inputs)  # shape: (R, W, T)

    @property
    def mask_dtype(self) -> torch.dtype:
        """The dtype of the encoder's additive attention masks: its weights'."""
        return next(self.model.encoder.parameters()).dtype

    def _pack(self) -> None:
        from cner.runtime.packing import pack_linear_layers

        encoder = getattr(self.model, "encoder", None)
        if (self.inference_only and self.precision == "bf16" and self.device.type == "cpu"
                and encoder is not None):
            self._unpack = pack_linear_layers(encoder)

    def unpack(self) -> None:
        """Run the linear layers on their plain weights again."""
        self._unpack()
        self._unpack = lambda: None

    def compile(self, warm_up: Callable[[Engine], object]) -> Engine:
        """Compile the encoder with TorchInductor, in place, and call ``warm_up(self)`` so that
        it compiles now. A failure is a `ModelError` and leaves the engine as it was."""
        from cner.runtime.compile import compile_encoder

        if self.compiled:
            return self
        if not self.inference_only:
            raise ModelError("a training-time engine cannot be compiled")
        self.unpack()  # TorchInductor packs the weights itself
        restore = compile_encoder(self.model)
        self.compiled = True
        try:
            warm_up(self)
        except Exception as exc:  # TorchInductor raises many types (compiler missing, ...)
            restore()
            self.compiled = False
            self._pack()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"compiling the model failed ({first[:200]}); run without "
                             "--compile (TorchInductor needs a working C++ compiler on CPU)"
                             ) from None
        return self


def prepare_engine(model: nn.Module, *, device: str | torch.device = "cpu",
                   precision: str = "auto", compile: bool = False,
                   warm_up: Callable[[Engine], object] | None = None,
                   inference_only: bool = True, backend: str = "torch",
                   onnx_file: str | Path | None = None) -> Engine:
    """The model on ``device`` at ``precision`` (``auto``: bf16 where the CPU or GPU has it,
    else fp32), compiled when ``compile`` (``warm_up(engine)`` then runs one call to compile
    it now; required with ``compile``). See the module docstring for what is done when.
    ``backend="onnx"``: a tagger whose emissions onnxruntime computes from ``onnx_file`` (its
    export, checked by `cner.runtime.onnxexport.find_onnx`), fp32 on the CPU."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    if backend == "onnx":
        if onnx_file is None or not inference_only:
            raise ValueError("backend='onnx' is for inference, from an onnx_file")
        return prepare_onnx_engine(model, onnx_file, device=torch_device, precision=precision,
                                   compile=compile)
    precision = resolve_precision(precision, torch_device)
    engine = Engine(model, torch_device, precision, inference_only=inference_only)
    if not inference_only:
        return engine
    model.to(torch_device).eval()
    encoder = getattr(model, "encoder", None)
    if torch_device.type == "cpu" and is_transformer(encoder):
        encoder.set_attn_implementation("eager")
    engine.shares_rows = can_share_rows(model)
    if precision != "fp32":
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        for name, part in model.named_children():
            if name != "crf":  # the CRF's sums of exponentials stay in float32
                part.to(dtype)
    if compile:
        if warm_up is None:
            raise ValueError("compile=True needs a warm_up call")
        engine.compile(warm_up)
    else:
        engine._pack()
    return engine


def can_share_rows(model: nn.Module) -> bool:
    """Whether ``model`` is a tagger whose encoder gives a window the same output when it
    shares a row with other windows (`SHARED_ROW_ENCODERS`, attention that takes an additive
    4-D mask)."""
    encoder = getattr(model, "encoder", None)
    config = getattr(encoder, "config", None)
    return (hasattr(model, "shared_row_emissions") and is_transformer(encoder)
            and getattr(config, "model_type", None) in SHARED_ROW_ENCODERS
            and getattr(config, "_attn_implementation", None) in ("eager", "sdpa"))


# --- the onnx backend ------------------------------------------------------------------------

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
    from cner.runtime.onnxexport import meta_path, open_session, read_onnx_meta, require_onnx

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
