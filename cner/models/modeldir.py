"""The model directory: everything needed to reload a model with no network.

This module owns the directory's contract: the file names (a run directory reuses them for
the files it keeps beside its checkpoints), the typed metadata in ``cner_model.json``, and
the builders that turn that metadata into a `TokenTagger` or `SequenceClassifier`, used
both when training starts and when a saved model is loaded, so both build the same model.

``model.safetensors`` (the encoder under the names transformers uses, and the tag or class
layer), ``cner_head.safetensors`` (CRF transitions, feature embeddings), ``config.json`` (the
encoder's Hugging Face config with the labels), ``vocab.txt``, ``tokenizer.json`` and
``tokenizer_config.json`` (the same vocabulary for transformers' ``AutoTokenizer``),
``bigrams.txt`` (models with bigram features), ``cner_model.json`` (`ModelMeta`: tags, scheme,
head, normalisation, window sizes, features or classifier options, `Provenance`),
``README.md`` (the model card), ``cner_config.yaml`` (the run's config) and ``metrics.json``
(from training). `cner.models.hub` owns the Hugging Face side of that layout; directories
written before it (every weight in ``model.safetensors`` under cner's names) still load.
A directory is written under a temporary name and renamed into place, so a crash never
leaves a half-written model; it gets the modes a plain ``mkdir``/``open`` would give it.
Loading checks that the vocabulary, the bigram list and the labels fit the weights, so a
truncated or mismatched file is a one-line `ModelError` naming it, not silently worse output.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cner.encoding.features import Featurizer
from cner.encoding.vocab import CharVocab
from cner.errors import ModelError
from cner.fileio import atomic_write

WEIGHTS = "model.safetensors"
ENCODER_CONFIG = "config.json"
VOCAB = "vocab.txt"
BIGRAMS = "bigrams.txt"
META = "cner_model.json"
RUN_CONFIG = "cner_config.yaml"
METRICS = "metrics.json"
HEAD_WEIGHTS = "cner_head.safetensors"
CARD = "README.md"
TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
REQUIRED = (WEIGHTS, ENCODER_CONFIG, VOCAB, META)

NER = "ner"
CLASSIFICATION = "classification"


@dataclass(frozen=True)
class NerFeatures:
    """The optional character features a NER model was trained with."""

    bigrams: bool = False  # bigram ids from bigrams.txt
    word_boundaries: bool = False  # jieba B/M/E/S ids
    lexicon: bool = False  # jieba dictionary bits
    lexicon_dictionary: str | None = None  # fingerprint of the dictionary (lexicon models)

    @classmethod
    def of(cls, featurizer: Featurizer) -> NerFeatures:
        """The features ``featurizer`` computes, with the installed dictionary's fingerprint."""
        from cner.encoding.lexicon import dictionary_fingerprint

        return cls(bigrams=bool(featurizer.bigrams), word_boundaries=featurizer.boundaries,
                   lexicon=featurizer.lexicon,
                   lexicon_dictionary=dictionary_fingerprint() if featurizer.lexicon else None)


@dataclass(frozen=True)
class ClassifierOptions:
    """How a classifier encodes a document and what its scores mean."""

    task: str | None = None  # the registered task, or the training file's stem
    truncation: str = "head+tail"  # head | tail | head+tail | chunks
    head_chars: int = 128  # head+tail: characters kept from the start
    pooling: str = "mean"  # chunks: mean | max over chunk logits
    positive: str | None = None  # the positive class of binary F1 scores


@dataclass(frozen=True)
class DataFile:
    """A file a model was trained or evaluated on, as the run named it, with its SHA-256."""

    split: str  # train | dev | test
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Provenance:
    """Where a model comes from: its data files, the command that trained it (``None`` when
    trained through the Python API), the package versions and when it was saved."""

    command: list[str] | None = None
    data: list[DataFile] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    created: str | None = None  # UTC, ISO 8601


