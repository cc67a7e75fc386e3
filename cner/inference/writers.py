"""Annotation writers: CSV, TSV, JSONL, JSON (a list) and Parquet, one document at a time.

* CSV: header exactly ``doc_id,start,end,label,text,score``, one row per entity, written with
  the `csv` module (so entity text holding commas, quotes or line breaks is quoted), rows
  ending in ``\\n``.
* TSV: the same columns and rows, separated by tabs (a field holding a tab, a quote or a line
  break is quoted, as in CSV).
* JSONL: one line per input document,
  ``{"id": ..., "text": ..., "entities": [{"start", "end", "label", "text", "score"}]}``.
* JSON: a list of those objects, written incrementally (``[``, then one object per line
  separated by ``,``, then ``]``), so a partial list can be continued after an interruption;
  an empty list is ``[]``.

* Parquet (needs pyarrow: ``pip install "cner[parquet]"``): the CSV columns, typed (``doc_id``
  int64 when every id is an integer, else string as in CSV; ``start``/``end`` int64; ``score``
  double). Parquet cannot be appended to, so the writer streams rows to a line file (the
  annotation job's ``OUT.partial``, which is what lets ``--resume`` continue it) and `publish`
  turns that into the Parquet file at the end; it is never written to a stream.

The format of an output is its ``format`` if given, else that of its suffix (`output_format`):
a suffix that names no format is an error, never silently CSV; no suffix (``-``, a device)
is CSV.

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
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from cner.errors import ConfigError, InputError, ModelError
from cner.fileio import atomic_write

HEADER = ("doc_id", "start", "end", "label", "text", "score")
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
STREAMED = ("csv", "tsv", "json", "jsonl")  # the formats that can be written to a stream
# the suffix of an output name -> its format
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl",
            ".ndjson": "jsonl", ".parquet": "parquet"}
PARQUET_HINT = 'pip install "cner[parquet]"'
SCORE_DECIMALS = 4


def format_score(score: float) -> float:
    """The score as written: rounded to 4 decimals (``0.9412``, ``1.0``; never exponent form)."""
    return round(float(score), SCORE_DECIMALS)


def check_min_score(min_score: float) -> float:
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) \
            or not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"min_score must lie in [0, 1], got {min_score!r}")
    return float(min_score)


def keep_scored(entities: Sequence, min_score: float) -> list:
    """The entities scored at least ``min_score``, their scores taken as they are written
    (rounded to `SCORE_DECIMALS`), so that an entity written with score 0.4323 is kept at
    ``--min-score 0.4323``."""
    return [e for e in entities if round(float(e.score), SCORE_DECIMALS) >= min_score]


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


def _key(doc_id):
    """The ``doc_id`` of a CSV/TSV/Parquet row: a str or int as it is, else its JSON."""
    return doc_id if isinstance(doc_id, (str, int)) else _dumps(doc_id)


class CsvWriter(Writer):
    delimiter = ","

    def __init__(self, handle: IO[str], *, written: int = 0) -> None:
        super().__init__(handle, written=written)
        self._rows = csv.writer(handle, delimiter=self.delimiter, lineterminator="\n")
        # QUOTE_MINIMAL leaves a lone "\r" unquoted when the terminator is "\n", which
        # readers then take for a line break: rows holding "\r" are written fully quoted.
        self._quoted = csv.writer(handle, delimiter=self.delimiter, lineterminator="\n",
                                  quoting=csv.QUOTE_ALL)

    def begin(self) -> None:
        self._rows.writerow(HEADER)

    def _write(self, doc_id, text: str, entities: Sequence) -> None:
        key = _key(doc_id)
        for e in entities:
            row = (key, e.start, e.end, e.label, e.text, format_score(e.score))
            quoted = "\r" in e.text or "\r" in str(key)
            (self._quoted if quoted else self._rows).writerow(row)


class TsvWriter(CsvWriter):
    delimiter = "\t"


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


def import_pyarrow(what: str = "Parquet"):
    """``(pyarrow, pyarrow.parquet)``; a one-line `ConfigError` saying how to install it when
    it is missing."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(f"{what} needs pyarrow, which is not installed: {PARQUET_HINT}"
                          ) from None
    return pyarrow, pyarrow.parquet


