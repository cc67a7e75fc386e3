"""Reading the documents to annotate: one lazy reader per input format, exact error locations.

Inputs are read lazily. ``.txt`` (also unknown suffixes and ``-``, standard input): a document
per line, ``doc_id`` = 1-based line number; empty lines give no document but keep the numbering;
NUL bytes are text. ``.jsonl``/``.ndjson``/``.json``: an object per line with ``text`` and
optional ``id`` (else the line number). ``.csv``/``.tsv``: a header, a text column and an
optional id column (``id`` when present; else the 1-based data row); a quote left open, or one
whose field runs past 1,000 lines, is an error at the line where it opened
(`cner.data.delimited`). ``.parquet`` (needs pyarrow: ``pip install "cner[parquet]"``): a text
column and an optional id column as for CSV (a null text is an empty document; an id that is
not a string or a number is written as its ``str``), read a row group at a time; ``line`` is the
1-based row. Any of the text formats may be compressed, by its name: ``docs.txt.gz``,
``docs.jsonl.bz2``, ``table.csv.xz`` are read decompressed (line numbers and byte offsets in
errors count in the decompressed text). With several inputs every ``doc_id`` becomes ``"INPUT:doc_id"``
(``INPUT`` as given). Invalid UTF-8 is an `InputError` naming the line and 0-based byte offset;
``errors="replace"`` decodes it as U+FFFD.

An input is a regular file, ``-``, or a stream: a readable character device or pipe such as
``/dev/null`` or ``/dev/fd/N`` (bash's ``<(...)``), read once, with no size known beforehand
(a Parquet input must be a regular file: it is read from its end).
A JSON Lines id must be a value JSON output can hold: ``NaN``/``Infinity`` (not JSON) and a
number too large for a float (``1e999``) are errors naming the line.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cner.data.delimited import quoted_records
from cner.errors import ConfigError, InputError
from cner.fileio import (checked_lines, compression, decode_lines, decompressing,
                         uncompressed_name)

ERRORS = ("strict", "replace")
_SURROGATES = re.compile("[\ud800-\udfff]")


class Document(NamedTuple):
    doc_id: Any  # int (line or row number), or the id found in the input
    text: str
    line: int  # 1-based line where the document starts


def input_kind(path: str | os.PathLike) -> str:
    """``txt``, ``jsonl``, ``csv``, ``tsv`` or ``parquet`` from the file name, a compression
    suffix left out (``docs.jsonl.gz`` is ``jsonl``; ``-`` is ``txt``)."""
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
            ".tsv": "tsv", ".parquet": "parquet"}.get(
        Path(uncompressed_name(path)).suffix.lower(), "txt")


def check_input(path: str) -> None:
    """Refuse a missing path, a directory, and anything but a regular file, a character
    device or a pipe (``-`` is standard input); a Parquet input must be a regular file, and
    pyarrow installed."""
    if path == "-":
        return
    try:
        mode = os.stat(path).st_mode  # follows symlinks: /dev/fd/N -> the pipe itself
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}", path=path) from None
    if stat.S_ISDIR(mode):
        raise InputError("is a directory, expected a file", path=path)
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise InputError("is not a file, a character device or a pipe", path=path)
    if input_kind(path) == "parquet":
        from cner.inference.writers import import_pyarrow

        if compression(path) is not None:
            raise InputError("a compressed Parquet file cannot be read", path=path,
                             hint="decompress it: Parquet compresses its columns itself")
        if not stat.S_ISREG(mode):
            raise InputError("a Parquet input must be a regular file (it is read from its "
                             "end), not a stream", path=path)
        import_pyarrow("reading Parquet")


def is_stream(path: str) -> bool:
    """Whether ``path`` is read as a stream (``-``, a character device or a pipe): once, and
    with no size known beforehand."""
    if path == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def input_size(path: str) -> int | None:
    """The size in bytes of a regular file input (of a compressed one: its compressed size,
    which the offsets `all_documents` reports count in too); ``None`` for a stream
    (`is_stream`)."""
    return None if is_stream(path) else os.path.getsize(path)


def _lines(path: str, errors: str, *, keep_ends: bool = False
           ) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, byte offset after the line)``; ``-`` reads standard input. A
    compressed file (`cner.fileio.compression`) is decompressed; its offsets are then those
    read in the compressed file (for progress), when it is a regular file."""
    check_input(path)
    kind = None if path == "-" else compression(path)
    try:
        raw = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}", path=path) from None
    name, where = ("<stdin>", "of standard input") if path == "-" else (path, "of the file")
    if kind is not None:
        where = f"of the decompressed ({kind}) file"
    position = raw.tell if kind is not None and raw.seekable() else None
    handle = decompressing(raw, kind)
    try:
        for number, text, offset in decode_lines(
                checked_lines(handle, name=name, kind=kind), name=name, errors=errors,
                where=where, hint="re-encode it as UTF-8, or pass --decode-errors replace",
                keep_ends=keep_ends):
            yield number, text, offset if position is None else position()
    finally:
        if path != "-":
            handle.close()
            raw.close()


