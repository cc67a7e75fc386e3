"""The model directory: everything needed to reload a tagger with no network.

``model.safetensors`` (all weights), ``config.json`` (the encoder's Hugging Face config),
``vocab.txt``, ``cner_model.json`` (tags, scheme, head, normalisation, window sizes),
``cner_config.yaml`` (the run's config) and ``metrics.json`` (from training).
A directory is written under a temporary name and renamed into place, so a crash never
leaves a half-written model.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from cner.encoding.vocab import CharVocab
from cner.encoding.features import Featurizer
from cner.errors import ModelError

WEIGHTS = "model.safetensors"
ENCODER_CONFIG = "config.json"
VOCAB = "vocab.txt"
BIGRAMS = "bigrams.txt"
META = "cner_model.json"
RUN_CONFIG = "cner_config.yaml"
METRICS = "metrics.json"
REQUIRED = (WEIGHTS, ENCODER_CONFIG, VOCAB, META)


@dataclass(frozen=True)
class ModelMeta:
    task: str  # "ner" or a classification task
    labels: list[str]  # tags for NER, class names for classification
    scheme: str | None
    head: str
    dropout: float
    lowercase: bool
    halfwidth: bool
    max_length: int
    overlap: int
    extra: dict | None = None


def save_state(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def load_state(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"cannot read weights {path}: {exc}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"weights {path} do not fit the model: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place, replacing any previous one."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def as_featurizer(vocab: CharVocab | Featurizer) -> Featurizer:
    return vocab if isinstance(vocab, Featurizer) else Featurizer(vocab)


def save_model_dir(model: nn.Module, vocab: CharVocab | Featurizer, meta: ModelMeta,
                   directory: str | Path, *, run_config=None, metrics: dict | None = None) -> Path:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_state(model, tmp / WEIGHTS)
        model.encoder.config.to_json_file(str(tmp / ENCODER_CONFIG))
        featurizer = as_featurizer(vocab)
        featurizer.vocab.save(tmp / VOCAB)
        if featurizer.bigrams:
            (tmp / BIGRAMS).write_text("\n".join(featurizer.bigrams) + "\n", "utf-8")
        (tmp / META).write_text(json.dumps(asdict(meta), ensure_ascii=False, indent=1), "utf-8")
        if run_config is not None:
            run_config.save(tmp / RUN_CONFIG)
        if metrics is not None:
            (tmp / METRICS).write_text(json.dumps(metrics, indent=1), "utf-8")
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_meta(directory: str | Path) -> ModelMeta:
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} not found",)
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"model directory {directory} lacks {', '.join(missing)}; point --model "
                         "at the 'model' folder that cner train wrote")
    try:
        return ModelMeta(**json.loads((directory / META).read_text("utf-8")))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{directory / META} is not a cner model description: {exc}") from None


def encoder_from_dir(directory: Path) -> nn.Module:
    """An encoder of the saved architecture with empty weights (filled by `load_state`)."""
    from transformers import AutoConfig, AutoModel

    from cner.models.bilstm import MODEL_TYPE, BiLSTMConfig, BiLSTMEncoder

    try:
        values = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
        if values.get("model_type") == MODEL_TYPE:
            return BiLSTMEncoder(BiLSTMConfig.from_dict(values))
        config = AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"cannot read {directory / ENCODER_CONFIG}: {exc}") from None
    return drop_pooler(AutoModel.from_config(config))


def drop_pooler(encoder: nn.Module) -> nn.Module:
    """cner's heads read the [CLS] or character states directly; the pooler is dead weight."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def load_featurizer(directory: Path, meta: ModelMeta) -> Featurizer:
    vocab = CharVocab.load(directory / VOCAB, lowercase=meta.lowercase, halfwidth=meta.halfwidth)
    extra = meta.extra or {}
    bigrams = None
    if extra.get("bigrams"):
        if not (directory / BIGRAMS).is_file():
            raise ModelError(f"model directory {directory} lacks {BIGRAMS}, which its model uses")
        bigrams = (directory / BIGRAMS).read_text("utf-8").split("\n")[:-1]
    saved = extra.get("lexicon_dictionary")
    if extra.get("lexicon") and saved:
        from cner.encoding.lexicon import dictionary_fingerprint
        if saved != dictionary_fingerprint():
            warnings.warn(f"{directory} was trained with another jieba dictionary ({saved}, "
                          f"installed: {dictionary_fingerprint()}): its lexicon features will "
                          "differ; install the jieba version it was trained with", stacklevel=2)
    return Featurizer(vocab, bigrams=bigrams, boundaries=bool(extra.get("word_boundaries")),
                      lexicon=bool(extra.get("lexicon")))


def load_tagger_dir(directory: str | Path, *, device: str | torch.device = "cpu"):
    """``(TokenTagger, Featurizer, ModelMeta)`` from a model directory, in eval mode."""
    from cner.models.tagger import TokenTagger

    directory = Path(directory)
    meta = read_meta(directory)
    if meta.task != "ner":
        raise ModelError(f"{directory} holds a {meta.task} model, not a NER tagger")
    featurizer = load_featurizer(directory, meta)
    model = TokenTagger(encoder_from_dir(directory), meta.labels, scheme=meta.scheme or "bio",
                        head=meta.head, dropout=meta.dropout,
                        n_bigrams=len(featurizer.bigrams or ()), boundaries=featurizer.boundaries,
                        lexicon=featurizer.lexicon)
    load_state(model, directory / WEIGHTS)
    return model.to(device).eval(), featurizer, meta


def load_classifier_dir(directory: str | Path, *, device: str | torch.device = "cpu"):
    """``(SequenceClassifier, Featurizer, ModelMeta)`` from a model directory, in eval mode."""
    from cner.models.classifier import SequenceClassifier

    directory = Path(directory)
    meta = read_meta(directory)
    if meta.task != "classification":
        raise ModelError(f"{directory} holds a {meta.task} model, not a classifier")
    extra = meta.extra or {}
    model = SequenceClassifier(encoder_from_dir(directory), max(1, len(meta.labels)),
                               kind=meta.head, dropout=meta.dropout,
                               pooling=extra.get("pooling", "mean"))
    load_state(model, directory / WEIGHTS)
    return model.to(device).eval(), load_featurizer(directory, meta), meta
