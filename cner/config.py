"""Typed run configuration: YAML files, ``--set key.path=value`` overrides, strict validation.

A config is nested dataclasses. Loading checks every key and value type, and every value
against what training can use (counts >= 1, rates finite, names from their choices); an
unknown key or choice is an error that names the nearest valid one.

Paths (`PATH_KEYS`) written in a config file are relative to the file's folder, so that a
config works from any current directory and travels with the data beside it; paths given on
the command line (``--set``, ``--train``) are relative to the current directory, as a shell
user expects. A path may start with ``$CNER_CORPORA``: the public-corpora folder
(`corpora_root`). With no config file the built-in defaults name the sample corpus of the
cner source checkout, wherever the command runs.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cner.errors import ConfigError


@dataclass
class DataConfig:
    train: str = "corpora/sample/train.conll"
    dev: str | None = "corpora/sample/dev.conll"
    test: str | None = "corpora/sample/test.conll"
    format: str = "auto"  # auto | conll | cluener | jsonl
    scheme: str = "auto"  # tag scheme of column files
    lenient: bool = False  # repair invalid tag transitions the conlleval way (a note says where)
    token_suffix: str = "auto"  # column files: auto | position (Weibo NER's 科0) | none (as written)
    dev_fraction: float = 0.0  # held out from train (seeded) when dev is null
    max_length: int = 128  # model positions per window, [CLS] and [SEP] included
    overlap: int = 32  # characters shared by windows; unset: max_length // 4, at most 32
    lowercase: bool = True  # vocabulary look-up only; offsets never move
    halfwidth: bool = True


@dataclass
class ModelConfig:
    encoder: str = "scratch"  # "scratch" (a BERT of the sizes below) | "bilstm" | hub name | dir
    hidden_size: int = 128  # bilstm: both directions together
    embedding_size: int = 128  # bilstm only: character (and feature) embedding size
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1
    vocab_min_count: int = 1
    head: str = "crf"  # crf | softmax
    tag_scheme: str = "bio"  # scheme the model predicts: bio | bioes
    bigrams: bool = False  # add character-bigram embeddings to the input
    bigram_min_count: int = 2
    word_boundaries: bool = False  # add jieba word-boundary (B/M/E/S) embeddings to the input
    lexicon: bool = False  # add jieba-dictionary match features (cner/lexicon.py) to the input
    unk_dropout: float = 0.0  # training: replace this fraction of characters by [UNK]


@dataclass
class TrainingConfig:
    epochs: int = 20
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 5e-4
    crf_lr_multiplier: float = 100.0  # CRF transitions learn this much faster than the encoder
    head_lr_multiplier: float = 1.0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    grad_accumulation: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (fp16: GPU only)
    gradient_checkpointing: bool = False
    freeze_encoder: bool = False
    eval_every: int | None = None  # steps; null = once per epoch
    checkpoint_every: int | None = None  # steps; null = at each evaluation
    early_stopping_patience: int | None = 5  # evaluations without dev improvement
    max_minutes: float | None = None  # stop (and keep the best) after this much wall time
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch intra-op threads on CPU
    log_every: int = 20


@dataclass
class ClassifyConfig:
    """Sequence classification (sentiment, GLUE/CLUE); data.train/dev/test name the files
    unless ``task`` names a registered task, whose files are found under ``corpora_root``."""

    task: str | None = None  # chnsenticorp | chnsenticorp_htl | afqmc | sst2 | mrpc | null
    corpora_root: str | None = None  # null: $CNER_CORPORA, else shared/corpora beside the project
    kind: str = "single"  # single | pair | multilabel | regression (registered tasks set it)
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    id_column: str | None = None
    label_separator: str = ","  # multilabel: labels within one cell
    truncation: str = "head+tail"  # head | tail | head+tail | chunks
    head_chars: int = 128  # head+tail: characters kept from the start
    pooling: str = "mean"  # chunks: mean | max over chunk logits


@dataclass
class Config:
    name: str = "tiny-cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML with its paths made absolute: a run's saved config means
        the same files whichever directory it is read (or the run resumed) from."""
        from cner.fileio import atomic_write

        values = self.to_dict()
        for key in PATH_KEYS:
            section, name = key.split(".")
            value = values[section][name]
            if isinstance(value, str) and value and not os.path.isabs(value):
                values[section][name] = os.path.abspath(value)
        encoder = values["model"]["encoder"]
        if encoder not in LOCAL_ENCODERS and not os.path.isabs(encoder) and os.path.isdir(encoder):
            values["model"]["encoder"] = os.path.abspath(encoder)
        with atomic_write(path) as handle:
            yaml.safe_dump(values, handle, allow_unicode=True, sort_keys=False)


