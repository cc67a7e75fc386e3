"""Error analysis: every gold and every predicted entity classed by what happened to it.

A gold entity is classed against the predictions that overlap it, a predicted entity against
the gold entities that overlap it; the best counterpart decides (in this order):

* ``correct`` - same start, end and type (what strict F1 counts);
* ``wrong_type`` - same start and end, another type;
* ``wrong_boundary`` - same type, overlapping, other boundaries;
* ``wrong_boundary_and_type`` - overlapping, other boundaries and another type;
* ``missed`` (a gold entity) / ``spurious`` (a predicted one) - nothing on the other side
  overlaps it.

So every gold entity has exactly one of the first four or ``missed`` (the classes sum to the
gold support) and every predicted entity one of the first four or ``spurious`` (they sum to
the number predicted); ``correct`` is the same number on both sides, so precision and recall
are ``correct / predicted`` and ``correct / gold``, as `cner.metrics.entity_scores` gives.
Nested gold entities are flattened to the outermost first, as for the scores.

A boundary error is also described by where the prediction lies against the gold entity:
``longer`` (it contains the gold entity), ``shorter`` (it lies inside it) or ``shifted``.

An *error event* is one mistake counted once: each gold entity that is not correct (with its
counterpart), and each predicted entity that is not correct and not already the counterpart
of such a gold entity. The examples file holds one line per event with its context.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cner.data.example import Example
from cner.schemes import Span, flatten_spans

CORRECT = "correct"
WRONG_TYPE = "wrong_type"
WRONG_BOUNDARY = "wrong_boundary"
WRONG_BOUNDARY_AND_TYPE = "wrong_boundary_and_type"
MISSED = "missed"
SPURIOUS = "spurious"
GOLD_KINDS = (CORRECT, WRONG_TYPE, WRONG_BOUNDARY, WRONG_BOUNDARY_AND_TYPE, MISSED)
PREDICTED_KINDS = (CORRECT, WRONG_TYPE, WRONG_BOUNDARY, WRONG_BOUNDARY_AND_TYPE, SPURIOUS)
KINDS = (*GOLD_KINDS, SPURIOUS)
KIND_TITLES = {CORRECT: "correct", WRONG_TYPE: "wrong type", WRONG_BOUNDARY: "wrong boundary",
               WRONG_BOUNDARY_AND_TYPE: "wrong both", MISSED: "missed", SPURIOUS: "spurious"}
BOUNDARIES = ("longer", "shorter", "shifted")
NONE = "(none)"  # the confusion matrix's row and column for no counterpart
GOLD, PREDICTED = "gold", "predicted"
_RANK = {CORRECT: 0, WRONG_TYPE: 1, WRONG_BOUNDARY: 2, WRONG_BOUNDARY_AND_TYPE: 3}


def as_span(entity) -> Span:
    """A `Span` of anything with ``start``, ``end`` and ``label`` (a `Span`, an `Entity`)."""
    return entity if type(entity) is Span else Span(entity.start, entity.end, entity.label)


def overlap(a: Span, b: Span) -> int:
    """Characters ``a`` and ``b`` share (0 or less: none)."""
    return min(a.end, b.end) - max(a.start, b.start)


def boundary_relation(gold: Span, predicted: Span) -> str:
    """Where a prediction with other boundaries lies against the gold entity it overlaps."""
    if predicted.start <= gold.start and predicted.end >= gold.end:
        return "longer"
    if predicted.start >= gold.start and predicted.end <= gold.end:
        return "shorter"
    return "shifted"


@dataclass(frozen=True)
class Outcome:
    """What became of one entity: ``side`` (``gold`` or ``predicted``), the entity, its class
    and the counterpart on the other side that decided it (None: missed or spurious)."""

    side: str
    span: Span
    kind: str
    other: Span | None = None

    @property
    def gold(self) -> Span | None:
        return self.span if self.side == GOLD else self.other

    @property
    def predicted(self) -> Span | None:
        return self.other if self.side == GOLD else self.span

    @property
    def boundary(self) -> str | None:
        """``longer``, ``shorter`` or ``shifted`` for a boundary error, else None."""
        if self.kind not in (WRONG_BOUNDARY, WRONG_BOUNDARY_AND_TYPE):
            return None
        return boundary_relation(self.gold, self.predicted)


def _kind(span: Span, other: Span) -> str | None:
    if overlap(span, other) <= 0:
        return None
    if (span.start, span.end) == (other.start, other.end):
        return CORRECT if span.label == other.label else WRONG_TYPE
    return WRONG_BOUNDARY if span.label == other.label else WRONG_BOUNDARY_AND_TYPE


def classify(span: Span, others: Sequence[Span], side: str) -> Outcome:
    """``span`` (on ``side``) classed against the entities of the other side: the best class
    any of them gives, then the largest overlap, then the earliest."""
    best = None
    for other in others:
        kind = _kind(span, other)
        if kind is not None:
            key = (_RANK[kind], -overlap(span, other), other)
            if best is None or key < best[0]:
                best = (key, kind, other)
    if best is None:
        return Outcome(side, span, MISSED if side == GOLD else SPURIOUS)
    return Outcome(side, span, best[1], best[2])


def classify_entities(gold: Sequence, predicted: Sequence
                      ) -> tuple[list[Outcome], list[Outcome]]:
    """The outcomes of one sentence's gold entities (flattened to the outermost, as the
    scores are) and of its predicted entities, each in order."""
    gold_spans = flatten_spans([as_span(g) for g in gold])[0]
    predicted_spans = sorted({as_span(p) for p in predicted})
    return ([classify(g, predicted_spans, GOLD) for g in gold_spans],
            [classify(p, gold_spans, PREDICTED) for p in predicted_spans])


@dataclass
class SentenceErrors:
    """One sentence's outcomes; ``index`` is its position in the corpus (0-based) and
    ``scores`` the predicted entities' scores where the model gave them."""

    index: int
    example: Example
    gold: list[Outcome]
    predicted: list[Outcome]
    scores: dict[Span, float] = field(default_factory=dict)

    def events(self) -> list[Outcome]:
        """Each mistake once (the module's *error event*), in text order."""
        found = [o for o in self.gold if o.kind != CORRECT]
        counted = {o.other for o in found if o.other is not None}
        found += [o for o in self.predicted if o.kind != CORRECT and o.span not in counted]
        return sorted(found, key=lambda o: (min(s.start for s in (o.gold, o.predicted) if s),
                                            o.side))

    @property
    def n_errors(self) -> int:
        return len(self.events())


