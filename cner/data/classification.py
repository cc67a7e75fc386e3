"""Sentence and sentence-pair classification data: one example type and a generic reader.

`read_classification_file` reads delimited text (TSV, CSV) or JSON Lines into
`ClassificationExample` rows, streaming line by line through `cner.fileio.iter_lines`, so
an undecodable byte, a missing column, an empty text or a short row is reported as an
`InputError` naming the file and the 1-based line.

Conventions (the per-task readers in `cner.data.task_registry` rely on them):

* Quoting. ``quoting=True`` reads with the csv module (RFC 4180: ``"`` opens a quoted
  field, ``""`` inside is a literal quote, a quoted field may span lines, up to 1,000 of
  them: a longer one is taken for an unbalanced quote). ``quoting=False``
  splits each raw line on the delimiter, which is exactly ``csv.QUOTE_NONE`` with no
  escape character: quote characters are ordinary text. The GLUE TSV files (MRPC, SST-2),
  ChnSentiCorp and AFQMC are *not* quoted, and MRPC sentences contain ``"``, so they must
  be read with ``quoting=False``; reading them with csv quoting merges lines.
* BOM. A UTF-8 BOM (U+FEFF) at the start of *any* field is dropped, not only at the start
  of the file: the GLUE MRPC train/dev files start with one, and AFQMC ``train.txt`` has a
  stray one at the start of line 12,078 (left over from concatenating files).
* Whitespace. Texts are kept exactly as in the file (ChnSentiCorp has ideographic spaces
  U+3000 at the start and end of some reviews; they stay). ``rstrip_text=True`` strips
  trailing whitespace from the text fields only, used for GLUE SST-2 whose train/dev
  sentences all end with one space before the tab. Labels, ids and header names are
  stripped of surrounding whitespace.
* Blank lines (nothing between two line breaks) are skipped; a line of spaces is a row.
* Labels are strings as written (``"0"``, ``"1"``); ``label_kind="regression"`` makes them
  floats and ``label_kind="multilabel"`` tuples (split on ``label_separator`` in text
  files, a JSON list in JSON Lines).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cner.data.delimited import quoted_records
from cner.errors import InputError
from cner.fileio import BOM, iter_lines, parse_json_line

JSON_LINES = "jsonl"
"""The ``delimiter`` value that selects JSON Lines (one object per line)."""

SUFFIX_DELIMITERS = {".tsv": "\t", ".txt": "\t", ".csv": ",", ".jsonl": JSON_LINES,
                     ".json": JSON_LINES}
LABEL_KINDS = ("single", "regression", "multilabel")

Column = str | int


@dataclass(frozen=True)
class ClassificationExample:
    """One row: a text (and a second text for pair tasks), its label, and where it came from.

    ``label`` is a string for classification, a float for regression, a tuple of strings
    for multi-label tasks and None for unlabelled (test) rows. ``source`` is the file path
    and ``line`` the 1-based line the row starts on.
    """

    text: str
    text_pair: str | None
    label: str | float | tuple[str, ...] | None
    id: str | None
    source: str
    line: int


def strip_bom(value: str) -> str:
    """``value`` without U+FEFF at its start (BOMs can appear mid-file when files are joined)."""
    return value.lstrip(BOM)


def detect_delimiter(path: str | Path) -> str:
    """The delimiter for ``path`` from its suffix: tab, comma or `JSON_LINES`."""
    suffix = Path(path).suffix.lower()
    try:
        return SUFFIX_DELIMITERS[suffix]
    except KeyError:
        raise InputError(f"cannot tell the format from the suffix {suffix or '(none)'!r}",
                         path=path, hint="pass delimiter='\\t', ',' or 'jsonl'; known suffixes: "
                         + ", ".join(SUFFIX_DELIMITERS)) from None


def iter_delimited_rows(path: str | Path, *, delimiter: str = "\t", quoting: bool = False
                        ) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for each row of a delimited file, streaming.

    ``line`` is where the row starts (1-based). Every field has a leading BOM removed.
    Blank lines are skipped. With ``quoting=False`` each line is split on ``delimiter``
    (``csv.QUOTE_NONE`` semantics: quotes are text); with ``quoting=True`` the csv module
    parses RFC 4180 quoting in strict mode, and a malformed quote is an `InputError`, as is a
    quote left open at the end of the file or one whose field runs past
    `cner.data.delimited.MAX_QUOTED_LINES` lines (both name the line where it opened).
    """
    if len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    if not quoting:
        for number, line in iter_lines(path):
            if line == "":
                continue
            yield number, [strip_bom(field) for field in line.split(delimiter)]
        return

    # csv quoting: the decoded lines (exact UTF-8 errors from iter_lines) go through
    # `quoted_records`, which knows the line each record starts on and refuses a quote that
    # swallows the rest of the file (naming the line where it opened).
    lines = ((number, line + "\n") for number, line in iter_lines(path))
    for start, fields in quoted_records(
            lines, path=path, delimiter=delimiter, what="CSV" if delimiter == "," else "TSV",
            hint="if quote characters are part of the text, read with quoting=False"):
        if fields:  # csv gives [] for a blank line
            yield start, [strip_bom(field) for field in fields]


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, object)`` for each non-blank line of a JSON Lines file."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        obj = parse_json_line(strip_bom(line), path=path, number=number)
        yield number, {strip_bom(key): value for key, value in obj.items()}


