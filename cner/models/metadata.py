"""What ``cner_model.json`` says about a model, typed, and how it is read back.

This module owns `ModelMeta` (task, labels, scheme, head, normalisation, window sizes) with
its parts: `NerFeatures` (the optional character features of a NER model),
`ClassifierOptions` (how a classifier encodes a document) and `Provenance` (the data files
with their SHA-256, the command, the package versions, when it was saved; made by
`training_provenance`). `meta_from_dict` turns the JSON back into these types, checking every
key and value type, so a hand-edited or newer file is a one-line `ModelError`, not a model
built wrong; metadata written before it was typed (an ``extra`` dict) is converted there.
Where the file lives and what else the directory holds is `cner.models.modeldir`'s business.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from cner.config.checks import CHOICES as CONFIG_CHOICES, TOKEN_POOLINGS
from cner.encoding.features import Featurizer
from cner.errors import ModelError

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
    # a chunk's vector: the [CLS] state | mean | max over positions (older directories: cls)
    token_pooling: str = "cls"

    # The values each field may hold in a saved model (the config's choices, resolved:
    # token_pooling "auto" is saved as what it became); `_typed` refuses others.
    CHOICES: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        "truncation": CONFIG_CHOICES["classify.truncation"],
        "pooling": CONFIG_CHOICES["classify.pooling"],
        "token_pooling": TOKEN_POOLINGS,  # "auto" is resolved before a model is saved
    }


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
    """The versions of Python and of the installed `PACKAGES`, for `Provenance.versions`."""
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
    """``(SHA-256 hex digest, size in bytes)`` of a file, read in 1 MiB pieces."""
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
                      versions=package_versions(), created=utc_now())


def utc_now() -> str:
    """The time now, UTC, as ISO 8601 (`Provenance.created`)."""
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
        choices = getattr(cls, "CHOICES", {}).get(name)
        if choices is not None and value not in choices:
            raise ModelError(f"{where}: {name} must be one of {', '.join(choices)}, "
                             f"found {value!r}")
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