PACKAGES = ("cner", "torch", "transformers", "tokenizers", "safetensors", "huggingface_hub",
            "jieba")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def cli_command(argv: Sequence[str] | None = None) -> list[str] | None:
    """``sys.argv`` when this process is the ``cner`` command (the console script or
    ``python -m cner``), with the program written as ``cner``; ``None`` otherwise."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return None
    program = Path(argv[0])
    if program.name in ("cner", "cner.exe", "cner-script.py") or (
            program.name == "__main__.py" and program.parent.name == "cner"):
        return ["cner", *argv[1:]]
    return None


def file_sha256(path: str | Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def training_provenance(files: Mapping[str, str | Path | None] | Sequence[tuple[str, str | Path]],
                        *, command: Sequence[str] | None = None) -> Provenance:
    """The `Provenance` of a training run: ``files`` (split -> path, or ``(split, path)``
    pairs; missing ones are left out) hashed now, ``command`` or `cli_command`."""
    pairs = files.items() if isinstance(files, Mapping) else files
    data, seen = [], set()
    for split, path in pairs:
        if path is None or (split, str(path)) in seen or not Path(path).is_file():
            continue
        seen.add((split, str(path)))
        try:
            sha, size = file_sha256(path)
        except OSError:
            continue
        data.append(DataFile(split=split, path=str(path), sha256=sha, bytes=size))
    return Provenance(command=list(command) if command is not None else cli_command(), data=data,
                      versions=package_versions(), created=_now())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class ModelMeta:
    """``cner_model.json``. ``features`` is set for NER models, ``options`` for classifiers
    (both get their defaults when left out); ``provenance`` for models saved by this version
    of cner."""

    task: str  # "ner" or "classification"
    labels: list[str]  # tags for NER, class names for classification
    scheme: str | None
    head: str
    dropout: float
    lowercase: bool
    halfwidth: bool
    max_length: int
    overlap: int
    vocab_size: int | None = None  # tokens in vocab.txt when saved (None: older directories)
    features: NerFeatures | None = None
    options: ClassifierOptions | None = None
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if self.task == NER and self.features is None:
            object.__setattr__(self, "features", NerFeatures())
        if self.task == CLASSIFICATION and self.options is None:
            object.__setattr__(self, "options", ClassifierOptions())

    def to_json(self) -> str:
        values = {k: v for k, v in asdict(self).items()
                  if v is not None or k not in ("features", "options", "provenance")}
        return json.dumps(values, ensure_ascii=False, indent=1)


# --- reading cner_model.json ----------------------------------------------------------------

def _fits(value, tp) -> bool:
    """Whether a JSON value fits the annotation ``tp`` (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(tp)
        return isinstance(value, dict) and all(_fits(k, key) and _fits(v, item)
                                               for k, v in value.items())
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _typed(cls, values, where: str):
    """``cls(**values)`` after checking keys and value types; a `ModelError` naming ``where``."""
    if not isinstance(values, dict):
        raise ModelError(f"{where}: expected a JSON object, found {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected "
                         f"{', '.join(names)} (was it written by a newer cner?)")
    required = [f.name for f in fields(cls) if f.default is MISSING
                and f.default_factory is MISSING and f.name not in values]
    if required:
        raise ModelError(f"{where}: missing key(s) {', '.join(map(repr, required))}")
    out = {}
    for name, value in values.items():
        tp = hints[name]
        if typing.get_origin(tp) is list and is_dataclass(typing.get_args(tp)[0]):
            (item,) = typing.get_args(tp)
            if not isinstance(value, list):
                raise ModelError(f"{where}: {name} must be a list, found {value!r}")
            out[name] = [v if isinstance(v, item) else _typed(item, v, f"{where} {name}[{i}]")
                         for i, v in enumerate(value)]
            continue
        nested = [t for t in (tp, *typing.get_args(tp)) if is_dataclass(t)]
        if nested and value is not None:
            out[name] = (value if isinstance(value, nested[0])  # converted from 'extra'
                         else _typed(nested[0], value, f"{where} {name}"))
            continue
        if not _fits(value, tp):
            raise ModelError(f"{where}: {name} must be {_type_name(tp)}, found {value!r}")
        out[name] = value
    return cls(**out)


def _type_name(tp) -> str:
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number",
                "bool": "true or false"}.get(tp.__name__, tp.__name__)
    return str(tp).replace("NoneType", "null").replace("typing.", "")


