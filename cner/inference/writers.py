"""Annotation writers: CSV, JSONL and JSON (a list), streamed one document at a time.

* CSV: header exactly ``doc_id,start,end,label,text,score``, one row per entity, written with
  the `csv` module (so entity text holding commas, quotes or line breaks is quoted), rows
  ending in ``\\n``.
* JSONL: one line per input document,
  ``{"id": ..., "text": ..., "entities": [{"start", "end", "label", "text", "score"}]}``.
* JSON: a list of those objects, written incrementally (``[``, then one object per line
  separated by ``,``, then ``]``), so a partial list can be continued after an interruption;
  an empty list is ``[]``.

JSON and JSONL are valid JSON (``allow_nan=False``): an id or score that is NaN or infinite is
an error, never written as ``NaN``/``Infinity``.

Non-ASCII text is written as is (``ensure_ascii=False``); scores are rounded to 4 decimals
the same way in every format. A writer knows how many documents were written before it
(``written``), which is all it needs to continue a partial output.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from cner.errors import InputError, ModelError
from cner.fileio import atomic_write

HEADER = ("doc_id", "start", "end", "label", "text", "score")
FORMATS = ("csv", "json", "jsonl")
SCORE_DECIMALS = 4


def format_score(score: float) -> float:
    """The score as written: rounded to 4 decimals (``0.9412``, ``1.0``; never exponent form)."""
    return round(float(score), SCORE_DECIMALS)


def entity_dict(entity) -> dict[str, Any]:
    return {"start": entity.start, "end": entity.end, "label": entity.label, "text": entity.text,
            "score": format_score(entity.score)}


def document_record(doc_id, text: str, entities: Sequence) -> dict[str, Any]:
    """The JSON/JSONL object of one document."""
    return {"id": doc_id, "text": text, "entities": [entity_dict(e) for e in entities]}


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def record_json(doc_id, text: str, entities: Sequence) -> str:
    """One document as a line of valid JSON; a NaN or infinite id (`InputError`) or score
    (`ModelError`) is refused rather than written as ``NaN``/``Infinity``."""
    record = document_record(doc_id, text, entities)
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError:
        if not all(math.isfinite(e["score"]) for e in record["entities"]):
            raise ModelError(f"document {doc_id!r}: the model gave a score that is not a "
                             "number (NaN or infinite), which JSON cannot hold; are its weights "
                             "intact?") from None
        raise InputError(f"document id {doc_id!r} is or holds NaN or an infinite number, "
                         "which JSON cannot hold", hint="use a string or a finite number"
                         ) from None


class Writer:
    """Base class. ``begin()`` once for a new output, ``write()`` per document, ``end()`` once.

    A writer that continues a partial output is made with ``written`` = documents already
    in it, and ``begin()`` is not called again.
    """

    def __init__(self, handle: IO[str], *, written: int = 0) -> None:
        self.handle = handle
        self.written = written

    def begin(self) -> None:
        pass

    def write(self, doc_id, text: str, entities: Sequence) -> None:
        self._write(doc_id, text, entities)
        self.written += 1

    def _write(self, doc_id, text: str, entities: Sequence) -> None:
        raise NotImplementedError

    def end(self) -> None:
        pass


class CsvWriter(Writer):
    def __init__(self, handle: IO[str], *, written: int = 0) -> None:
        super().__init__(handle, written=written)
        self._rows = csv.writer(handle, lineterminator="\n")
        # QUOTE_MINIMAL leaves a lone "\r" unquoted when the terminator is "\n", which
        # readers then take for a line break: rows holding "\r" are written fully quoted.
        self._quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def begin(self) -> None:
        self._rows.writerow(HEADER)

    def _write(self, doc_id, text: str, entities: Sequence) -> None:
        key = doc_id if isinstance(doc_id, (str, int)) else _dumps(doc_id)
        for e in entities:
            row = (key, e.start, e.end, e.label, e.text, format_score(e.score))
            quoted = "\r" in e.text or "\r" in str(key)
            (self._quoted if quoted else self._rows).writerow(row)


class JsonlWriter(Writer):
    def _write(self, doc_id, text: str, entities: Sequence) -> None:
        self.handle.write(record_json(doc_id, text, entities) + "\n")


class JsonWriter(Writer):
    def begin(self) -> None:
        self.handle.write("[")

    def _write(self, doc_id, text: str, entities: Sequence) -> None:
        line = record_json(doc_id, text, entities)  # before writing: an error writes nothing
        self.handle.write(("\n" if self.written == 0 else ",\n") + line)

    def end(self) -> None:
        self.handle.write("\n]\n" if self.written else "]\n")


WRITERS: dict[str, type[Writer]] = {"csv": CsvWriter, "jsonl": JsonlWriter, "json": JsonWriter}


def make_writer(format: str, handle: IO[str], *, written: int = 0) -> Writer:
    try:
        cls = WRITERS[format]
    except KeyError:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}") from None
    return cls(handle, written=written)


def format_from_suffix(path: str | Path | None, default: str = "csv") -> str:
    """``csv``/``json``/``jsonl`` from an output name (``.ndjson`` is JSONL), else ``default``."""
    if path is None:
        return default
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix,
                                                                                      default)


def write_annotations(path: str | Path, documents: Iterable[tuple[Any, str, Sequence]], *,
                      format: str | None = None) -> int:
    """Write ``(doc_id, text, entities)`` triples to ``path`` atomically; returns the count."""
    with atomic_write(path) as handle:
        writer = make_writer(format or format_from_suffix(path), handle)
        writer.begin()
        for doc_id, text, entities in documents:
            writer.write(doc_id, text, entities)
        writer.end()
    return writer.written


__all__ = ["FORMATS", "HEADER", "CsvWriter", "JsonWriter", "JsonlWriter", "Writer",
           "document_record", "format_from_suffix", "format_score", "make_writer",
           "record_json", "write_annotations"]
