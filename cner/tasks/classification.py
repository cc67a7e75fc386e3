"""Sentiment and GLUE/CLUE-style classification on the shared encoders and training loop."""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cner.classify_encoding import check_strategy, encode_pair, encode_single
from cner.encoding import CharVocab
from cner.config import Config
from cner.errors import ConfigError, InputError
from cner.models.storage import ModelMeta, save_model_dir
from cner.tasks.classification_data import ClassificationExample, read_classification_file
from cner.tasks.registry import get_task, load_split
from cner.tasks.runs import open_run, run_encoder
from cner.devices import resolve_device, resolve_precision
from cner.training import TrainResult, train_loop

SCORE_KEY = {"single": "accuracy", "pair": "accuracy", "multilabel": "micro_f1",
             "regression": "pearson"}


@dataclass
class TaskData:
    name: str
    kind: str
    labels: list[str]  # empty for regression
    positive: str | None
    train: list[ClassificationExample]
    dev: list[ClassificationExample]
    test: list[ClassificationExample]  # labelled test rows only


def _labelled(examples: Sequence[ClassificationExample]) -> list[ClassificationExample]:
    return [ex for ex in examples if ex.label is not None]


def load_task_data(cfg: Config) -> TaskData:
    """A registered task's splits, or the files named in ``data`` with the ``classify`` columns."""
    c = cfg.classify
    if c.task:
        spec = get_task(c.task)
        splits = {s: load_split(spec, s, root=c.corpora_root) for s in spec.files}
        labels = list(spec.labels or ())
        return TaskData(spec.name, spec.kind, labels, spec.positive, splits.get("train", []),
                        _labelled(splits.get("dev", [])), _labelled(splits.get("test", [])))
    kind = c.kind
    label_kind = "single" if kind == "pair" else kind
    if kind == "pair" and not c.text_pair_column:
        raise ConfigError("classify.kind=pair needs classify.text_pair_column")

    def read(path: str | None, labelled: bool = True) -> list[ClassificationExample]:
        if not path:
            return []
        return read_classification_file(path, text_column=c.text_column,
                                        text_pair_column=c.text_pair_column,
                                        label_column=c.label_column if labelled else None,
                                        id_column=c.id_column, label_kind=label_kind,
                                        label_separator=c.label_separator)

    train, dev, test = read(cfg.data.train), read(cfg.data.dev), read(cfg.data.test)
    labels: list[str] = []
    if kind != "regression":
        seen = {lab for ex in train for lab in _label_tuple(ex.label)}
        labels = sorted(seen)
        for ex in dev + test:
            for lab in _label_tuple(ex.label):
                if lab not in seen:
                    raise InputError(f"label {lab!r} never occurs in the training data "
                                     f"(labels: {', '.join(labels)})", path=ex.source, line=ex.line)
    return TaskData(Path(cfg.data.train).stem, kind, labels, None, train, dev, test)


def _label_tuple(label) -> tuple:
    if label is None:
        return ()
    return label if isinstance(label, tuple) else (label,)


def encode_example(ex: ClassificationExample, vocab: CharVocab, cfg: Config
                   ) -> list[dict[str, list[int]]]:
    if ex.text_pair is not None:
        return [encode_pair(ex.text, ex.text_pair, vocab, max_length=cfg.data.max_length)]
    return encode_single(ex.text, vocab, max_length=cfg.data.max_length,
                         strategy=cfg.classify.truncation, head_chars=cfg.classify.head_chars,
                         overlap=cfg.data.overlap if cfg.classify.truncation == "chunks" else 0)


def label_tensor(values: Sequence, kind: str, labels: list[str]) -> torch.Tensor:
    if kind == "regression":
        return torch.tensor([float(v) for v in values], dtype=torch.float)
    index = {lab: i for i, lab in enumerate(labels)}
    if kind == "multilabel":
        out = torch.zeros(len(values), len(labels))
        for row, value in enumerate(values):
            for lab in _label_tuple(value):
                out[row, index[lab]] = 1.0
        return out
    return torch.tensor([index[v] for v in values], dtype=torch.long)


def collate_docs(docs: Sequence[list[dict[str, list[int]]]], pad_id: int) -> dict:
    """Chunks of several documents into one padded batch with ``doc_index``."""
    chunks = [(d, chunk) for d, doc in enumerate(docs) for chunk in doc]
    width = max(len(chunk["input_ids"]) for _, chunk in chunks)
    input_ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)  # shape: (C, L)
    token_type_ids = torch.zeros((len(chunks), width), dtype=torch.long)
    attention_mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for row, (_, chunk) in enumerate(chunks):
        n = len(chunk["input_ids"])
        input_ids[row, :n] = torch.tensor(chunk["input_ids"])
        token_type_ids[row, :n] = torch.tensor(chunk["token_type_ids"])
        attention_mask[row, :n] = 1
    doc_index = torch.tensor([d for d, _ in chunks], dtype=torch.long)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": attention_mask, "doc_index": doc_index,
            "n_chars": int(attention_mask.sum()) - 2 * len(chunks)}


