"""Typed run configuration: YAML files, ``--set key.path=value`` overrides, strict validation.

A config is nested dataclasses. Loading checks every key and value type, and that the counts
training needs are at least 1; an unknown key is an error that names the nearest valid one.
"""
from __future__ import annotations

import dataclasses
import difflib
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
    dev_fraction: float = 0.0  # held out from train (seeded) when dev is null
    max_length: int = 128  # model positions per window, [CLS] and [SEP] included
    overlap: int = 32  # characters shared by consecutive windows
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
    corpora_root: str = "../shared/corpora"
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
        from cner.fileio import atomic_write
        with atomic_write(path) as handle:
            yaml.safe_dump(self.to_dict(), handle, allow_unicode=True, sort_keys=False)


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
# ... not found", far from its cause; log_every: 0 divided by zero at the first step.
AT_LEAST_ONE = {"training.epochs": "an int >= 1", "training.max_steps": "an int >= 1 or null",
                "training.batch_size": "an int >= 1", "training.grad_accumulation": "an int >= 1",
                "training.log_every": "an int >= 1"}


def check_values(cfg: Config) -> Config:
    """Reject values of the right type that cannot work, naming the key; returns ``cfg``."""
    for key, expected in AT_LEAST_ONE.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is not None and value < 1:
            raise ConfigError(f"config key {key!r} expects {expected}, found {value!r}")
    return cfg


def config_from_dict(values: dict[str, Any]) -> Config:
    return check_values(_build(Config, values, ""))


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        values.setdefault("name", path.stem)
    return config_from_dict(apply_overrides(values, overrides))
