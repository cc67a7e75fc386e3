"""Reading the documents to annotate: one lazy reader per input format, exact error locations.

Inputs are read lazily. ``.txt`` (also unknown suffixes and ``-``, standard input): a document
per line, ``doc_id`` = 1-based line number; empty lines give no document but keep the numbering;
NUL bytes are text. ``.jsonl``/``.ndjson``/``.json``: an object per line with ``text`` and
optional ``id`` (else the line number). ``.csv``/``.tsv``: a header, a text column and an
optional id column (``id`` when present; else the 1-based data row). With several inputs every
``doc_id`` becomes ``"INPUT:doc_id"`` (``INPUT`` as given). Invalid UTF-8 is an `InputError`
naming the line and 0-based byte offset; ``errors="replace"`` decodes it as U+FFFD.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cner.errors import ConfigError, InputError
from cner.fileio import decode_lines

ERRORS = ("strict", "replace")
_SURROGATES = re.compile("[\ud800-\udfff]")


class Document(NamedTuple):
    doc_id: Any  # int (line or row number), or the id found in the input
    text: str
    line: int  # 1-based line where the document starts


def input_kind(path: str | os.PathLike) -> str:
    """``txt``, ``jsonl``, ``csv`` or ``tsv`` from the file name (``-`` is ``txt``)."""
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
            ".tsv": "tsv"}.get(Path(os.fspath(path)).suffix.lower(), "txt")


def check_input(path: str) -> None:
    if path != "-" and not Path(path).is_file():
        raise InputError("is a directory, expected a file" if Path(path).is_dir()
                         else "file not found", path=path)


def _lines(path: str, errors: str, *, keep_ends: bool = False
           ) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, byte offset after the line)``; ``-`` reads standard input."""
    check_input(path)
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    name, where = ("<stdin>", "of standard input") if path == "-" else (path, "of the file")
    try:
        yield from decode_lines(handle, name=name, errors=errors, where=where,
                                hint="re-encode it as UTF-8, or pass --errors replace",
                                keep_ends=keep_ends)
    finally:
        if path != "-":
            handle.close()


def _clean(value: str, errors: str, path: str, line: int, what: str) -> str:
    """JSON ``\\ud800`` escapes make lone surrogates, which cannot be written as UTF-8."""
    if not _SURROGATES.search(value):
        return value
    if errors == "replace":
        return _SURROGATES.sub("\ufffd", value)  # one character for one: offsets do not move
    raise InputError(f"the {what} holds a lone surrogate (an unpaired \\ud800-\\udfff escape)",
                     path=path, line=line, hint="fix the escape, or pass --errors replace")


def _txt(path: str, errors: str) -> Iterator[tuple[Document, int]]:
    for number, text, offset in _lines(path, errors):
        if text:
            yield Document(number, text, number), offset


def _jsonl(path: str, errors: str, text_key: str, id_key: str | None
           ) -> Iterator[tuple[Document, int]]:
    for number, line, offset in _lines(path, errors):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON at column {exc.colno}: {exc.msg}", path=path,
                             line=number, hint="expected one JSON object per line") from None
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
        yield Document(number if doc_id is None else doc_id,
                       _clean(text, errors, path, number, "text"), number), offset


def _table(path: str, errors: str, delimiter: str, text_column: str, id_column: str | None
           ) -> Iterator[tuple[Document, int]]:
    csv.field_size_limit(max(csv.field_size_limit(), 2 ** 31 - 1))
    where = [0, 0]  # line number and byte offset of the last line the csv reader took

    def feed() -> Iterator[str]:
        for number, text, offset in _lines(path, errors, keep_ends=True):
            where[:] = [number, offset]
            yield text

    rows, header, row_number = csv.reader(feed(), delimiter=delimiter), None, 0
    while True:
        first_line = where[0] + 1
        try:
            row = next(rows, None)
        except csv.Error as exc:
            raise InputError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}",
                             path=path, line=where[0]) from None
        if row is None:
            return
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
        yield Document(doc_id, row[text_at], first_line), where[1]


def _read(path: str, *, text_column: str, id_column: str | None, errors: str
          ) -> Iterator[tuple[Document, int]]:
    if errors not in ERRORS:
        raise ConfigError(f"errors must be 'strict' or 'replace', got {errors!r}")
    kind = "txt" if path == "-" else input_kind(path)
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
        done += last if path == "-" else os.path.getsize(path)


__all__ = ["Document", "all_documents", "check_input", "input_kind", "read_documents"]