def _entity(span: Span | None, text: str, score: float | None = None) -> dict | None:
    if span is None:
        return None
    row = {"start": span.start, "end": span.end, "label": span.label,
           "text": text[span.start:span.end]}
    if score is not None:
        row["score"] = score
    return row


def _empty_counts(kinds: Sequence[str]) -> dict[str, int]:
    return dict.fromkeys(kinds, 0)


class ErrorAnalysis:
    """The outcomes of a corpus: counts per type and overall on both sides, boundary error
    shapes, the entity-type confusion matrix, the error events with their context."""

    def __init__(self, sentences: list[SentenceErrors]) -> None:
        self.sentences = sentences

    def _counts(self, side: str) -> dict:
        kinds = GOLD_KINDS if side == GOLD else PREDICTED_KINDS
        per_type: dict[str, dict[str, int]] = {}
        overall = _empty_counts(kinds)
        for sentence in self.sentences:
            for o in (sentence.gold if side == GOLD else sentence.predicted):
                per_type.setdefault(o.span.label, _empty_counts(kinds))[o.kind] += 1
                overall[o.kind] += 1
        for row in (*per_type.values(), overall):
            row["total"] = sum(row[k] for k in kinds)
        return {"overall": overall, "per_type": dict(sorted(per_type.items()))}

    def gold_counts(self) -> dict:
        """``{"overall": {class: n, ..., "total": n}, "per_type": {type: {...}}}`` over the
        gold entities (``total``: the support)."""
        return self._counts(GOLD)

    def predicted_counts(self) -> dict:
        """The same over the predicted entities (``total``: the number predicted)."""
        return self._counts(PREDICTED)

    def boundary_counts(self) -> dict[str, int]:
        """The boundary error events by shape (``longer``, ``shorter``, ``shifted``)."""
        counts = _empty_counts(BOUNDARIES)
        for sentence in self.sentences:
            for event in sentence.events():
                if event.boundary is not None:
                    counts[event.boundary] += 1
        return counts

    def labels(self) -> list[str]:
        return sorted({o.span.label for s in self.sentences for o in (*s.gold, *s.predicted)})

    def confusion(self) -> tuple[list[str], list[list[int]]]:
        """``(labels, matrix)``: ``matrix[i][j]`` counts the gold entities of ``labels[i]``
        whose counterpart (same or overlapping boundaries) is of ``labels[j]``; the last
        column (`NONE`) counts the missed ones and the last row the spurious predictions by
        their type. Row sums are the gold support per type."""
        labels = [*self.labels(), NONE]
        index = {label: i for i, label in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for sentence in self.sentences:
            for o in sentence.gold:
                matrix[index[o.span.label]][index[o.other.label if o.other else NONE]] += 1
            for o in sentence.predicted:
                if o.kind == SPURIOUS:
                    matrix[-1][index[o.span.label]] += 1
        return labels, matrix

    def n_events(self) -> int:
        return sum(s.n_errors for s in self.sentences)

    def worst(self, n: int = 20) -> list[SentenceErrors]:
        """The ``n`` sentences with the most error events (then the earliest)."""
        ranked = sorted((s for s in self.sentences if s.n_errors),
                        key=lambda s: (-s.n_errors, s.index))
        return ranked[:n]

    def event_rows(self, context: int = 20) -> Iterator[dict]:
        """One JSON-ready row per error event, in corpus order: where (``sentence``: 0-based
        index, ``source``, ``line``, ``id``), ``kind``, ``boundary``, the ``gold`` and
        ``predicted`` entities (``start``, ``end``, ``label``, ``text``; the predicted one's
        ``score``), and the ``left`` / ``middle`` / ``right`` context, ``context`` being
        them joined with the region of both entities in 【】."""
        for sentence in self.sentences:
            text = sentence.example.text
            for event in sentence.events():
                spans = [s for s in (event.gold, event.predicted) if s is not None]
                lo, hi = min(s.start for s in spans), max(s.end for s in spans)
                left, right = text[max(0, lo - context):lo], text[hi:hi + context]
                score = sentence.scores.get(event.predicted) if event.predicted else None
                yield {"sentence": sentence.index, "source": sentence.example.source,
                       "line": sentence.example.line, "id": sentence.example.id,
                       "kind": event.kind, "boundary": event.boundary,
                       "gold": _entity(event.gold, text),
                       "predicted": _entity(event.predicted, text, score),
                       "left": left, "middle": text[lo:hi], "right": right,
                       "context": f"{left}【{text[lo:hi]}】{right}"}

    def to_dict(self) -> dict:
        labels, matrix = self.confusion()
        return {"gold": self.gold_counts(), "predicted": self.predicted_counts(),
                "boundary": self.boundary_counts(), "events": self.n_events(),
                "confusion": {"labels": labels, "matrix": matrix}}

    def format(self) -> str:
        """Two fixed-width tables (the gold entities by what became of them, the predicted
        entities by what they were) and a line on the boundary errors."""
        lines = []
        for side, title, kinds in ((GOLD, "gold entities, by what the model made of each",
                                    GOLD_KINDS),
                                   (PREDICTED, "predicted entities, by what each one was",
                                    PREDICTED_KINDS)):
            counts = self._counts(side)
            header = f"{'type':<16}{side:>10}" + "".join(f"{KIND_TITLES[k]:>16}" for k in kinds)
            lines += [title + ":", header, "-" * len(header)]
            rows = [*counts["per_type"].items(), ("all", counts["overall"])]
            for i, (label, row) in enumerate(rows):
                if i == len(rows) - 1:
                    lines.append("-" * len(header))
                lines.append(f"{label:<16}{row['total']:>10}" + "".join(
                    f"{_count(row[k], row['total']):>16}" for k in kinds))
            lines.append("")
        shapes = self.boundary_counts()
        lines.append(f"boundary errors: {shapes['longer']} predicted too long, "
                     f"{shapes['shorter']} too short, {shapes['shifted']} shifted; "
                     f"{self.n_events()} error events in "
                     f"{sum(1 for s in self.sentences if s.n_errors)} of "
                     f"{len(self.sentences)} sentences")
        return "\n".join(lines)


def _count(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.0f}%)" if total else str(n)


def analyse_errors(examples: Sequence[Example], predicted: Sequence[Sequence]) -> ErrorAnalysis:
    """Class every entity of ``examples`` (gold) and ``predicted`` (per example: `Span`s or
    `Entity`s; an entity's ``score`` is kept for the examples file)."""
    if len(examples) != len(predicted):
        raise ValueError(f"{len(examples)} examples but {len(predicted)} predictions")
    sentences = []
    for index, (example, entities) in enumerate(zip(examples, predicted)):
        gold, pred = classify_entities(example.spans, entities)
        scores = {as_span(e): float(e.score) for e in entities
                  if getattr(e, "score", None) is not None}
        sentences.append(SentenceErrors(index, example, gold, pred, scores))
    return ErrorAnalysis(sentences)


__all__ = ["CORRECT", "ErrorAnalysis", "GOLD_KINDS", "KINDS", "MISSED", "Outcome",
           "PREDICTED_KINDS", "SPURIOUS", "SentenceErrors", "WRONG_BOUNDARY",
           "WRONG_BOUNDARY_AND_TYPE", "WRONG_TYPE", "analyse_errors", "classify_entities"]