def meta_from_dict(values, where: str) -> ModelMeta:
    """`ModelMeta` from the JSON object in ``cner_model.json``; directories written before the
    metadata was typed carry an ``extra`` dict, converted here to `NerFeatures` (NER models)
    or `ClassifierOptions` (classifiers)."""
    if isinstance(values, dict) and "extra" in values:
        values = dict(values)
        extra = values.pop("extra")
        if "features" in values or "options" in values:
            raise ModelError(f"{where}: 'extra' cannot be combined with 'features' or 'options'")
        if extra is not None:
            task = values.get("task")
            key, kind = ("features", NerFeatures) if task == NER else ("options", ClassifierOptions)
            values[key] = _typed(kind, extra, f"{where} extra")
    return _typed(ModelMeta, values, where)


def read_meta(directory: str | Path) -> ModelMeta:
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} not found",)
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"model directory {directory} lacks {', '.join(missing)}; point --model "
                         "at the 'model' folder that cner train wrote")
    path = directory / META
    try:
        values = json.loads(path.read_text("utf-8"))
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path} is not a cner model description: {exc}") from None
    return meta_from_dict(values, str(path))


# --- building models from metadata ------------------------------------------------------------

def build_tagger(encoder: nn.Module, meta: ModelMeta, featurizer: Featurizer, *,
                 unk_dropout: float = 0.0, unk_id: int = 0):
    """The `TokenTagger` ``meta`` describes over ``encoder`` (bigram embeddings sized by
    ``featurizer``'s bigram list); the same call at training time and at load time."""
    from cner.models.tagger import TokenTagger

    features = meta.features or NerFeatures()
    if features.bigrams != bool(featurizer.bigrams):
        raise ModelError(f"the model {'uses' if features.bigrams else 'has no'} bigram "
                         f"features but its featurizer {'has none' if features.bigrams else 'has'}")
    return TokenTagger(encoder, meta.labels, scheme=meta.scheme or "bio", head=meta.head,
                       dropout=meta.dropout, n_bigrams=len(featurizer.bigrams or ()),
                       boundaries=features.word_boundaries, lexicon=features.lexicon,
                       unk_dropout=unk_dropout, unk_id=unk_id)


def build_classifier(encoder: nn.Module, meta: ModelMeta):
    """The `SequenceClassifier` ``meta`` describes over ``encoder``."""
    from cner.models.classifier import SequenceClassifier

    options = meta.options or ClassifierOptions()
    return SequenceClassifier(encoder, max(1, len(meta.labels)), kind=meta.head,
                              dropout=meta.dropout, pooling=options.pooling)


def featurizer_for(vocab: CharVocab, features: NerFeatures,
                   bigrams: Sequence[str] | None = None) -> Featurizer:
    return Featurizer(vocab, bigrams=bigrams if features.bigrams else None,
                      boundaries=features.word_boundaries, lexicon=features.lexicon)


# --- weights -----------------------------------------------------------------------------------

def save_state(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def read_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"cannot read weights {path}: {exc}") from None


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors file and its metadata header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"cannot read weights {path}: {exc}") from None


