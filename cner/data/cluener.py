"""CLUENER2020 JSON Lines: ``{"text": ..., "label": {TYPE: {MENTION: [[start, end], ...]}}}``.

``end`` is inclusive in the file and exclusive in cner. Every span is checked against its
mention; repeated mentions become separate spans. The unlabelled test split (``id`` and
``text`` only) reads as examples with no spans.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from cner.data.example import Example
from cner.data.spanjsonl import example_from, iter_text_objects
from cner.errors import InputError
from cner.schemes import Span


def _mention_span(pair: object, mention: str, label: str, text: str, path: str | Path,
                  number: int) -> Span:
    """The span of one ``[start, end]`` pair (end inclusive), checked against its mention."""
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair)):
        raise InputError(f"span for {mention!r} must be [start, end], found {pair!r}",
                         path=path, line=number)
    start, end = pair[0], pair[1] + 1  # inclusive -> exclusive
    if not 0 <= start < end <= len(text):
        raise InputError(f"span [{pair[0]}, {pair[1]}] of {mention!r} is outside "
                         f"the text ({len(text)} characters)", path=path, line=number)
    if text[start:end] != mention:
        raise InputError(f"span [{pair[0]}, {pair[1]}] reads {text[start:end]!r}, "
                         f"not the mention {mention!r}", path=path, line=number,
                         hint="CLUENER ends are inclusive")
    return Span(start, end, label)


def _label_spans(labels: object, text: str, path: str | Path, number: int) -> Iterator[Span]:
    """The spans of a ``label`` field: ``{TYPE: {MENTION: [[start, end], ...]}}``."""
    if not isinstance(labels, dict):
        raise InputError("'label' must map types to {mention: [[start, end], ...]}",
                         path=path, line=number)
    for label, mentions in labels.items():
        if not isinstance(mentions or {}, dict):
            raise InputError(f"label {label!r} must map mentions to [[start, end], ...], "
                             f"found {type(mentions).__name__}", path=path, line=number)
        for mention, pairs in (mentions or {}).items():
            if not isinstance(pairs, list):
                raise InputError(f"spans of {mention!r} must be a list of [start, end], "
                                 f"found {pairs!r}", path=path, line=number)
            for pair in pairs:
                yield _mention_span(pair, mention, label, text, path, number)


def read_cluener(path: str | Path) -> Iterator[Example]:
    """Yield one example per non-empty line."""
    for number, obj, text in iter_text_objects(path):
        spans = list(_label_spans(obj.get("label") or {}, text, path, number))
        yield example_from(obj, text, spans, path, number)


def write_cluener(examples: Iterable[Example], handle: IO[str]) -> None:
    for ex in examples:
        label: dict[str, dict[str, list[list[int]]]] = {}
        for span in ex.spans:
            mention = ex.text[span.start:span.end]
            label.setdefault(span.label, {}).setdefault(mention, []).append([span.start, span.end - 1])
        obj: dict = {"text": ex.text, "label": label}
        if ex.id is not None:
            obj = {"id": ex.id, **obj}
        handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
