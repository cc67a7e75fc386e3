"""The value checks of a config: values its types admit but training cannot use.

`check_values` runs after a config is built: counts at least one (`AT_LEAST_ONE`), floats in
range (`FLOAT_RANGES`, NaN fails every test), names from their choices (`CHOICES`, with
"did you mean"), the device, the task, the seed, the run name, and a window long enough
for its special tokens. Each failure is a `ConfigError` that names the key and what it expects.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any

from cner.config.schema import Config
from cner.errors import ConfigError

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
                "model.bigram_min_count": "an int >= 1", "pretrain.span_max": "an int >= 1",
                "pretrain.vocab_size": "an int >= 1", "pretrain.eval_sequences": "an int >= 1",
                "distill.teacher_batch_chars": "an int >= 1", "distill.eval_texts": "an int >= 1"}

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
    ("pretrain.mask_ratio", lambda x: 0 < x < 1, "a number in (0, 1)"),
    ("pretrain.mask_prob", lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    ("pretrain.random_prob", lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    ("pretrain.span_p", lambda x: 0 < x <= 1, "a number in (0, 1]"),
    ("pretrain.eval_fraction", lambda x: 0 <= x < 1, "a number in [0, 1)"),
    ("distill.temperature", lambda x: 0 < x < math.inf, "a finite number > 0"),
    ("distill.alpha", lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    ("distill.eval_fraction", lambda x: 0 <= x < 1, "a number in [0, 1)"),
]

SCHEME_NAMES = ("bio", "iob1", "bioes", "bmes", "bilou")  # cner.schemes.SCHEMES
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # cner.runtime.devices.PRECISIONS
# How a classifier turns token states into a text vector (cner.models.classifier uses these);
# the config adds "auto", resolved per encoder before a model is built or saved.
TOKEN_POOLINGS = ("cls", "mean", "max")
CHOICES: dict[str, tuple[str, ...]] = {
    "data.scheme": ("auto", *SCHEME_NAMES),
    "model.head": ("crf", "softmax"),  # cner.models.tagger.HEADS
    "model.tag_scheme": SCHEME_NAMES,
    "training.precision": PRECISIONS,
    "classify.kind": ("single", "pair", "multilabel", "regression"),  # cner.models.classifier
    "classify.truncation": ("head", "tail", "head+tail", "chunks"),
    "classify.pooling": ("mean", "max"),  # cner.models.classifier
    "classify.token_pooling": ("auto", *TOKEN_POOLINGS),
    "data.token_suffix": ("auto", "position", "none"),  # cner.data.conll.TOKEN_SUFFIXES
    "pretrain.masking": ("wwm", "char", "span"),  # cner.encoding.masking.STRATEGIES
    "pretrain.pair_objective": ("none", "sop", "nsp"),  # cner.encoding.packing.PAIR_OBJECTIVES
}
# The corpus formats cner.data.formats reads, named here because config sits below data (a
# test checks the two lists agree).
CORPUS_FORMATS = ("conll", "cluener", "jsonl")
# The registered classification tasks (cner.data.task_registry.TASKS) and their kinds.
TASK_KINDS = {"chnsenticorp": "single", "chnsenticorp_htl": "single", "afqmc": "pair",
              "sst2": "single", "mrpc": "pair"}
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
    return {**CHOICES, "data.format": ("auto", *CORPUS_FORMATS)}


def check_values(cfg: Config) -> Config:
    """Reject values of the right type that cannot work, naming the key; returns ``cfg``."""
    _check_tables(cfg)
    _check_names(cfg)
    _check_window(cfg)
    return cfg


def _check_tables(cfg: Config) -> None:
    """Counts, float ranges and choices (the tables above), the device and the task."""
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
    if cfg.classify.task is not None and cfg.classify.task not in TASK_KINDS:
        raise _bad("classify.task", "one of " + ", ".join(TASK_KINDS) + " or null",
                   cfg.classify.task, _did_you_mean(cfg.classify.task, list(TASK_KINDS)))


def _check_names(cfg: Config) -> None:
    """The seed, ``classify.head_chars``, the run name and the training file."""
    if not 0 <= cfg.training.seed < SEED_LIMIT:
        raise _bad("training.seed", "an int in [0, 2**63)", cfg.training.seed)
    if cfg.classify.head_chars < 0:
        raise _bad("classify.head_chars", "an int >= 0", cfg.classify.head_chars)
    if not cfg.name or re.search(r"[/\\\x00]", cfg.name) or cfg.name in (".", ".."):
        raise _bad("name", "a name without / or \\ (it names the run directory)", cfg.name)
    if not cfg.data.train:
        raise _bad("data.train", "a file path", cfg.data.train)


def _check_window(cfg: Config) -> None:
    """A window that holds its special tokens and a character, an overlap shorter than a
    window, and a scratch transformer whose hidden size splits into its heads."""
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


def _is_pair(cfg: Config) -> bool:
    if cfg.classify.task is not None:
        return TASK_KINDS[cfg.classify.task] == "pair"
    return cfg.classify.kind == "pair"