def _describe(column: Column) -> str:
    return f"column {column!r}" if isinstance(column, str) else f"column {column}"


def _parse_label(raw: object, *, kind: str, separator: str, column: Column, path: str | Path,
                 line: int) -> str | float | tuple[str, ...]:
    """A label cell as the example's label: str, float or tuple of str."""
    if kind == "multilabel":
        if isinstance(raw, (list, tuple)):
            items = [str(item).strip() for item in raw]
        elif isinstance(raw, str):
            items = [item.strip() for item in raw.split(separator)] if raw.strip() else []
        else:
            raise InputError(f"{_describe(column)}: expected a list of labels, found "
                             f"{type(raw).__name__}", path=path, line=line)
        if any(not item for item in items):
            raise InputError(f"{_describe(column)}: empty label in {raw!r}", path=path, line=line)
        return tuple(items)
    if raw is None or isinstance(raw, (list, dict)) or (isinstance(raw, str) and not raw.strip()):
        raise InputError(f"{_describe(column)}: missing or empty label", path=path, line=line)
    if kind == "regression":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InputError(f"{_describe(column)}: expected a number, found {raw!r}",
                             path=path, line=line) from None
        if not math.isfinite(value):
            raise InputError(f"{_describe(column)}: label is not finite ({raw!r})", path=path,
                             line=line)
        return value
    if isinstance(raw, bool):
        return str(int(raw))
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


def _json_cell(row: dict, wanted: list[Column], text_pair_column: Column | None,
               path: str | Path, number: int) -> Callable[[Column], object]:
    """Cell access for one JSON Lines object (columns are its keys)."""
    missing = [c for c in wanted if c not in row]
    if missing:
        if text_pair_column is not None and missing == [text_pair_column]:
            raise InputError(f"a sentence-pair task needs {text_pair_column!r} on every "
                             "line, but this object has only: " + ", ".join(map(repr, row)),
                             path=path, line=number)
        raise InputError(f"no key {missing[0]!r}; this object has: "
                         + (", ".join(map(repr, row)) or "(no keys)"), path=path, line=number)
    return row.__getitem__


class _DelimitedLayout:
    """The columns of a delimited file: its header (when it has one) fixes names and width,
    else the first row fixes the width; every row is checked against it."""

    def __init__(self, path: str | Path, wanted: list[Column], *, header: bool, quoting: bool,
                 delimiter: str, pair: bool) -> None:
        self.path, self.wanted, self.header, self.quoting, self.pair = (
            path, wanted, header, quoting, pair)
        self.names: list[str] | None = None
        self.n_fields: int | None = None
        self.kind_word = {"\t": "tab", ",": "comma"}.get(delimiter, repr(delimiter))

    def read_header(self, fields: list[str], number: int) -> None:
        self.names = [name.strip() for name in fields]
        self.n_fields = len(fields)
        listing = ", ".join(map(repr, self.names))
        for column in self.wanted:
            if isinstance(column, str) and column not in self.names:
                raise InputError(f"no column {column!r}; the header has: {listing}",
                                 path=self.path, line=number)
            if isinstance(column, int) and not 0 <= column < self.n_fields:
                raise InputError(f"column index {column} is out of range; the header has "
                                 f"{self.n_fields} columns: {listing}", path=self.path,
                                 line=number)

    def cell(self, fields: list[str], number: int) -> Callable[[Column], object]:
        """Cell access for one data row, after checking its width."""
        if self.pair and len(fields) == 1:
            raise InputError("a sentence-pair task needs two texts per row, but this row has "
                             f"one column (no {self.kind_word} delimiter)", path=self.path,
                             line=number)
        if self.n_fields is None:  # no header: the first row fixes the width
            self.n_fields = len(fields)
            for column in self.wanted:
                if not 0 <= column < self.n_fields:  # type: ignore[operator]
                    raise InputError(f"column index {column} is out of range; rows have "
                                     f"{self.n_fields} {self.kind_word}-separated fields "
                                     f"(0-{self.n_fields - 1})", path=self.path, line=number)
        if len(fields) != self.n_fields:
            raise InputError(f"expected {self.n_fields} {self.kind_word}-separated fields"
                             + (" (as in the header)" if self.names is not None else "")
                             + f", found {len(fields)}", path=self.path, line=number,
                             hint=self._width_hint(len(fields)))
        index = {name: i for i, name in enumerate(self.names or ())}
        return lambda column: fields[index[column] if isinstance(column, str) else column]

    def _width_hint(self, found: int) -> str:
        if self.quoting:
            return "if quote characters are part of the text, read with quoting=False"
        if found > (self.n_fields or 0):
            return f"a text containing a {self.kind_word} character?"
        return "a missing field or delimiter?"


