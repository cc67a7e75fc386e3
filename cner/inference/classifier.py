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
from cner.models.metadata import ClassifierOptions, ModelMeta
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
        """Load a classification model directory (or the Hugging Face hub id of one, as for
        `Tagger.load`), run like a `Tagger` (`cner.runtime.engine.prepare_engine`: bf16 where
        the hardware has it)."""
        from cner.models.hub import resolve_model_dir
        from cner.models.modeldir import load_classifier_dir

        model, featurizer, meta = load_classifier_dir(resolve_model_dir(model_dir))
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
        """A copy of ``df`` with ``label`` and one ``prob_<label>`` column per label (a missing
        text, None or NaN, is classified as an empty text)."""
        for name in (text_column, text_pair_column):
            if name is not None and name not in df.columns:
                raise InputError(f"no column {name!r}; the columns are: "
                                 f"{', '.join(map(str, df.columns))}")
        texts = _texts(df[text_column])
        items = texts if text_pair_column is None else list(zip(texts, _texts(df[text_pair_column])))
        preds = list(self.pipe(items))
        out = df.copy()
        out["label"] = [p.label for p in preds]
        for lab in self.labels if self.meta.head != "regression" else []:
            out[f"prob_{lab}"] = [p.probabilities[lab] for p in preds]
        return out


def _texts(column) -> list[str]:
    """A column's values as texts; a missing one (None, NaN: a null in a Parquet or CSV
    file) is an empty text, not ``"None"``/``"nan"``."""
    import pandas as pd

    return ["" if value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
            else str(value) for value in column.tolist()]


def predict_file(classifier: Classifier, examples: Iterable, output: str | Path, *,
                 format: str | None = None, inputs: Iterable[str | Path] = ()) -> int:
    """Write one prediction per example; returns the row count.

    Formats (``format``, else the one the output suffix names: a suffix naming none is an
    `InputError` before anything is written; no suffix is CSV):

    * CSV / TSV: ``id,label,prob_<label>...`` (a multi-label label is its labels joined by
      ``|``; probabilities with 6 decimals);
    * JSONL / JSON (a list): ``{"id", "label", "probabilities"}`` per row;
    * Parquet (needs pyarrow): the CSV columns, typed: ``label`` a string, a list of strings
      (multi-label) or a double (regression); ``prob_<label>`` doubles. Written whole at the
      end, so to a regular file only.

    A file is written atomically, a device or FIFO as a stream (`cner.fileio.open_output`).
    ``output`` naming one of the ``inputs`` (the files the examples were read from) is
    refused."""
    from cner.fileio import check_not_input, open_output, output_target
    from cner.inference.writers import STREAMED, import_pyarrow, output_format

    check_not_input(output, inputs)
    fmt = output_format(output, format)
    if fmt not in STREAMED:
        if output_target(output).kind != "file":
            raise InputError(f"{fmt.capitalize()} output is written whole at the end, so it "
                             f"needs a file: -o NAME.{fmt}, not {output}")
        import_pyarrow()
    labels = classifier.labels if classifier.meta.head != "regression" else []
    rows = 0

    def predictions():
        nonlocal rows
        iterator = iter(examples)
        while chunk := list(itertools.islice(iterator, classifier.batch_size * 8)):
            items = [ex.text if ex.text_pair is None else (ex.text, ex.text_pair) for ex in chunk]
            for ex, pred in zip(chunk, classifier._predict(items)):
                rows += 1
                yield (ex.id if ex.id is not None else str(rows)), pred

    if fmt == "parquet":
        _write_parquet_predictions(output, predictions(), labels, classifier.meta.head)
        return rows
    with open_output(output) as handle:
        if fmt in ("csv", "tsv"):
            writer = csv.writer(handle, delimiter="," if fmt == "csv" else "\t",
                                lineterminator="\n")
            writer.writerow(["id", "label", *[f"prob_{lab}" for lab in labels]])
            for doc_id, pred in predictions():
                label = "|".join(pred.label) if isinstance(pred.label, tuple) else pred.label
                writer.writerow([doc_id, label,
                                 *[f"{pred.probabilities[lab]:.6f}" for lab in labels]])
            return rows
        if fmt == "json":
            handle.write("[")
        for doc_id, pred in predictions():
            line = json.dumps({"id": doc_id, "label": pred.label,
                               "probabilities": pred.probabilities}, ensure_ascii=False)
            if fmt == "jsonl":
                handle.write(line + "\n")
            else:
                handle.write(("\n" if rows == 1 else ",\n") + line)
        if fmt == "json":
            handle.write("\n]\n" if rows else "]\n")
    return rows


def _write_parquet_predictions(output, predictions, labels: list[str], head: str, *,
                               rows_per_group: int = 65536) -> None:
    """The Parquet form of `predict_file`'s CSV, a row group of ``rows_per_group`` at a time."""
    from cner.fileio import open_output
    from cner.inference.writers import import_pyarrow

    pa, pq = import_pyarrow()
    label_type = {"regression": pa.float64(), "multilabel": pa.list_(pa.string())}.get(
        head, pa.string())
    schema = pa.schema([("id", pa.string()), ("label", label_type),
                        *[(f"prob_{lab}", pa.float64()) for lab in labels]])

    def table(batch):
        ids, preds = zip(*batch)
        columns = [pa.array([str(i) for i in ids], pa.string()),
                   pa.array([list(p.label) if isinstance(p.label, tuple) else p.label
                             for p in preds], label_type),
                   *[pa.array([p.probabilities[lab] for p in preds], pa.float64())
                     for lab in labels]]
        return pa.table(columns, schema=schema)

    with open_output(output, "wb") as handle, pq.ParquetWriter(handle, schema) as parquet:
        while batch := list(itertools.islice(predictions, rows_per_group)):
            parquet.write_table(table(batch))


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
