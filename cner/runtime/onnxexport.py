"""``cner export --onnx``: a tagger's encoder and tag layer as one ONNX graph.

What is exported is `cner.models.onnxgraph.EmissionsGraph`: character ids, attention mask and
the model's feature ids (bigrams, jieba word boundaries, lexicon bits) in, per-character tag
scores (the CRF's emissions) out, float32, with dynamic ``batch`` and ``sequence`` axes.
Everything else stays in cner and is shared with the PyTorch backend: the features (jieba
runs in Python), windows, batching, CRF decoding (`cner.models.crf`) and offsets.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based exporter that
is torch's default and maintained path since 2.9 (the TorchScript exporter, ``dynamo=False``,
is deprecated); it needs ``onnxscript``. It writes opset 18 or later.

The file is written atomically (a temporary file renamed into place; a failure leaves
nothing behind) after onnxruntime has run it on check texts and its emissions matched
PyTorch's (fp32, `TOLERANCE`). Beside it, ``model.onnx.json`` (`OnnxMeta`) names its inputs
and opset and holds the SHA-256 of the ONNX file and of the weights it came from, so that
loading (`find_onnx`) refuses a stale or damaged export with a one-line error.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cner.errors import ConfigError, ModelError
from cner.fileio import atomic_write

ONNX_HINT = 'pip install "cner[onnx]"'
MIN_OPSET = 18  # the dynamo exporter's lowest
# Largest |ONNX - PyTorch| emission allowed at export, times the emissions' scale (max |e|,
# at least 1). fp32 on both sides: measured 6e-8 to 3e-7 on cner's tiny encoders.
TOLERANCE = 1e-4
EXPORTER = "torch.onnx.export(dynamo=True)"
# Check texts: different lengths, so the batch has padding; names and places.
CHECK_TEXTS = ("张伟在北京大学工作。", "上海", "李明去了广州市政府开会，然后回到南京路的家里。")
# The last example text of each trace attempt (`_dynamic_trace`): three different lengths.
TRACE_EXTRAS = (CHECK_TEXTS[-1], CHECK_TEXTS[-1] + "再去杭州。", CHECK_TEXTS[-1][:18])
LONGER = "王芳从深圳出发，经过长沙和武汉，最后到达北京，在清华大学参加了为期三天的学术会议。"


def require_onnx(what: str = "the onnx backend", *, export: bool = False) -> None:
    """A one-line `ConfigError` when the ``onnx`` extra (onnx, onnxruntime; onnxscript to
    export) is not installed."""
    names = ["onnx", "onnxruntime"] + (["onnxscript"] if export else [])
    missing = []
    for name in names:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"{what} needs {', '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: {ONNX_HINT}")


@dataclass(frozen=True)
class OnnxMeta:
    """``model.onnx.json``: what `find_onnx` checks before a session is opened."""

    inputs: list[str]  # the graph's inputs, in order (`cner.models.onnxgraph.graph_inputs`)
    output: str
    opset: int
    tags: list[str]
    onnx_sha256: str
    weights: dict[str, str]  # model-directory weight file -> SHA-256
    max_abs_diff: float  # |ONNX - PyTorch| emissions on `CHECK_TEXTS` at export (fp32)
    exporter: str
    torch: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)


def meta_path(onnx_file: str | Path) -> Path:
    from cner.models.modeldir import ONNX_META_SUFFIX

    onnx_file = Path(onnx_file)
    return onnx_file.with_name(onnx_file.name + ONNX_META_SUFFIX)


def default_onnx_file(model_dir: str | Path) -> Path:
    from cner.models.modeldir import ONNX_DIR, ONNX_MODEL

    return Path(model_dir) / ONNX_DIR / ONNX_MODEL


def output_file(model_dir: str | Path, output: str | Path | None) -> Path:
    """Where to write: ``output`` when it names a ``.onnx`` file, ``output/model.onnx`` when
    it names a folder, else ``MODEL_DIR/onnx/model.onnx``."""
    from cner.models.modeldir import ONNX_MODEL

    if output is None:
        return default_onnx_file(model_dir)
    output = Path(output)
    return output if output.suffix == ".onnx" else output / ONNX_MODEL


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def weight_checksums(model_dir: Path) -> dict[str, str]:
    """SHA-256 of each weight file of a model directory (the ONNX graph holds all of them)."""
    from cner.models.modeldir import HEAD_WEIGHTS, WEIGHTS

    return {name: sha256_file(model_dir / name) for name in (WEIGHTS, HEAD_WEIGHTS)
            if (model_dir / name).is_file()}


def check_inputs(featurizer, max_chars: int, texts: Sequence[str] = CHECK_TEXTS
                 ) -> dict[str, torch.Tensor]:
    """The collated inputs of ``texts`` (each cut to ``max_chars``), one window each."""
    from cner.encoding.batching import collate_inputs

    windows = []
    for text in texts:
        feats = featurizer.features(text)
        windows.append(featurizer.window(feats, 0, min(len(text), max_chars)))
    return collate_inputs(windows, featurizer)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress lines (stdout), warnings and log notes (torchvision absent)
    silenced: `export_onnx` reports what matters."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _error_line(exc: Exception) -> str:
    """The line of an exporter error that says what went wrong (its "Exception summary")."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    summary = [line for line in lines if line.startswith("<class ")]
    return ((summary or lines or [type(exc).__name__])[0])[:300]


