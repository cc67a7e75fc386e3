"""Quoted CSV/TSV records that cannot swallow the rest of a file through an unbalanced quote.

With RFC 4180 quoting a field that opens with ``"`` runs, line breaks included, to the next
lone ``"``. One unbalanced quote therefore makes the following rows part of one field, and the
csv module says nothing when a later stray quote closes it. `quoted_records` reads with the
csv module in strict mode (text after a closing quote and a quote left open at the end of the
file are errors) and refuses a record that runs past `MAX_QUOTED_LINES` physical lines; every
such error names the line where the runaway quoted field opened.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from cner.errors import InputError

MAX_QUOTED_LINES = 1000
"""The most physical lines one record (a quoted field with line breaks) may span."""


def quote_opened_at(lines: list[tuple[int, str]], delimiter: str, quotechar: str = '"') -> int:
    """The line where the last quoted field of a record (``(number, text)`` lines, line ends
    kept) opened, scanning as the csv module does; the record's first line if none did."""
    opened = lines[0][0] if lines else 0
    state = "start"  # start of a field, in an unquoted field, in quotes, a quote in quotes
    for number, text in lines:
        for char in text:
            if state == "quoted":
                if char == quotechar:
                    state = "quote"
            elif state == "quote" and char == quotechar:  # a doubled quote is text
                state = "quoted"
            elif char == delimiter or char in "\r\n":
                state = "start"
            elif state == "start" and char == quotechar:
                state, opened = "quoted", number
            else:
                state = "field"
    return opened


def quoted_records(lines: Iterable[tuple[int, str]], *, path: str | Path, delimiter: str,
                   what: str = "CSV", hint: str | None = None,
                   max_lines: int = MAX_QUOTED_LINES) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` for each record of ``lines`` (``(number, text)`` with the line
    end kept), read with ``"`` quoting; a blank line is ``[]``. A quote left open at the end
    of the file, text after a closing quote, or a record longer than ``max_lines`` lines is an
    `InputError` at the line where the quoted field at fault opened (``what``: "CSV" or "TSV",
    for the message; ``hint`` is added to every quoting error)."""
    record: list[tuple[int, str]] = []  # the lines of the record being read
    ended = [False]

    def feed() -> Iterator[str]:
        for number, text in lines:
            if len(record) >= max_lines:
                raise InputError(
                    f"a quoted field opened on this line runs past {max_lines:,} lines: an "
                    f"unbalanced quote?", path=path, line=quote_opened_at(record, delimiter),
                    hint=hint or 'close the quote, or double a quote that is text ("")')
            record.append((number, text))
            yield text
        ended[0] = True

    reader = csv.reader(feed(), delimiter=delimiter, quotechar='"', doublequote=True,
                        strict=True)
    while True:
        record.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = quote_opened_at(record, delimiter) if record else None
            if ended[0] and record:
                problem = ("a quoted field opened on this line is not closed before the end "
                           "of the file: an unbalanced quote?")
            else:
                problem = f"malformed {what}: {exc}"
            raise InputError(problem, path=path, line=line,
                             hint=hint or 'close the quote, or double a quote that is text ("")'
                             ) from None
        yield record[0][0] if record else 0, fields


__all__ = ["MAX_QUOTED_LINES", "quote_opened_at", "quoted_records"]