# --- paths ------------------------------------------------------------------------------------

# Keys whose values are file or folder paths. model.encoder is a path only when it names an
# existing folder (otherwise it is "scratch", "bilstm" or a hub name).
PATH_KEYS = ("data.train", "data.dev", "data.test", "classify.corpora_root")
LOCAL_ENCODERS = ("scratch", "bilstm")
# The file name cner saves a run's config under (cner.models.modeldir.RUN_CONFIG). Its paths
# are absolute; those of runs saved before were relative to the directory training ran in,
# so they are not re-read against the run directory.
SAVED_CONFIG = "cner_config.yaml"

# The project checkout when cner is imported from its source (pip install -e .): the built-in
# defaults name its sample corpus, corpora/sample/, which is not package data.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
CORPORA_ENV = "CNER_CORPORA"
_CORPORA_VAR = re.compile(r"^\$(?:CNER_CORPORA\b|\{CNER_CORPORA\})")


def _from_cwd(path: str) -> str:
    """An absolute ``path`` as a path from the current directory (what messages show)."""
    try:
        return os.path.relpath(path)
    except (ValueError, OSError):  # another drive, or a current directory that is gone
        return path


def corpora_root(configured: str | os.PathLike | None = None) -> Path:
    """The folder of the public corpora: ``configured`` (``classify.corpora_root``), else
    ``$CNER_CORPORA``, else ``shared/corpora`` beside the project checkout (``../shared/corpora``
    from its root), else, outside a checkout, ``../shared/corpora`` from the current directory."""
    if configured:
        return Path(configured)
    env = os.environ.get(CORPORA_ENV, "").strip()
    if env:
        return Path(os.path.expanduser(env))
    if (SOURCE_ROOT / "pyproject.toml").is_file():
        return Path(_from_cwd(str(SOURCE_ROOT.parent / "shared" / "corpora")))
    return Path("../shared/corpora")


def _expand_corpora(value: str) -> str:
    match = _CORPORA_VAR.match(value)
    if not match:
        return value
    rest = value[match.end():].lstrip("/\\")
    return str(corpora_root() / rest) if rest else str(corpora_root())


def _relative_to(value: Any, base: Path) -> Any:
    """A relative path string from a config file, made relative to the file's folder."""
    if not isinstance(value, str) or not value or _CORPORA_VAR.match(value):
        return value
    value = os.path.expanduser(value)
    if os.path.isabs(value):
        return value
    return _from_cwd(os.path.normpath(base / value))


def _resolve_file_paths(values: dict[str, Any], base: Path) -> None:
    """Rewrite the relative paths of a config file's ``values`` against its folder ``base``."""
    for key in PATH_KEYS:
        section, name = key.split(".")
        node = values.get(section)
        if isinstance(node, dict) and name in node:
            node[name] = _relative_to(node[name], base)
    model = values.get("model")
    if isinstance(model, dict) and isinstance(model.get("encoder"), str):
        encoder = model["encoder"]
        if encoder not in LOCAL_ENCODERS and (base / os.path.expanduser(encoder)).is_dir():
            model["encoder"] = _relative_to(encoder, base)


def _default_paths() -> dict[str, str]:
    """The built-in data paths (the sample corpus), from the source checkout's root."""
    defaults = DataConfig()
    return {name: _from_cwd(os.path.normpath(SOURCE_ROOT / getattr(defaults, name)))
            for name in ("train", "dev", "test")}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        names = " or ".join(_type_name(o) for o in options)
        raise ConfigError(f"config key {key!r} expects {names}, found {value!r}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "3e-3" (no dot) as a string; users mean the number.
        try:
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool) or tp is not bool and isinstance(value, bool):
        raise ConfigError(f"config key {key!r} expects {_type_name(tp)}, found {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"config key {key!r} expects {_type_name(tp)}, found {value!r} "
                          f"({type(value).__name__})")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if values is None and prefix:  # "data:" with every key commented out
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'!r} must be a mapping, "
                          f"found {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(prefix + key, [prefix + name for name in fields])
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


