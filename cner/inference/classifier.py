"""`Classifier`: a trained sentiment / GLUE-style model, for texts, streams, DataFrames and files.

``predict`` outputs carry the predicted label and every label's probability (softmax; an
independent sigmoid per label for multi-label models; the value for regression).
"""
from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cner.encoding.classification import collate_docs, encode_pair, encode_single
from cner.encoding.vocab import CharVocab
from cner.errors import InputError
from cner.fileio import atomic_write
from cner.models.modeldir import ClassifierOptions, ModelMeta
from cner.runtime.engine import Engine, prepare_engine


@dataclass(frozen=True)
class Prediction:
    label: str | float | tuple[str, ...]
    probabilities: dict[str, float]


class Classifier:
    """>>> clf = Classifier.load("runs/senti/model")    # doctest: +SKIP
    >>> clf("这家酒店很干净，服务也好。").label            # doctest: +SKIP
    '1'
    """

    def __init__(self, engine: Engine, vocab: CharVocab, meta: ModelMeta, *,
                 batch_size: int = 64) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.engine, self.vocab, self.meta = engine, vocab, meta
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_dir: str | Path, *, device: str = "cpu", batch_size: int = 64,
             precision: str = "auto") -> Classifier:
        """Load a classification model directory, run like a `Tagger`
        (`cner.runtime.engine.prepare_engine`: bf16 where the hardware has it)."""
        from cner.models.modeldir import load_classifier_dir

        model, featurizer, meta = load_classifier_dir(model_dir)
        engine = prepare_engine(model, device=device, precision=precision)
        return cls(engine, featurizer.vocab, meta, batch_size=batch_size)

    @property
    def model(self):
        return self.engine.model

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    def _encode(self, item: str | tuple[str, str]) -> list[dict]:
        if isinstance(item, tuple):
            return [encode_pair(item[0], item[1], self.vocab, max_length=self.meta.max_length)]
        options = self.meta.options or ClassifierOptions()
        strategy = options.truncation
        return encode_single(item, self.vocab, max_length=self.meta.max_length, strategy=strategy,
                             head_chars=options.head_chars,
                             overlap=self.meta.overlap if strategy == "chunks" else 0)

    def _predict(self, items: list) -> list[Prediction]:
        encoded = [self._encode(item) for item in items]
        probs = predict_encoded(self.engine, encoded, self.vocab.pad_id,
                                batch_size=self.batch_size)
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
                 format: str | None = None, inputs: Iterable[str | Path] = ()) -> int:
    """Write one prediction per example (CSV or JSONL; a file atomically, a device or FIFO as
    a stream: `cner.fileio.open_output`); returns the row count. ``output`` naming one of the
    ``inputs`` (the files the examples were read from) is refused."""
    from cner.fileio import check_not_input, open_output

    fmt = format or ("jsonl" if Path(output).suffix == ".jsonl" else "csv")
    if fmt not in ("csv", "jsonl"):
        raise InputError(f"unknown output format {fmt!r}; expected csv or jsonl")
    check_not_input(output, inputs)
    rows = 0
    labels = classifier.labels if classifier.meta.head != "regression" else []
    with open_output(output) as handle:
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


def predict_encoded(engine: Engine, encoded: Sequence[list[dict]], pad_id: int, *,
                    batch_size: int = 64) -> torch.Tensor:
    """Probabilities ``(N, K)`` (values ``(N,)`` for regression), batched by length, in order."""
    order = sorted(range(len(encoded)), key=lambda k: sum(len(c["input_ids"]) for c in encoded[k]))
    outputs: list = [None] * len(encoded)
    for first in range(0, len(order), batch_size):
        ids = order[first:first + batch_size]
        batch = collate_docs([encoded[k] for k in ids], pad_id)
        batch.pop("n_chars")
        with torch.inference_mode(), engine.autocast():
            inputs = {k: v.to(engine.device) for k, v in batch.items()}
            probs = engine.model.predict(**inputs).float().cpu()
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