def _clean(value: str, errors: str, path: str, line: int, what: str) -> str:
    """JSON ``\\ud800`` escapes make lone surrogates, which cannot be written as UTF-8."""
    if not _SURROGATES.search(value):
        return value
    if errors == "replace":
        return _SURROGATES.sub("\ufffd", value)  # one character for one: offsets do not move
    raise InputError(f"the {what} holds a lone surrogate (an unpaired \\ud800-\\udfff escape)",
                     path=path, line=line, hint="fix the escape, or pass --decode-errors replace")


def _txt(path: str, errors: str) -> Iterator[tuple[Document, int]]:
    for number, text, offset in _lines(path, errors):
        if text:
            yield Document(number, text, number), offset


class _NotJson(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON has no such
    values."""


def _no_constant(name: str):
    raise _NotJson(name)


class _Overflow(float):
    """A JSON number too large for a float (``1e999``): infinite, with its text as written."""

    text: str


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isfinite(value):
        return value
    overflow = _Overflow(value)
    overflow.text = text
    return overflow


def _overflow(value: Any) -> str | None:
    """The text of the first number in ``value`` (at any depth) too large for a float."""
    if isinstance(value, _Overflow):
        return value.text
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((text for item in items if (text := _overflow(item)) is not None), None)


def _jsonl(path: str, errors: str, text_key: str, id_key: str | None
           ) -> Iterator[tuple[Document, int]]:
    for number, line, offset in _lines(path, errors):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant, parse_float=_parse_float)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON at column {exc.colno}: {exc.msg}", path=path,
                             line=number, hint="expected one JSON object per line") from None
        except _NotJson as exc:
            raise InputError(f"invalid JSON: {exc} is not a JSON value", path=path,
                             line=number, hint="write the value as a string or a number"
                             ) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, found {type(obj).__name__}", path=path,
                             line=number, hint="expected one JSON object per line")
        for key, option in ((text_key, "--text-column"), (id_key, "--id-column")):
            if key is not None and key not in obj:
                raise InputError(f"no key {key!r}; the keys are: {', '.join(obj)}", path=path,
                                 line=number, hint=f"choose the key with {option}")
        text = "" if obj[text_key] is None else obj[text_key]
        if not isinstance(text, str):
            raise InputError(f"{text_key!r} must be a string, found {type(text).__name__}",
                             path=path, line=number)
        doc_id = obj.get(id_key or "id")
        doc_id = _clean(doc_id, errors, path, number, "id") if isinstance(doc_id, str) else doc_id
        if (too_large := _overflow(doc_id)) is not None:
            raise InputError(f"the id holds the number {too_large}, too large for a float: the "
                             "JSON output could not hold it", path=path, line=number,
                             hint=f'write it as a string ("{too_large}")')
        yield Document(number if doc_id is None else doc_id,
                       _clean(text, errors, path, number, "text"), number), offset


def _table(path: str, errors: str, delimiter: str, text_column: str, id_column: str | None
           ) -> Iterator[tuple[Document, int]]:
    csv.field_size_limit(max(csv.field_size_limit(), 2 ** 31 - 1))
    offset = [0]  # byte offset after the last line the csv reader took

    def feed() -> Iterator[tuple[int, str]]:
        for number, text, after in _lines(path, errors, keep_ends=True):
            offset[0] = after
            yield number, text

    header, row_number = None, 0
    for first_line, row in quoted_records(feed(), path=path, delimiter=delimiter,
                                          what="TSV" if delimiter == "\t" else "CSV"):
        if not row:  # a blank line
            continue
        if header is None:
            header = row
            for name, option in ((text_column, "--text-column"), (id_column, "--id-column")):
                if name is not None and name not in header:
                    raise InputError(f"no column {name!r}; the columns are: {', '.join(header)}",
                                     path=path, line=first_line,
                                     hint=f"choose one with {option}")
            id_name = id_column or ("id" if "id" in header else None)
            text_at, id_at = header.index(text_column), id_name and header.index(id_name)
            continue
        if len(row) != len(header):
            raise InputError(f"{len(row)} fields where the header has {len(header)}",
                             path=path, line=first_line,
                             hint="quote fields that hold the delimiter or a line break")
        row_number += 1
        doc_id = row_number if id_at is None or row[id_at] == "" else row[id_at]
        yield Document(doc_id, row[text_at], first_line), offset[0]


_TEXT_TYPES = ("is_string", "is_large_string", "is_string_view", "is_null")


def _parquet(path: str, text_column: str, id_column: str | None
             ) -> Iterator[tuple[Document, int]]:
    """The rows of a Parquet file, a row group at a time; offsets in proportion to the rows
    read (for progress)."""
    from cner.inference.writers import import_pyarrow

    pa, pq = import_pyarrow("reading Parquet")
    check_input(path)
    failures = (pa.ArrowException, OSError, ValueError)
    try:
        parquet = pq.ParquetFile(path)
    except failures as exc:
        raise InputError(f"is not a Parquet file ({exc})", path=path) from None
    schema = parquet.schema_arrow
    for name, option in ((text_column, "--text-column"), (id_column, "--id-column")):
        if name is not None and name not in schema.names:
            raise InputError(f"no column {name!r}; the columns are: {', '.join(schema.names)}",
                             path=path, hint=f"choose one with {option}")
    text_type = schema.field(text_column).type
    if pa.types.is_dictionary(text_type):
        text_type = text_type.value_type
    if not any(getattr(pa.types, test, lambda _: False)(text_type) for test in _TEXT_TYPES):
        raise InputError(f"column {text_column!r} holds {text_type}, expected text",
                         path=path, hint="choose the text column with --text-column")
    id_name = id_column or ("id" if "id" in schema.names else None)
    columns = list(dict.fromkeys(c for c in (text_column, id_name) if c is not None))
    total, size, row = max(parquet.metadata.num_rows, 1), os.path.getsize(path), 0
    batches = parquet.iter_batches(batch_size=1024, columns=columns)
    while True:
        try:
            batch = next(batches, None)
        except failures as exc:
            raise InputError(f"cannot read it past row {row} ({exc})", path=path) from None
        if batch is None:
            return
        texts = batch.column(columns.index(text_column)).to_pylist()
        ids = (batch.column(columns.index(id_name)).to_pylist() if id_name is not None
               else [None] * len(texts))
        for text, doc_id in zip(texts, ids):
            row += 1
            if doc_id is None:
                doc_id = row
            elif not isinstance(doc_id, (str, int, float)):
                doc_id = str(doc_id)  # a date, a decimal, bytes...: as written
            yield Document(doc_id, text or "", row), size * row // total


def _read(path: str, *, text_column: str, id_column: str | None, errors: str
          ) -> Iterator[tuple[Document, int]]:
    if errors not in ERRORS:
        raise ConfigError(f"errors must be 'strict' or 'replace', got {errors!r}")
    kind = "txt" if path == "-" else input_kind(path)
    if kind == "parquet":
        return _parquet(path, text_column, id_column)
    if kind in ("csv", "tsv"):
        return _table(path, errors, "," if kind == "csv" else "\t", text_column, id_column)
    return _jsonl(path, errors, text_column, id_column) if kind == "jsonl" else _txt(path, errors)


def read_documents(path: str | os.PathLike, *, text_column: str = "text",
                   id_column: str | None = None, errors: str = "strict") -> Iterator[Document]:
    """Lazily yield the `Document`s of one input file (or ``-`` for standard input)."""
    for document, _ in _read(os.fspath(path), text_column=text_column, id_column=id_column,
                             errors=errors):
        yield document


def all_documents(inputs: Sequence[str], **options) -> Iterator[tuple[Document, int]]:
    """Documents of every input, ids prefixed when there are several; bytes read so far."""
    done = 0
    for path in inputs:
        last = 0
        for doc, last in _read(path, **options):
            if len(inputs) > 1:
                doc = doc._replace(doc_id=f"{path}:{doc.doc_id}")
            yield doc, done + last
        size = input_size(path)
        done += last if size is None else size


__all__ = ["Document", "all_documents", "check_input", "input_kind", "input_size", "is_stream",
           "read_documents"]
