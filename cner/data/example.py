"""The unit every reader produces: a text with its entity spans and where it came from."""
from __future__ import annotations

from dataclasses import dataclass, field

from cner.schemes import Span


@dataclass(frozen=True)
class Example:
    """One labelled text. ``spans`` are end-exclusive Python string offsets into ``text``,
    sorted by start; they may overlap only for corpora with nested entities (CLUENER)."""

    text: str
    spans: tuple[Span, ...] = ()
    id: str | None = None
    source: str = "<memory>"
    line: int = 0

    def entity_texts(self) -> list[str]:
        return [self.text[s.start:s.end] for s in self.spans]


@dataclass(frozen=True)
class TaggedSentence:
    """A sentence as read from a column file: one token and one raw tag per line."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    source: str
    line: int  # line of the first token
    token_lines: tuple[int, ...] = field(default=(), compare=False)