def write_weights(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    from cner.models.hub import SAFETENSORS_METADATA

    save_file(tensors, str(path), metadata=dict(SAFETENSORS_METADATA))


@dataclass
class DirState:
    """A model directory's weights under cner's names, with the file (and the name in it)
    each tensor came from."""

    state: dict[str, torch.Tensor]
    origin: dict[str, tuple[Path, str]]

    def where(self, name: str, default: Path) -> tuple[Path, str]:
        return self.origin.get(name, (default, name))


def read_dir_state(directory: Path) -> DirState:
    """The weights of a model directory as cner's own state dict: ``model.safetensors`` in the
    transformers layout plus ``cner_head.safetensors``, or (directories written before that
    layout) ``model.safetensors`` alone under cner's names, converted here."""
    from cner.models.hub import LAYOUT, LAYOUT_KEY, join_state

    path = directory / WEIGHTS
    main, metadata = read_weights(path)
    if metadata.get(LAYOUT_KEY) != LAYOUT:  # an earlier cner: one file, cner's own names
        return DirState(main, {k: (path, k) for k in main})
    head_path = directory / HEAD_WEIGHTS
    head = read_weights(head_path)[0] if head_path.is_file() else {}
    state, names = join_state(main, head)
    origin = {k: (path, names[k]) for k in names}
    origin.update({k: (head_path, k) for k in head})
    return DirState(state, origin)


def load_state(model: nn.Module, path: Path, *, state: dict[str, torch.Tensor] | None = None
               ) -> None:
    """Load the weights at ``path`` (or ``state``, read from it) into ``model``; missing,
    unexpected or differently shaped tensors are a `ModelError`."""
    if state is None:
        state = read_state(path)
    own = model.state_dict()
    for name, tensor in state.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            raise ModelError(f"weights {path} do not fit the model: {name} is "
                             f"{tuple(tensor.shape)} in the file, {tuple(own[name].shape)} in the "
                             "model built from its configuration")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"weights {path} do not fit the model: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


def _param_name(model: nn.Module, param: torch.Tensor) -> str | None:
    for name, p in model.named_parameters():
        if p is param:
            return name
    return None


def _rows(model: nn.Module, state: Mapping[str, torch.Tensor], param: torch.Tensor) -> int:
    """Rows of ``param`` in the saved weights (the built model's when the file lacks it)."""
    name = _param_name(model, param)
    return int(state[name].shape[0]) if name in state else int(param.shape[0])


def check_sizes(directory: Path, model: nn.Module, featurizer: Featurizer, meta: ModelMeta,
                state: Mapping[str, torch.Tensor], *, layer_file: str = WEIGHTS) -> None:
    """The vocabulary, the bigram list and the labels must fit the saved weights: a file cut
    short or taken from another model would otherwise load and give silently worse output.
    ``layer_file``: the file holding the tag or class layer, for the messages."""
    n_vocab = len(featurizer.vocab)
    rows = _rows(model, state, model.encoder.get_input_embeddings().weight)
    # cner's own encoders have one row per token; a pretrained encoder may have more rows
    # than its vocab.txt has tokens, which cner_model.json then records as vocab_size.
    expected = rows if meta.vocab_size is None else meta.vocab_size
    if n_vocab != rows and (n_vocab > rows or n_vocab != expected):
        raise ModelError(f"{directory / VOCAB} has {n_vocab:,} tokens but the model's embedding "
                         f"has {rows:,} rows")
    if n_vocab != expected:
        raise ModelError(f"{directory / VOCAB} has {n_vocab:,} tokens but {directory / META} "
                         f"records {expected:,}")
    bigram_embeddings = getattr(model, "bigram_embeddings", None)
    if bigram_embeddings is not None:
        n_bigrams = len(featurizer.bigrams or ())
        rows = _rows(model, state, bigram_embeddings.weight)
        if n_bigrams != rows:
            raise ModelError(f"{directory / BIGRAMS} has {n_bigrams:,} bigrams but the model's "
                             f"bigram embedding has {rows:,} rows")
    outputs = _rows(model, state, model.classifier.weight)
    if meta.task == NER:
        if len(meta.labels) != outputs:
            raise ModelError(f"{directory / META} lists {len(meta.labels)} tags but the tag "
                             f"layer in {layer_file} has {outputs} outputs")
    else:
        wanted = 1 if meta.head == "regression" else max(1, len(meta.labels))
        if wanted != outputs:
            raise ModelError(f"{directory / META} lists {len(meta.labels)} labels but the "
                             f"classifier layer in {layer_file} has {outputs} outputs")


# --- writing -------------------------------------------------------------------------------------

def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:  # Linux: os.umask would change the process-wide value, if only for a moment
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def ordinary_modes(directory: Path) -> None:
    """Give ``directory`` (made by `tempfile.mkdtemp`, 0700) and everything in it the modes a
    plain ``mkdir``/``open`` would under the current umask: 0777/0666 less the umask."""
    umask = current_umask()
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(Path(root) / name, 0o777 & ~umask)
        for name in files:
            os.chmod(Path(root) / name, 0o666 & ~umask)
    os.chmod(directory, 0o777 & ~umask)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place, replacing any previous one."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def as_featurizer(vocab: CharVocab | Featurizer) -> Featurizer:
    return vocab if isinstance(vocab, Featurizer) else Featurizer(vocab)


def save_bigrams(bigrams: Sequence[str], path: Path) -> None:
    with atomic_write(path) as handle:
        handle.write("\n".join(bigrams) + "\n")


def read_bigrams(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    return text.split("\n")[:-1]


def save_json(values: dict, path: Path) -> None:
    with atomic_write(path) as handle:
        handle.write(json.dumps(values, indent=1))


def save_model_dir(model: nn.Module, vocab: CharVocab | Featurizer, meta: ModelMeta,
                   directory: str | Path, *, run_config=None, metrics: dict | None = None,
                   provenance: Provenance | None = None) -> Path:
    """Write a model directory (see the module docstring). ``provenance`` (training files,
    command: `training_provenance`) is recorded in ``cner_model.json`` and the model card;
    without it, and without one in ``meta``, only the package versions and the time are."""
    from cner.models.card import model_card
    from cner.models.hub import encoder_config_values, save_tokenizer, split_state

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    featurizer = as_featurizer(vocab)
    rows = model.encoder.get_input_embeddings().num_embeddings
    if len(featurizer.vocab) > rows:
        raise ModelError(f"the vocabulary has {len(featurizer.vocab):,} tokens but the model's "
                         f"embedding has {rows:,} rows")
    if meta.vocab_size is None:
        meta = replace(meta, vocab_size=len(featurizer.vocab))
    provenance = provenance or meta.provenance or Provenance(versions=package_versions())
    meta = replace(meta, provenance=replace(provenance, created=_now()))
    config_values = encoder_config_values(model.encoder, meta)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        main, head = split_state(model, meta)
        write_weights(main, tmp / WEIGHTS)
        if head:
            write_weights(head, tmp / HEAD_WEIGHTS)
        save_json(config_values, tmp / ENCODER_CONFIG)
        featurizer.vocab.save(tmp / VOCAB)
        save_tokenizer(featurizer.vocab, meta.max_length, tmp)
        if featurizer.bigrams:
            save_bigrams(featurizer.bigrams, tmp / BIGRAMS)
        with atomic_write(tmp / META) as handle:
            handle.write(meta.to_json())
        if run_config is not None:
            run_config.save(tmp / RUN_CONFIG)
        if metrics is not None:
            save_json(metrics, tmp / METRICS)
        with atomic_write(tmp / CARD) as handle:
            handle.write(model_card(meta, config_values, metrics, run_config=run_config))
        ordinary_modes(tmp)
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def rewrite_model_dir(source: str | Path, directory: str | Path) -> Path:
    """Write the model directory ``source`` again as ``directory`` in the current layout (a
    directory written by an earlier cner becomes loadable by transformers); its run config and
    metrics are kept."""
    source = Path(source)
    meta = read_meta(source)
    load = load_tagger_dir if meta.task == NER else load_classifier_dir
    model, featurizer, meta = load(source)
    run_config = None
    if (source / RUN_CONFIG).is_file():
        from cner.config import load_config

        run_config = load_config(source / RUN_CONFIG)
    metrics = None
    if (source / METRICS).is_file():
        try:
            metrics = json.loads((source / METRICS).read_text("utf-8"))
        except (OSError, ValueError):
            metrics = None
    return save_model_dir(model, featurizer, meta, directory, run_config=run_config,
                          metrics=metrics)


# --- loading -----------------------------------------------------------------------------------

def encoder_from_dir(directory: Path) -> nn.Module:
    """An encoder of the saved architecture with empty weights (filled by `load_state`)."""
    from transformers import AutoConfig, AutoModel

    from cner.models.bilstm import MODEL_TYPE, BiLSTMConfig, BiLSTMEncoder
    from cner.models.hub import strip_cner_config

    try:
        values = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
        if values.get("model_type") == MODEL_TYPE:
            return BiLSTMEncoder(BiLSTMConfig.from_dict(strip_cner_config(values)))
        config = AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"cannot read {directory / ENCODER_CONFIG}: {exc}") from None
    return drop_pooler(AutoModel.from_config(config))


def drop_pooler(encoder: nn.Module) -> nn.Module:
    """cner's heads read the [CLS] or character states directly; the pooler is dead weight."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def load_featurizer(directory: Path, meta: ModelMeta) -> Featurizer:
    vocab = CharVocab.load(directory / VOCAB, lowercase=meta.lowercase, halfwidth=meta.halfwidth)
    features = meta.features or NerFeatures()
    bigrams = None
    if features.bigrams:
        if not (directory / BIGRAMS).is_file():
            raise ModelError(f"model directory {directory} lacks {BIGRAMS}, which its model uses")
        bigrams = read_bigrams(directory / BIGRAMS)
    saved = features.lexicon_dictionary
    if features.lexicon and saved:
        from cner.encoding.lexicon import dictionary_fingerprint
        if saved != dictionary_fingerprint():
            warnings.warn(f"{directory} was trained with another jieba dictionary ({saved}, "
                          f"installed: {dictionary_fingerprint()}): its lexicon features will "
                          "differ; install the jieba version it was trained with", stacklevel=2)
    return featurizer_for(vocab, features, bigrams)


def load_dir_state(directory: Path, model: nn.Module, featurizer: Featurizer, meta: ModelMeta
                   ) -> None:
    """Fill ``model`` with a directory's weights (either layout, `read_dir_state`) after
    `check_sizes`; a tensor missing, unexpected or of another shape is a `ModelError` naming
    the file it is (or should be) in."""
    saved = read_dir_state(directory)
    own = model.state_dict()
    # cner drops the pooler the transformers layout writes for AutoModel (`drop_pooler`)
    state = {k: v for k, v in saved.state.items()
             if k in own or not k.startswith("encoder.pooler.")}
    layer_file = saved.where("classifier.weight", directory / WEIGHTS)[0].name
    check_sizes(directory, model, featurizer, meta, state, layer_file=layer_file)
    for name, tensor in state.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            path, key = saved.where(name, directory / WEIGHTS)
            raise ModelError(f"weights {path} do not fit the model: {key} is "
                             f"{tuple(tensor.shape)} in the file, {tuple(own[name].shape)} in the "
                             "model built from its configuration")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        head = directory / HEAD_WEIGHTS
        lacking = (f" ({HEAD_WEIGHTS} is missing)" if missing and not head.is_file()
                   and any(not k.startswith(("encoder.", "classifier.")) for k in missing) else "")
        raise ModelError(f"weights in {directory} do not fit the model{lacking}: missing "
                         f"{missing[:3]}, unexpected "
                         f"{[saved.where(k, directory / WEIGHTS)[1] for k in unexpected[:3]]}")


def _load(directory: Path, meta: ModelMeta, featurizer: Featurizer, model: nn.Module,
          device: str | torch.device) -> nn.Module:
    load_dir_state(directory, model, featurizer, meta)
    return model.to(device).eval()


def load_tagger_dir(directory: str | Path, *, device: str | torch.device = "cpu"):
    """``(TokenTagger, Featurizer, ModelMeta)`` from a model directory, in eval mode."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta.task != NER:
        raise ModelError(f"{directory} holds a {meta.task} model, not a NER tagger")
    featurizer = load_featurizer(directory, meta)
    model = build_tagger(encoder_from_dir(directory), meta, featurizer)
    return _load(directory, meta, featurizer, model, device), featurizer, meta


def load_classifier_dir(directory: str | Path, *, device: str | torch.device = "cpu"):
    """``(SequenceClassifier, Featurizer, ModelMeta)`` from a model directory, in eval mode."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta.task != CLASSIFICATION:
        raise ModelError(f"{directory} holds a {meta.task} model, not a classifier")
    featurizer = load_featurizer(directory, meta)
    model = build_classifier(encoder_from_dir(directory), meta)
    return _load(directory, meta, featurizer, model, device), featurizer, meta