def unknown_key(key: str, valid: list[str]) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key {key!r}{hint}")


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.path=value`` strings (values parsed as YAML scalars) to a nested dict."""
    valid = all_keys()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set expects key.path=value, found {item!r}")
        if key not in valid:
            raise unknown_key(key, valid)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


# Values the types admit but training cannot use. Without these checks a run that trains no
# step (epochs: 0, max_steps: -1) got as far as the end and failed there with "model directory
# ... not found", far from its cause; log_every: 0 divided by zero at the first step; a NaN
# learning rate trained a model of NaNs; an unknown head or device failed with a traceback
# after the run directory had been made.
AT_LEAST_ONE = {"training.epochs": "an int >= 1", "training.max_steps": "an int >= 1 or null",
                "training.batch_size": "an int >= 1", "training.grad_accumulation": "an int >= 1",
                "training.log_every": "an int >= 1",
                "training.eval_every": "an int >= 1 or null",
                "training.checkpoint_every": "an int >= 1 or null",
                "training.early_stopping_patience": "an int >= 1 or null",
                "training.threads": "an int >= 1 or null",
                "model.hidden_size": "an int >= 1", "model.embedding_size": "an int >= 1",
                "model.num_layers": "an int >= 1", "model.num_heads": "an int >= 1",
                "model.intermediate_size": "an int >= 1", "model.vocab_min_count": "an int >= 1",
                "model.bigram_min_count": "an int >= 1"}

# (key, test, what it expects) for floats; NaN fails every test.
FLOAT_RANGES = [
    ("training.lr", lambda x: 0 < x < math.inf, "a finite number > 0"),
    ("training.crf_lr_multiplier", lambda x: 0 < x < math.inf, "a finite number > 0"),
    ("training.head_lr_multiplier", lambda x: 0 < x < math.inf, "a finite number > 0"),
    ("training.weight_decay", lambda x: 0 <= x < math.inf, "a finite number >= 0"),
    ("training.warmup_ratio", lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    ("training.max_grad_norm", lambda x: x > 0, "a number > 0 (inf: no clipping)"),
    ("training.max_minutes", lambda x: 0 < x < math.inf, "a finite number > 0 or null"),
    ("model.dropout", lambda x: 0 <= x < 1, "a number in [0, 1)"),
    ("model.unk_dropout", lambda x: 0 <= x < 1, "a number in [0, 1)"),
    ("data.dev_fraction", lambda x: 0 <= x < 1, "a number in [0, 1)"),
]

SCHEME_NAMES = ("bio", "iob1", "bioes", "bmes", "bilou")  # cner.schemes.SCHEMES
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # cner.runtime.devices.PRECISIONS
CHOICES: dict[str, tuple[str, ...]] = {
    "data.scheme": ("auto", *SCHEME_NAMES),
    "model.head": ("crf", "softmax"),  # cner.models.tagger.HEADS
    "model.tag_scheme": SCHEME_NAMES,
    "training.precision": PRECISIONS,
    "classify.kind": ("single", "pair", "multilabel", "regression"),
    "classify.truncation": ("head", "tail", "head+tail", "chunks"),
    "classify.pooling": ("mean", "max"),
    "data.token_suffix": ("auto", "position", "none"),  # cner.data.conll.TOKEN_SUFFIXES
}
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# [CLS], one character, [SEP]; a sentence pair needs [CLS] a [SEP] b [SEP] with one of each.
MIN_LENGTH, MIN_PAIR_LENGTH = 3, 5
SEED_LIMIT = 2 ** 63


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _bad(key: str, expected: str, value: Any, hint: str = "") -> ConfigError:
    return ConfigError(f"config key {key!r} expects {expected}, found {value!r}{hint}")


def _did_you_mean(value: str, choices: tuple[str, ...] | list[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    near = difflib.get_close_matches(str(value).lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[near[0]]!r}?" if near else ""


def _choices() -> dict[str, tuple[str, ...]]:
    from cner.data.formats import FORMATS

    return {**CHOICES, "data.format": ("auto", *FORMATS)}


def check_values(cfg: Config) -> Config:
    """Reject values of the right type that cannot work, naming the key; returns ``cfg``."""
    for key, expected in AT_LEAST_ONE.items():
        value = _get(cfg, key)
        if value is not None and value < 1:
            raise _bad(key, expected, value)
    for key, test, expected in FLOAT_RANGES:
        value = _get(cfg, key)
        if value is not None and not test(value):
            raise _bad(key, expected, value)
    for key, choices in _choices().items():
        value = _get(cfg, key)
        if value not in choices:
            raise _bad(key, "one of " + ", ".join(choices), value, _did_you_mean(value, choices))
    if not DEVICE.fullmatch(cfg.training.device):
        raise _bad("training.device", "auto, cpu, cuda or cuda:N", cfg.training.device)
    if cfg.classify.task is not None:
        from cner.data.task_registry import TASKS

        if cfg.classify.task not in TASKS:
            raise _bad("classify.task", "one of " + ", ".join(TASKS) + " or null",
                       cfg.classify.task, _did_you_mean(cfg.classify.task, list(TASKS)))
    if not 0 <= cfg.training.seed < SEED_LIMIT:
        raise _bad("training.seed", "an int in [0, 2**63)", cfg.training.seed)
    if cfg.classify.head_chars < 0:
        raise _bad("classify.head_chars", "an int >= 0", cfg.classify.head_chars)
    if not cfg.name or re.search(r"[/\\\x00]", cfg.name) or cfg.name in (".", ".."):
        raise _bad("name", "a name without / or \\ (it names the run directory)", cfg.name)
    if not cfg.data.train:
        raise _bad("data.train", "a file path", cfg.data.train)

    data = cfg.data
    minimum, why = MIN_LENGTH, "[CLS], one character and [SEP]"
    if _is_pair(cfg):
        minimum, why = MIN_PAIR_LENGTH, "[CLS], a character of each text and two [SEP]"
    if data.max_length < minimum:
        raise _bad("data.max_length", f"an int >= {minimum} ({why})", data.max_length)
    if not 0 <= data.overlap < data.max_length - 2:
        raise _bad("data.overlap", f"an int in [0, {data.max_length - 2}): fewer characters "
                   f"than the {data.max_length - 2} of a window (data.max_length - 2)",
                   data.overlap)
    model = cfg.model
    if model.encoder == "scratch" and model.hidden_size % model.num_heads:
        raise ConfigError(f"config key 'model.hidden_size' ({model.hidden_size}) must be a "
                          f"multiple of 'model.num_heads' ({model.num_heads}) for a scratch "
                          "transformer")
    return cfg


def _is_pair(cfg: Config) -> bool:
    if cfg.classify.task is not None:
        from cner.data.task_registry import TASKS

        return TASKS[cfg.classify.task].kind == "pair"
    return cfg.classify.kind == "pair"


def config_from_dict(values: dict[str, Any]) -> Config:
    cfg = _build(Config, values, "")
    data_given = values.get("data") or {}
    if "overlap" not in data_given:  # the default shrinks with a short window: 32 at 128
        cfg.data.overlap = max(0, min(cfg.data.overlap, cfg.data.max_length // 4))
    return check_values(cfg)


def _read_config_file(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save "
                          "the config as UTF-8") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).replace("\n", " ")
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None
    if values is None:  # an empty file: the defaults
        return {}
    if not isinstance(values, dict):
        found = "a list" if isinstance(values, list) else f"the scalar {values!r}"
        raise ConfigError(f"{path}: the top level must be a mapping of sections (name:, data:, "
                          f"model:, training:, classify:), found {found}")
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides.

    Relative paths in the file are taken from the file's folder, those in ``overrides`` from
    the current directory (module docstring); the config holds them as paths from the current
    directory.
    """
    if path is not None:
        path = Path(path)
        values = _read_config_file(path)
        values.setdefault("name", path.stem)
        if path.name != SAVED_CONFIG:
            _resolve_file_paths(values, path.absolute().parent.resolve())
    else:
        values = {}
    # data paths the file does not give are the built-in defaults, the checkout's sample
    if values.get("data") is None:
        values["data"] = {}
    from_defaults = set()
    if isinstance(values["data"], dict):
        for name, default in _default_paths().items():
            if name not in values["data"]:
                values["data"][name] = default
                from_defaults.add(f"data.{name}")
    cfg = config_from_dict(apply_overrides(values, overrides))
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if isinstance(value, str):
            setattr(getattr(cfg, section), name, _expand_corpora(value))
    if cfg.classify.task is None:
        _check_default_sample(cfg, from_defaults - {item.partition("=")[0].strip()
                                                    for item in overrides})
    return cfg


def _check_default_sample(cfg: Config, defaulted: set[str]) -> None:
    """Built-in data paths name the sample corpus of a source checkout, which an installed
    wheel does not have: say so, and how to name other files, instead of "file not found"."""
    for name, option in (("train", "--train FILE"), ("dev", "--dev FILE"),
                         ("test", "--test FILE")):
        value = getattr(cfg.data, name)
        if f"data.{name}" not in defaulted or value is None or os.path.isfile(value):
            continue
        instead = option if name == "train" else f"{option} or --set data.{name}=null"
        raise ConfigError(f"config key 'data.{name}' defaults to the sample corpus of a cner "
                          f"source checkout, and {os.path.abspath(value)} is not there; pass "
                          f"{instead} (or set data.{name} in a --config file)")