def _trace(graph: torch.nn.Module, args: tuple[torch.Tensor, ...], opset: int | None) -> bytes:
    """The serialised ONNX model of ``graph`` called on ``args`` (dynamic batch and sequence
    axes on every input)."""
    from cner.models.onnxgraph import ID_INPUTS, OUTPUT

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: sequence}
    # forward(input_ids, attention_mask, *features): the features are one nested tuple.
    features = args[len(ID_INPUTS):]
    shapes = (axes, axes) + ((tuple(axes for _ in features),) if features else ())
    _forget_rnn_kernels()
    try:
        with _quiet_exporter():
            program = torch.onnx.export(graph, args, None, input_names=list(graph.inputs),
                                        output_names=[OUTPUT], opset_version=opset,
                                        dynamic_shapes=shapes, dynamo=True,
                                        external_data=False, verbose=False)
    finally:
        _forget_rnn_kernels()
    return program.model_proto.SerializeToString()


def _forget_rnn_kernels() -> None:
    """Drop the kernels ``aten.lstm`` and ``aten.gru`` cached for their next dispatch.

    With dynamic shapes, torch's ONNX exporter swaps in a while-loop decomposition of the
    RNN ops (``torch.export._patches``) by editing their Python kernels, without clearing the
    op's dispatch cache. Once anything in the process has traced an LSTM (an earlier export,
    ``torch.compile``, ``torch.export``), the cache still holds the default decomposition,
    which unrolls the recurrence over the example's time steps and so fixes the sequence
    length: the export that failed "sometimes". Cleared before the export the swap takes
    effect, and cleared after it so the while loop (which cannot train) does not outlive it.
    """
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        cache = getattr(op, "_dispatch_cache", None)  # private in torch 2.13: checked
        if cache is not None:
            cache.clear()


def _fixed_axes(data: bytes) -> list[str]:
    """The inputs of an ONNX model whose sequence axis (1) is a number, not a name."""
    import onnx

    proto = onnx.load_from_string(data)
    return [i.name for i in proto.graph.input
            if not i.type.tensor_type.shape.dim[1].dim_param]


