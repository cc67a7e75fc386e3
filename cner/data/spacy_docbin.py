"""Corpora as spaCy ``DocBin`` files, and cner's character-offset entities placed on spaCy
tokens (optional extra: ``pip install "cner[spacy]"``).

cner works in character offsets; spaCy in tokens. Both directions go through
``Doc.char_span(start, end, alignment_mode=...)``. With ``spacy.blank("zh")`` (its default
``char`` segmenter: one token per non-space character) every cner entity aligns unless it
starts or ends on whitespace; with a word tokenizer an entity may cut a token. Such entities
are never silently moved or lost: they are counted (`Placement`).

`examples_to_docbin` (``cner corpora convert FILE --to spacy -o out.spacy``): one ``Doc`` per
example, tokenized by ``spacy.blank(lang)``, ``doc.ents`` from the example's spans
(``alignment_mode="strict"`` by default: an entity that does not align is left out and
counted); the example's id, if any, in ``doc.user_data["id"]``. The pipeline component that
tags with cner is `cner.integrations.spacy` (it sits above inference; this module below it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cner.errors import ConfigError

SPACY_HINT = 'pip install "cner[spacy]"'
ALIGNMENT_MODES = ("strict", "contract", "expand")


def require_spacy(what: str = "this") -> None:
    """A one-line `ConfigError` when spaCy is not installed."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what} needs spaCy, which is not installed: {SPACY_HINT}") from None


def _check_mode(alignment_mode: str) -> str:
    if alignment_mode not in ALIGNMENT_MODES:
        raise ConfigError(f"alignment_mode must be one of {', '.join(ALIGNMENT_MODES)}, "
                          f"got {alignment_mode!r}")
    return alignment_mode


@dataclass
class Placement:
    """What `place_entities` made of a document's entities: the ``spans`` (with cner's
    ``scores``), ``unaligned`` (entities whose offsets are not token boundaries), of those
    ``adjusted`` (placed with the boundaries ``alignment_mode`` gave), and ``dropped`` (left
    out: no span, an empty one, or one overlapping an entity placed before it, as two entities
    expanded over the same token do)."""

    spans: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    unaligned: int = 0
    adjusted: int = 0
    dropped: int = 0


def place_entities(doc, entities: Iterable, *, alignment_mode: str = "expand"
                   ) -> Placement:
    """Character-offset entities (anything with ``start``, ``end``, ``label``, optionally
    ``score``) as non-overlapping spans of ``doc``, sorted (see `Placement`)."""
    _check_mode(alignment_mode)
    found = Placement()
    placed: list[tuple[Any, Any]] = []
    taken: set[int] = set()
    for entity in entities:
        span = doc.char_span(entity.start, entity.end, label=entity.label)
        moved = span is None
        if moved:
            found.unaligned += 1
            span = doc.char_span(entity.start, entity.end, label=entity.label,
                                 alignment_mode=alignment_mode)
        if span is None or len(span) == 0 or taken.intersection(range(span.start, span.end)):
            found.dropped += 1
            continue
        found.adjusted += moved
        taken.update(range(span.start, span.end))
        placed.append((span, getattr(entity, "score", None)))
    placed.sort(key=lambda item: item[0].start)
    found.spans = [span for span, _ in placed]
    found.scores = [score for _, score in placed]
    return found


@dataclass
class DocBinResult:
    """What `examples_to_docbin` made: the ``docbin``, its ``docs`` and ``entities``, and the
    entities left out (``dropped``: not aligned to spaCy's tokens in ``alignment_mode``, or
    overlapping another) or kept with other boundaries (``adjusted``, with ``contract`` or
    ``expand`` only)."""

    docbin: Any  # spacy.tokens.DocBin
    docs: int = 0
    entities: int = 0
    dropped: int = 0
    adjusted: int = 0


def examples_to_docbin(examples: Iterable, *, lang: str = "zh",
                       alignment_mode: str = "strict") -> DocBinResult:
    """A ``DocBin`` with one ``Doc`` per example (`cner.data.example.Example`), tokenized by
    ``spacy.blank(lang)`` (``zh``: one token per character), entities in ``doc.ents``.

    Overlapping (nested) spans cannot all be ``doc.ents``: flatten them first
    (`cner.schemes.flatten_spans`); any still overlapping are counted as dropped."""
    import spacy
    from spacy.tokens import DocBin

    _check_mode(alignment_mode)
    nlp = spacy.blank(lang)
    result = DocBinResult(DocBin(store_user_data=True))
    for example in examples:
        doc = nlp.make_doc(example.text)
        found = place_entities(doc, example.spans, alignment_mode=alignment_mode)
        doc.ents = found.spans
        if example.id is not None:
            doc.user_data["id"] = example.id
        result.docbin.add(doc)
        result.docs += 1
        result.entities += len(found.spans)
        result.dropped += found.dropped
        result.adjusted += found.adjusted
    return result


def docbin_docs(data: bytes | str, *, lang: str = "zh") -> list:
    """The ``Doc``s of a ``DocBin`` (its bytes, or the path of a ``.spacy`` file)."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank(lang)
    docbin = DocBin().from_bytes(data) if isinstance(data, bytes) else DocBin().from_disk(data)
    return list(docbin.get_docs(nlp.vocab))