class ParquetWriter(Writer):
    """Streams one JSON line per entity, ``[doc_id, start, end, label, text, score]``, to
    ``handle`` (a partial file); `publish` writes the Parquet file from it."""

    def _write(self, doc_id, text: str, entities: Sequence) -> None:
        key = _key(doc_id)
        for e in entities:
            self.handle.write(json.dumps([key, e.start, e.end, e.label, e.text,
                                          format_score(e.score)], ensure_ascii=False) + "\n")

    @staticmethod
    def publish(partial: str | os.PathLike, output: str | os.PathLike, *,
                rows_per_group: int = 65536) -> None:
        """Write the rows of ``partial`` to ``output`` (atomically) as Parquet, a batch of
        ``rows_per_group`` rows at a time."""
        pa, pq = import_pyarrow()

        def rows():
            with open(partial, encoding="utf-8") as lines:
                for line in lines:
                    yield json.loads(line)

        integer_ids = all(isinstance(r[0], int) and not isinstance(r[0], bool) for r in rows())
        schema = pa.schema([("doc_id", pa.int64() if integer_ids else pa.string()),
                            ("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()),
                            ("text", pa.string()), ("score", pa.float64())])

        def table(batch):
            columns = list(zip(*batch))
            ids = columns[0] if integer_ids else [str(k) for k in columns[0]]
            return pa.table([pa.array(ids, schema.field(0).type),
                             *(pa.array(column, field.type)
                               for column, field in zip(columns[1:], list(schema)[1:]))],
                            schema=schema)

        with atomic_write(output, "wb") as handle:
            with pq.ParquetWriter(handle, schema) as parquet:  # no rows: no row group
                batch: list = []
                for row in rows():
                    batch.append(row)
                    if len(batch) == rows_per_group:
                        parquet.write_table(table(batch))
                        batch = []
                if batch:
                    parquet.write_table(table(batch))


WRITERS: dict[str, type[Writer]] = {"csv": CsvWriter, "tsv": TsvWriter, "jsonl": JsonlWriter,
                                    "json": JsonWriter, "parquet": ParquetWriter}


def make_writer(format: str, handle: IO[str], *, written: int = 0) -> Writer:
    try:
        cls = WRITERS[format]
    except KeyError:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}") from None
    return cls(handle, written=written)


def output_format(path: str | os.PathLike | None, format: str | None = None, *,
                  formats: Sequence[str] = FORMATS, default: str = "csv") -> str:
    """The format to write to ``path``: ``format`` when given (one of ``formats``, else a
    `ConfigError`), else the one its suffix names (``.ndjson`` is JSONL). A suffix naming no
    format in ``formats`` is an `InputError` (checked before anything is written); a path
    without a suffix (``None``, ``-``, ``/dev/stdout``) is ``default``."""
    if format is not None:
        if format not in formats:
            raise ConfigError(f"format must be one of {', '.join(formats)}, got {format!r}")
        return format
    name = None if path is None else os.fspath(path)
    suffix = "" if name in (None, "-") else Path(name).suffix.lower()
    if not suffix:
        return default
    found = SUFFIXES.get(suffix)
    if found not in formats:
        known = ", ".join(s for s, f in SUFFIXES.items() if f in formats)
        raise InputError(f"the output name ends in {suffix}, which names no format written "
                         f"here ({known})", path=name,
                         hint="rename it, or choose the format with --format")
    return found


def format_from_suffix(path: str | Path | None, default: str = "csv") -> str:
    """The format an output name's suffix names, else ``default`` (see `output_format`, which
    refuses an unknown suffix instead)."""
    if path is None:
        return default
    return SUFFIXES.get(Path(path).suffix.lower(), default)


def write_annotations(path: str | Path, documents: Iterable[tuple[Any, str, Sequence]], *,
                      format: str | None = None) -> int:
    """Write ``(doc_id, text, entities)`` triples to ``path`` atomically; returns the count.
    The format is ``format``, else that of the suffix (`output_format`)."""
    fmt = output_format(path, format)
    if fmt == "parquet":
        import_pyarrow()
        path = Path(path)
        fd, rows = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rows", dir=path.parent)
        try:
            with open(fd, "w", encoding="utf-8", newline="") as handle:
                writer = make_writer(fmt, handle)
                for doc_id, text, entities in documents:
                    writer.write(doc_id, text, entities)
            ParquetWriter.publish(rows, path)
        finally:
            os.unlink(rows)
        return writer.written
    with atomic_write(path) as handle:
        writer = make_writer(fmt, handle)
        writer.begin()
        for doc_id, text, entities in documents:
            writer.write(doc_id, text, entities)
        writer.end()
    return writer.written


__all__ = ["FORMATS", "HEADER", "STREAMED", "SUFFIXES", "CsvWriter", "JsonWriter", "JsonlWriter",
           "ParquetWriter", "TsvWriter", "Writer", "document_record", "format_from_suffix",
           "format_score", "import_pyarrow", "make_writer", "output_format", "record_json",
           "write_annotations"]
