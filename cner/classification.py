"""`Classifier`: a trained sentiment / GLUE-style model, for texts, streams, DataFrames and files.

``predict`` outputs carry the predicted label and every label's probability (softmax; an
independent sigmoid per label for multi-label models; the value for regression).
"""
from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from cner.errors import InputError, ModelError
from cner.fileio import atomic_write


@dataclass(frozen=True)
class Prediction:
    label: str | float | tuple[str, ...]
    probabilities: dict[str, float]


class Classifier:
    """>>> clf = Classifier.load("runs/senti/model")    # doctest: +SKIP
    >>> clf("这家酒店很干净，服务也好。").label            # doctest: +SKIP
    '1'
    """

    def __init__(self, model, vocab, meta, *, batch_size: int = 64, device: str = "cpu") -> None:
        self.model, self.vocab, self.meta = model, vocab, meta
        self.batch_size = batch_size
        self.device = torch.device(device)

    @classmethod
    def load(cls, model_dir: str | Path, *, device: str = "cpu", batch_size: int = 64) -> Classifier:
        from cner.models.classifier import SequenceClassifier
        from cner.models.storage import (WEIGHTS, encoder_from_dir, load_featurizer, load_state,
                                         read_meta)

        directory = Path(model_dir)
        meta = read_meta(directory)
        if meta.task != "classification":
            raise ModelError(f"{directory} holds a {meta.task} model, not a classifier")
        extra = meta.extra or {}
        model = SequenceClassifier(encoder_from_dir(directory), max(1, len(meta.labels)),
                                   kind=meta.head, dropout=meta.dropout,
                                   pooling=extra.get("pooling", "mean"))
        load_state(model, directory / WEIGHTS)
        vocab = load_featurizer(directory, meta).vocab
        return cls(model.to(device).eval(), vocab, meta, batch_size=batch_size, device=device)

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    def _encode(self, item: str | tuple[str, str]) -> list[dict]:
        from cner.classify_encoding import encode_pair, encode_single

        extra = self.meta.extra or {}
        if isinstance(item, tuple):
            return [encode_pair(item[0], item[1], self.vocab, max_length=self.meta.max_length)]
        strategy = extra.get("truncation", "head+tail")
        return encode_single(item, self.vocab, max_length=self.meta.max_length, strategy=strategy,
                             head_chars=extra.get("head_chars", 128),
                             overlap=self.meta.overlap if strategy == "chunks" else 0)

    def _predict(self, items: list) -> list[Prediction]:
        from cner.tasks.classification import decide, predict_encoded

        encoded = [self._encode(item) for item in items]
        probs = predict_encoded(self.model, encoded, self.vocab.pad_id,
                                batch_size=self.batch_size, device=self.device)
        if not items:
            return []
        decided = decide(probs, self.meta.head, self.labels)
        if self.meta.head == "regression":
            return [Prediction(value, {}) for value in decided]
        return [Prediction(label, {lab: round(float(p), 6) for lab, p in zip(self.labels, row)})
                for label, row in zip(decided, probs.tolist())]

    def __call__(self, text: str, text_pair: str | None = None) -> Prediction:
        return self._predict([text if text_pair is None else (text, text_pair)])[0]

    def pipe(self, items: Iterable[str | tuple[str, str]], *, chunk_size: int | None = None
             ) -> Iterator[Prediction]:
        """Lazily classify texts (or ``(text, pair)`` tuples), in order, a chunk at a time."""
        iterator = iter(items)
        size = chunk_size or self.batch_size * 8
        while chunk := list(itertools.islice(iterator, size)):
            yield from self._predict(chunk)

    def predict_frame(self, df, text_column: str = "text", text_pair_column: str | None = None):
        """A copy of ``df`` with ``label`` and one ``prob_<label>`` column per label."""
        for name in (text_column, text_pair_column):
            if name is not None and name not in df.columns:
                raise InputError(f"no column {name!r}; the columns are: "
                                 f"{', '.join(map(str, df.columns))}")
        texts = df[text_column].astype(str).tolist()
        items = texts if text_pair_column is None else list(zip(texts, df[text_pair_column].astype(str)))
        preds = list(self.pipe(items))
        out = df.copy()
        out["label"] = [p.label for p in preds]
        for lab in self.labels if self.meta.head != "regression" else []:
            out[f"prob_{lab}"] = [p.probabilities[lab] for p in preds]
        return out


def predict_file(classifier: Classifier, examples: Iterable, output: str | Path, *,
                 format: str | None = None) -> int:
    """Write one prediction per example (CSV or JSONL, atomically); returns the row count."""
    output = Path(output)
    fmt = format or ("jsonl" if output.suffix == ".jsonl" else "csv")
    if fmt not in ("csv", "jsonl"):
        raise InputError(f"unknown output format {fmt!r}; expected csv or jsonl")
    rows = 0
    labels = classifier.labels if classifier.meta.head != "regression" else []
    with atomic_write(output) as handle:
        writer = csv.writer(handle, lineterminator="\n") if fmt == "csv" else None
        if writer:
            writer.writerow(["id", "label", *[f"prob_{lab}" for lab in labels]])
        iterator = iter(examples)
        while chunk := list(itertools.islice(iterator, classifier.batch_size * 8)):
            items = [ex.text if ex.text_pair is None else (ex.text, ex.text_pair) for ex in chunk]
            for ex, pred in zip(chunk, classifier._predict(items)):
                rows += 1
                label = "|".join(pred.label) if isinstance(pred.label, tuple) else pred.label
                doc_id = ex.id if ex.id is not None else str(rows)
                if writer:
                    writer.writerow([doc_id, label,
                                     *[f"{pred.probabilities[lab]:.6f}" for lab in labels]])
                else:
                    handle.write(json.dumps({"id": doc_id, "label": pred.label,
                                             "probabilities": pred.probabilities},
                                            ensure_ascii=False) + "\n")
    return rows


def evaluate_classifier(classifier: Classifier, examples: list) -> dict:
    """Scores of ``classifier`` on labelled ``examples`` (unseen labels are an error)."""
    from cner.tasks.classification import score

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
    extra = classifier.meta.extra or {}
    return score(classifier.meta.head, classifier.labels, extra.get("positive"),
                 [ex.label for ex in labelled], predicted)