def make_batches(encoded: Sequence[list[dict]], labels: torch.Tensor, *, batch_size: int,
                 seed: int, epoch: int, pad_id: int) -> list[dict]:
    """Length-bucketed, deterministic per ``(seed, epoch)`` (exact resume)."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    size = [sum(len(c["input_ids"]) for c in doc) for doc in encoded]
    for first in range(0, len(order), pool):
        chunk = sorted(order[first:first + pool], key=lambda k: size[k])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return [{**collate_docs([encoded[k] for k in b], pad_id), "labels": labels[b]} for b in batches]


def predict_encoded(model, encoded: Sequence[list[dict]], pad_id: int, *, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Probabilities ``(N, K)`` (values ``(N,)`` for regression), batched by length, in order."""
    order = sorted(range(len(encoded)), key=lambda k: sum(len(c["input_ids"]) for c in encoded[k]))
    outputs: list = [None] * len(encoded)
    for first in range(0, len(order), batch_size):
        ids = order[first:first + batch_size]
        batch = collate_docs([encoded[k] for k in ids], pad_id)
        batch.pop("n_chars")
        probs = model.predict(**{k: v.to(device) for k, v in batch.items()}).float().cpu()
        for row, k in enumerate(ids):
            outputs[k] = probs[row]
    return torch.stack(outputs) if outputs else torch.empty(0)


def decide(probs: torch.Tensor, kind: str, labels: list[str]) -> list:
    """Predicted labels from probabilities: argmax, sigmoid > 0.5 per label, or the value."""
    if kind == "regression":
        return probs.tolist()
    if kind == "multilabel":
        return [tuple(lab for lab, p in zip(labels, row) if p > 0.5) for row in probs.tolist()]
    return [labels[i] for i in probs.argmax(-1).tolist()]


def score(kind: str, labels: list[str], positive: str | None, gold: Sequence, predicted: Sequence
          ) -> dict:
    from cner.evaluation import classification_scores, multilabel_scores, regression_scores

    if kind == "regression":
        return regression_scores(gold, predicted)
    if kind == "multilabel":
        return multilabel_scores(gold, predicted, labels=labels)
    return classification_scores(gold, predicted, labels=labels, positive=positive)


def train_classifier(config: Config | None = None, *, output: str | Path | None = None,
                     resume: str | Path | None = None, overwrite: bool = False,
                     progress: bool = True) -> tuple[Path, TrainResult]:
    """Fine-tune a sequence classifier; the best model goes to ``RUN_DIR/model``."""
    from cner.models.classifier import SequenceClassifier

    cfg, run_dir = open_run(config, output=output, resume=resume, overwrite=overwrite)
    check_strategy(cfg.classify.truncation)
    data = load_task_data(cfg)
    if not data.train:
        raise InputError("the training data has no rows", path=cfg.data.train)
    texts = (t for ex in data.train for t in (ex.text, ex.text_pair or ""))
    encoder, vocab = run_encoder(cfg, run_dir, texts, resume=resume is not None)
    model = SequenceClassifier(encoder, max(1, len(data.labels)), kind=data.kind,
                               dropout=cfg.model.dropout, pooling=cfg.classify.pooling)
    encoded = [encode_example(ex, vocab, cfg) for ex in data.train]
    labels = label_tensor([ex.label for ex in data.train], data.kind, data.labels)
    dev_encoded = [encode_example(ex, vocab, cfg) for ex in data.dev]
    meta = ModelMeta(task="classification", labels=data.labels, scheme=None, head=data.kind,
                     dropout=cfg.model.dropout, lowercase=cfg.data.lowercase,
                     halfwidth=cfg.data.halfwidth, max_length=cfg.data.max_length,
                     overlap=cfg.data.overlap,
                     extra={"task": data.name, "truncation": cfg.classify.truncation,
                            "head_chars": cfg.classify.head_chars, "pooling": cfg.classify.pooling,
                            "positive": data.positive})
    device = resolve_device(cfg.training.device)
    resolve_precision(cfg.training.precision, device)

    def epoch_batches(epoch: int) -> list[dict]:
        return make_batches(encoded, labels, batch_size=cfg.training.batch_size,
                            seed=cfg.training.seed, epoch=epoch, pad_id=vocab.pad_id)

    def evaluate(m) -> dict:
        probs = predict_encoded(m, dev_encoded, vocab.pad_id, device=device)
        return score(data.kind, data.labels, data.positive, [ex.label for ex in data.dev],
                     decide(probs, data.kind, data.labels))

    def save_best(m, metrics: dict) -> None:
        save_model_dir(m, vocab, meta, run_dir / "model", run_config=cfg, metrics=metrics)

    result = train_loop(model, cfg=cfg.training, run_dir=run_dir, epoch_batches=epoch_batches,
                        evaluate=evaluate if data.dev else None, save_best=save_best,
                        score_key=SCORE_KEY[data.kind], resume=resume is not None,
                        progress=progress)
    return run_dir, result
