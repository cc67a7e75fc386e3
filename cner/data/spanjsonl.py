"""cner's own span JSON Lines: ``{"id", "text", "entities": [{"start", "end", "label"}]}``.

Offsets are end-exclusive Python string indices, JSON integers (not ``0.5``, ``"0"`` or
``true``); the label is a non-empty string. An entity may also carry ``text`` (checked
against the slice) and ``score`` (ignored when reading a corpus). This is also the JSONL
output of ``cner annotate``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from cner.data.example import Example
from cner.errors import InputError
from cner.fileio import iter_lines, parse_json_line
from cner.schemes import Span


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entity_fields(ent: object, path: str | Path, number: int) -> tuple[int, int, str]:
    """``start``, ``end`` and ``label`` of an entity object, exactly as written: integers (not
    ``0.5``, ``"0"`` or ``true``) and a non-empty string (not ``7``)."""
    def refuse(problem: str) -> InputError:
        return InputError(f"entity {ent!r} needs integer 'start', 'end' and a 'label' string: "
                          + problem, path=path, line=number)

    if not isinstance(ent, dict):
        raise refuse(f"it is a {type(ent).__name__}, not an object")
    missing = [key for key in ("start", "end", "label") if key not in ent]
    if missing:
        raise refuse("it has no " + " and no ".join(map(repr, missing)))
    start, end, label = ent["start"], ent["end"], ent["label"]
    for key, value in (("start", start), ("end", end)):
        if not _is_int(value):
            raise refuse(f"{key!r} is {type(value).__name__} {value!r}")
    if not isinstance(label, str) or not label:
        raise refuse(f"'label' is {type(label).__name__} {label!r}")
    return start, end, label


def iter_text_objects(path: str | Path) -> Iterator[tuple[int, dict, str]]:
    """Yield ``(line, object, text)`` for each non-blank line of a JSON Lines file of objects
    with a ``text`` string (an `InputError` naming the line otherwise). CLUENER files too."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        obj = parse_json_line(line, path=path, number=number)
        text = obj.get("text")
        if not isinstance(text, str):
            raise InputError("missing or non-string 'text' field", path=path, line=number)
        yield number, obj, text


def example_from(obj: dict, text: str, spans: Iterable[Span], path: str | Path, number: int
                 ) -> Example:
    """The example of one JSON object: its spans sorted, its optional ``id`` as a string."""
    ex_id = obj.get("id")
    return Example(text, tuple(sorted(spans)), None if ex_id is None else str(ex_id),
                   str(path), number)


def _entity_span(ent: object, text: str, path: str | Path, number: int) -> Span:
    """The span of one entity object, checked against the text (and its ``text``, if any)."""
    start, end, label = _entity_fields(ent, path, number)
    if not 0 <= start < end <= len(text):
        raise InputError(f"entity {start}:{end} is outside the text ({len(text)} "
                         "characters) or empty", path=path, line=number)
    if "text" in ent and text[start:end] != ent["text"]:
        raise InputError(f"entity {start}:{end} reads {text[start:end]!r}, not "
                         f"{ent['text']!r}", path=path, line=number,
                         hint="offsets are end-exclusive Python string indices")
    return Span(start, end, label)


def read_span_jsonl(path: str | Path) -> Iterator[Example]:
    for number, obj, text in iter_text_objects(path):
        entities = obj.get("entities") or []
        if not isinstance(entities, list):
            raise InputError(f"'entities' must be a list, found {type(entities).__name__}",
                             path=path, line=number)
        spans = [_entity_span(ent, text, path, number) for ent in entities]
        yield example_from(obj, text, spans, path, number)


def write_span_jsonl(examples: Iterable[Example], handle: IO[str]) -> None:
    for number, ex in enumerate(examples, start=1):
        entities = [{"start": s.start, "end": s.end, "label": s.label,
                     "text": ex.text[s.start:s.end]} for s in ex.spans]
        obj = {"id": ex.id if ex.id is not None else str(number), "text": ex.text,
               "entities": entities}
        handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