def _row_texts(cell: Callable[[Column], object], columns: tuple[Column | None, ...], *,
               rstrip_text: bool, empty_text: str, path: str | Path, number: int
               ) -> list[str | None] | None:
    """The text (and pair text) of a row; ``None`` when an empty text is to be skipped."""
    texts: list[str | None] = []
    for column in columns:
        if column is None:
            texts.append(None)
            continue
        value = cell(column)
        if not isinstance(value, str):
            raise InputError(f"{_describe(column)}: expected a string, found "
                             f"{type(value).__name__}", path=path, line=number)
        if rstrip_text:
            value = value.rstrip()
        if not value.strip():
            if empty_text == "skip":
                return None
            raise InputError(f"empty text in {_describe(column)}", path=path, line=number)
        texts.append(value)
    return texts


def iter_classification_file(
        path: str | Path, *, text_column: Column, text_pair_column: Column | None = None,
        label_column: Column | None = None, id_column: Column | Sequence[Column] | None = None,
        delimiter: str | None = None, header: bool = True, quoting: bool = True,
        rstrip_text: bool = False, empty_text: str = "error", label_kind: str = "single",
        label_separator: str = ",") -> Iterator[ClassificationExample]:
    """Read a classification file into examples, streaming (`read_classification_file`
    gives them as a list).

    Columns are header names (``header=True``), 0-based indices (either way), or keys for
    JSON Lines. ``delimiter=None`` picks it from the suffix: ``.tsv``/``.txt`` tab, ``.csv``
    comma, ``.jsonl``/``.json`` JSON Lines. ``id_column`` may name several columns, joined
    with ``-``. ``empty_text="skip"`` drops rows whose text is empty or blank instead of
    raising. See the module docstring for quoting, BOM and whitespace handling.

    Raises `InputError` (with file and line) for a missing column (listing the columns
    that exist), an empty text, a row with the wrong number of fields, a pair-task row
    with a single column, a missing or malformed label, and malformed quoting or JSON.
    """
    if label_kind not in LABEL_KINDS:
        raise ValueError(f"label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
    if empty_text not in ("error", "skip"):
        raise ValueError(f"empty_text must be 'error' or 'skip', got {empty_text!r}")
    delimiter = detect_delimiter(path) if delimiter is None else delimiter
    id_columns: tuple[Column, ...] = ()
    if id_column is not None:
        id_columns = (id_column,) if isinstance(id_column, (str, int)) else tuple(id_column)
    wanted = [c for c in (text_column, text_pair_column, label_column, *id_columns)
              if c is not None]
    if delimiter == JSON_LINES:
        if any(not isinstance(c, str) for c in wanted):
            raise ValueError("JSON Lines columns are keys: pass column names, not indices")
        records: Iterator[tuple[int, dict | list[str]]] = iter_json_lines(path)
    else:
        if not header and any(isinstance(c, str) for c in wanted):
            raise ValueError("a file read with header=False has no column names: "
                             "pass column indices (0-based)")
        records = iter_delimited_rows(path, delimiter=delimiter, quoting=quoting)
    layout = _DelimitedLayout(path, wanted, header=header, quoting=quoting, delimiter=delimiter,
                              pair=text_pair_column is not None)
    for number, record in records:
        if isinstance(record, dict):
            cell = _json_cell(record, wanted, text_pair_column, path, number)
        elif header and layout.names is None:
            layout.read_header(record, number)
            continue
        else:
            cell = layout.cell(record, number)
        texts = _row_texts(cell, (text_column, text_pair_column), rstrip_text=rstrip_text,
                           empty_text=empty_text, path=path, number=number)
        if texts is None:
            continue
        label = None
        if label_column is not None:
            label = _parse_label(cell(label_column), kind=label_kind, separator=label_separator,
                                 column=label_column, path=path, line=number)
        example_id = "-".join(str(cell(c)).strip() for c in id_columns) if id_columns else None
        yield ClassificationExample(text=texts[0], text_pair=texts[1], label=label,  # type: ignore[arg-type]
                                    id=example_id, source=str(path), line=number)
    if layout.names is None and header and delimiter != JSON_LINES:
        raise InputError("empty file: expected a header line", path=path, line=1)


def read_classification_file(path: str | Path, **options: Any) -> list[ClassificationExample]:
    """Read a classification file into a list of examples: `iter_classification_file`, whose
    keyword arguments (columns, delimiter, header, quoting, text and label handling) and
    errors these are."""
    return list(iter_classification_file(path, **options))