def _dynamic_trace(graph: torch.nn.Module, featurizer, max_chars: int, opset: int | None,
                   model_dir: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    """``(ONNX bytes, the inputs traced)`` with a dynamic sequence axis. A BiLSTM graph whose
    length torch.export fixed (`_forget_rnn_kernels` says why, and prevents the case known)
    is traced again at another example length before the export gives up."""
    fixed: list[str] = []
    for extra in TRACE_EXTRAS:
        inputs = check_inputs(featurizer, max_chars, texts=CHECK_TEXTS[:-1] + (extra,))
        try:
            data = _trace(graph, tuple(inputs[name] for name in graph.inputs), opset)
        except Exception as exc:  # torch.export and onnxscript raise many types
            raise ModelError(f"exporting {model_dir} to ONNX failed: {_error_line(exc)}"
                             ) from None
        fixed = _fixed_axes(data)
        if not fixed:
            return data, inputs
    raise ModelError(f"exporting {model_dir} to ONNX fixed the sequence length of "
                     f"{', '.join(fixed)} (torch.export); nothing was written")


def max_difference(data: bytes, model: torch.nn.Module, names: list[str],
                   inputs: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Largest |ONNX - PyTorch| emission on ``inputs`` (PyTorch: the tagger's own
    `emissions`, packed BiLSTM and all, fp32) and the emissions' scale, max |e|."""

    session = open_session(data, threads=torch.get_num_threads())
    with torch.inference_mode():
        expected = model.emissions(**inputs).float()  # shape: (B, L, T)
    got = session.run(None, {name: inputs[name].numpy() for name in names})[0]
    diff = (torch.from_numpy(got) - expected).abs().max().item()
    return diff, expected.abs().max().item()


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote."""

    path: Path
    meta_path: Path
    meta: OnnxMeta

    def summary(self) -> str:
        size = self.path.stat().st_size / 1e6
        return (f"wrote {self.path} ({size:,.1f} MB, opset {self.meta.opset}, inputs "
                f"{', '.join(self.meta.inputs)}; max |ONNX - PyTorch| "
                f"{self.meta.max_abs_diff:.1e})")


def export_onnx(model_dir: str | Path, output: str | Path | None = None, *,
                opset: int | None = None) -> OnnxExport:
    """Export the tagger in ``model_dir`` (a directory or hub id) to ONNX (see the module
    docstring): ``output`` (a ``.onnx`` file or a folder; default
    ``MODEL_DIR/onnx/model.onnx``), at ``opset`` (default: the exporter's; at least 18)."""
    from cner.models.hub import resolve_model_dir
    from cner.models.modeldir import load_tagger_dir, read_meta
    from cner.models.onnxgraph import OUTPUT, EmissionsGraph
    from cner.models.mlm import is_transformers_encoder as is_transformer

    if opset is not None and opset < MIN_OPSET:
        raise ConfigError(f"--opset {opset} is too old for torch's ONNX exporter; use "
                          f"{MIN_OPSET} or later")
    model_dir = resolve_model_dir(model_dir)
    read_meta(model_dir)  # a wrong directory first, said as such
    require_onnx("cner export --onnx", export=True)
    target = output_file(model_dir, output)
    model, featurizer, meta = load_tagger_dir(model_dir)
    if is_transformer(model.encoder):
        model.encoder.set_attn_implementation("eager")  # plain MatMul/Softmax in the graph
    graph = EmissionsGraph(model.float().eval()).eval()
    data, inputs = _dynamic_trace(graph, featurizer, meta.max_length - 2, opset, model_dir)
    # checked on texts of another length than the traced ones: a fixed axis would fail here
    other = check_inputs(featurizer, meta.max_length - 2, texts=CHECK_TEXTS + (LONGER,))
    diff, scale = max_difference(data, model, graph.inputs, other)
    if diff > TOLERANCE * max(1.0, scale):
        raise ModelError(f"the ONNX export of {model_dir} computes other emissions than "
                         f"PyTorch (max difference {diff:.2e}, emissions up to {scale:.2g}); "
                         "nothing was written")
    onnx_meta = OnnxMeta(inputs=list(graph.inputs), output=OUTPUT, opset=_opset_of(data),
                         tags=list(model.tags), onnx_sha256=hashlib.sha256(data).hexdigest(),
                         weights=weight_checksums(model_dir), max_abs_diff=diff,
                         exporter=EXPORTER, torch=torch.__version__)
    with atomic_write(target, "wb") as handle:
        handle.write(data)
    with atomic_write(meta_path(target)) as handle:  # second: it vouches for the file
        handle.write(onnx_meta.to_json())
    return OnnxExport(target, meta_path(target), onnx_meta)


def _opset_of(data: bytes) -> int:
    import onnx

    model = onnx.load_model_from_string(data)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


# --- loading ---------------------------------------------------------------------------------

def read_onnx_meta(path: Path) -> OnnxMeta:
    try:
        values = json.loads(path.read_text("utf-8"))
        return OnnxMeta(**values)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{path} is not the description of a cner ONNX export ({exc}); "
                         "export again with cner export --onnx") from None


def find_onnx(model_dir: str | Path, onnx_file: str | Path | None = None
              ) -> tuple[Path, OnnxMeta]:
    """The ONNX export of ``model_dir`` (``onnx_file``, default ``MODEL_DIR/onnx/model.onnx``)
    and its `OnnxMeta`, after checking that it is whole and was exported from this directory's
    weights. Missing, stale or damaged: a one-line `ModelError` saying to export again."""
    from cner.models.modeldir import read_meta

    model_dir = Path(model_dir)
    read_meta(model_dir)  # a wrong or incomplete model directory, said as such
    path = Path(onnx_file) if onnx_file is not None else default_onnx_file(model_dir)
    again = f"run: cner export --onnx {model_dir}" + (
        f" --output {path}" if onnx_file is not None else "")
    if not path.is_file():
        raise ModelError(f"{path} not found: the onnx backend runs an exported model; {again}")
    if not meta_path(path).is_file():
        raise ModelError(f"{meta_path(path)} not found (it describes {path.name}); {again}")
    meta = read_onnx_meta(meta_path(path))
    if sha256_file(path) != meta.onnx_sha256:
        raise ModelError(f"{path} does not match its checksum in {meta_path(path).name} "
                         f"(damaged, or written by another export); {again}")
    if weight_checksums(model_dir) != meta.weights:
        raise ModelError(f"{path} was exported from other weights than those now in "
                         f"{model_dir} (retrained or replaced since); {again}")
    return path, meta


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
