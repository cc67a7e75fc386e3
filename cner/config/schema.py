"""The typed sections of a run configuration, their defaults, and writing a config back.

A config is nested dataclasses, one per section (``data``, ``model``, ``training``,
``classify``, ``pretrain``, ``distill``) under `Config`; a field's annotation is the type a YAML value must have
(`cner.config.loading` checks it), its default the value when the file does not give one.
`PATH_KEYS` names the fields that hold paths (`cner.config.paths` resolves them).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


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
    # a chunk's vector: cls (the [CLS] state) | mean | max over its positions; auto: cls for
    # transformers, max for a BiLSTM (whose [CLS] state is one direction's summary)
    token_pooling: str = "auto"


@dataclass
class PretrainConfig:
    """Masked-LM pre-training (``cner pretrain``); sequences are ``data.max_length`` long."""

    masking: str = "wwm"  # wwm (whole jieba words) | char | span (SpanBERT)
    mask_ratio: float = 0.15  # share of the positions selected for prediction
    mask_prob: float = 0.8  # of those, shown as [MASK]
    random_prob: float = 0.1  # of those, shown as a random character (the rest: unchanged)
    span_p: float = 0.2  # span: span lengths in words ~ geometric(span_p)
    span_max: int = 10  # span: at most this many words
    pair_objective: str = "none"  # none | sop (sentence order) | nsp (next sentence)
    vocab: str | None = None  # a `cner vocab build` directory; null: built from the text
    vocab_size: int = 8000  # a vocabulary built from the text: tokens, specials included
    reserved: int = 100  # [unusedN] slots kept for characters added later
    eval_fraction: float = 0.02  # packed sequences held out to evaluate the MLM loss
    eval_sequences: int = 1000  # at most this many held out


@dataclass
class DistillConfig:
    """Knowledge distillation (``cner distill``): a student tagger trained on the per-character
    tag distributions (CRF marginals) of a teacher model, and on gold labels where they exist."""

    temperature: float = 1.0  # both sides' marginals of path scores / T; the soft loss x T^2
    alpha: float = 0.5  # labelled sentences: soft-target loss weight; gold CRF loss: 1 - alpha
    gold: bool = True  # read data.train (teacher-annotated too); false: raw text only
    teacher_batch_chars: int = 4096  # padded positions per teacher call
    eval_fraction: float = 0.05  # raw-text lines held out to score agreement with the teacher
    eval_texts: int = 2000  # at most this many held out
    # start from the teacher's weights: every tensor of the same name (characters and
    # bigrams row by row); the student must have the teacher's shape, less any feature
    init_from_teacher: bool = False


@dataclass
class Config:
    name: str = "tiny-cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

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


# Keys whose values are file or folder paths. model.encoder is a path only when it names an
# existing folder (otherwise it is "scratch", "bilstm" or a hub name).
PATH_KEYS = ("data.train", "data.dev", "data.test", "classify.corpora_root",
             "pretrain.vocab")
LOCAL_ENCODERS = ("scratch", "bilstm")
