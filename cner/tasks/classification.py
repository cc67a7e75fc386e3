"""Sentiment and GLUE/CLUE-style classification on the shared encoders and training loop."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cner.config import Config
from cner.data.classification import ClassificationExample, read_classification_file
from cner.data.task_registry import get_task, load_split
from cner.encoding.batching import bucketed_batches
from cner.encoding.classification import check_strategy, collate_docs, encode_pair, encode_single
from cner.encoding.vocab import CharVocab
from cner.errors import ConfigError, InputError
from cner.inference.classifier import Classifier, decide, predict_encoded
from cner.metrics import scores_for_kind
from cner.models.classifier import resolve_token_pooling
from cner.models.metadata import (CLASSIFICATION, ClassifierOptions, ModelMeta,
                                  training_provenance)
from cner.models.modeldir import build_classifier, save_model_dir
from cner.runtime.devices import resolve_device, resolve_precision
from cner.runtime.engine import prepare_engine
from cner.training.loop import TrainResult, train_loop
from cner.training.runs import open_run, run_encoder

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


def data_files(data: TaskData) -> list[tuple[str, str]]:
    """``(split, path)`` of the files the rows of ``data`` were read from, in order."""
    return list(dict.fromkeys((split, ex.source) for split, rows in
                              (("train", data.train), ("dev", data.dev), ("test", data.test))
                              for ex in rows))


def _label_tuple(label) -> tuple:
    if label is None:
        return ()
    return label if isinstance(label, tuple) else (label,)


def encode_classification_example(ex: ClassificationExample, vocab: CharVocab, cfg: Config
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


def classification_train_batches(encoded: Sequence[list[dict]], labels: torch.Tensor, *,
                                 batch_size: int, seed: int, epoch: int, pad_id: int
                                 ) -> list[dict]:
    """The epoch's collated training batches (`bucketed_batches`: deterministic per
    ``(seed, epoch)``, which is what makes resume exact)."""
    sizes = [sum(len(c["input_ids"]) for c in doc) for doc in encoded]
    order = bucketed_batches(sizes, batch_size=batch_size, seed=seed, epoch=epoch)
    return [{**collate_docs([encoded[k] for k in b], pad_id), "labels": labels[b]}
            for b in order]


def train_classifier(config: Config | None = None, *, output: str | Path | None = None,
                     resume: str | Path | None = None, overwrite: bool = False,
                     progress: bool = True) -> tuple[Path, TrainResult]:
    """Fine-tune a sequence classifier; the best model goes to ``RUN_DIR/model``."""
    cfg, run_dir = open_run(config, output=output, resume=resume, overwrite=overwrite,
                            check=load_task_data)
    check_strategy(cfg.classify.truncation)
    data = load_task_data(cfg)
    if not data.train:
        raise InputError("the training data has no rows", path=cfg.data.train)
    texts = (t for ex in data.train for t in (ex.text, ex.text_pair or ""))
    encoder, vocab = run_encoder(cfg, run_dir, texts, resume=resume is not None)
    meta = ModelMeta(task=CLASSIFICATION, labels=data.labels, scheme=None, head=data.kind,
                     dropout=cfg.model.dropout, lowercase=cfg.data.lowercase,
                     halfwidth=cfg.data.halfwidth, max_length=cfg.data.max_length,
                     overlap=cfg.data.overlap, vocab_size=len(vocab),
                     options=ClassifierOptions(task=data.name,
                                               truncation=cfg.classify.truncation,
                                               head_chars=cfg.classify.head_chars,
                                               pooling=cfg.classify.pooling,
                                               token_pooling=resolve_token_pooling(
                                                   cfg.classify.token_pooling, encoder),
                                               positive=data.positive))
    model = build_classifier(encoder, meta)
    encoded = [encode_classification_example(ex, vocab, cfg) for ex in data.train]
    labels = label_tensor([ex.label for ex in data.train], data.kind, data.labels)
    dev_encoded = [encode_classification_example(ex, vocab, cfg) for ex in data.dev]
    resolve_precision(cfg.training.precision, resolve_device(cfg.training.device))  # fail early
    provenance = training_provenance(data_files(data))  # for cner_model.json and the model card

    def epoch_batches(epoch: int) -> list[dict]:
        return classification_train_batches(encoded, labels, batch_size=cfg.training.batch_size,
                            seed=cfg.training.seed, epoch=epoch, pad_id=vocab.pad_id)

    def evaluate(m) -> dict:
        engine = prepare_engine(m, device=cfg.training.device, precision=cfg.training.precision,
                                inference_only=False)
        probs = predict_encoded(engine, dev_encoded, vocab.pad_id)
        return scores_for_kind(data.kind, data.labels, data.positive,
                               [ex.label for ex in data.dev], decide(probs, data.kind, data.labels))

    def save_best(m, metrics: dict) -> None:
        save_model_dir(m, vocab, meta, run_dir / "model", run_config=cfg, metrics=metrics,
                       provenance=provenance)

    result = train_loop(model, cfg=cfg.training, run_dir=run_dir, epoch_batches=epoch_batches,
                        evaluate=evaluate if data.dev else None, save_best=save_best,
                        score_key=SCORE_KEY[data.kind], resume=resume is not None,
                        progress=progress)
    return run_dir, result


def evaluate_classifier(classifier: Classifier, examples: list) -> dict:
    """Scores of ``classifier`` on labelled ``examples`` (unseen labels are an error)."""
    labelled = [ex for ex in examples if ex.label is not None]
    if not labelled:
        raise InputError("no labelled rows to evaluate on",
                         path=examples[0].source if examples else None)
    known = set(classifier.labels)
    if classifier.meta.head != "regression":
        for ex in labelled:
            for lab in ex.label if isinstance(ex.label, tuple) else (ex.label,):
                if lab not in known:
                    raise InputError(f"label {lab!r} is not among the model's labels "
                                     f"{sorted(known)}", path=ex.source, line=ex.line)
    items = [ex.text if ex.text_pair is None else (ex.text, ex.text_pair) for ex in labelled]
    predicted = [p.label for p in classifier.pipe(items)]
    options = classifier.meta.options or ClassifierOptions()
    return scores_for_kind(classifier.meta.head, classifier.labels, options.positive,
                           [ex.label for ex in labelled], predicted)
