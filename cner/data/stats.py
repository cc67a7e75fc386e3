"""Corpus statistics: what `cner corpora stats` prints."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cner.data.formats import Corpus
from cner.schemes import flatten_spans


@dataclass
class CorpusStats:
    path: str
    format: str
    scheme: str | None
    sentences: int = 0
    characters: int = 0
    entities: int = 0
    per_type: dict[str, int] = field(default_factory=dict)
    longest: int = 0
    longest_line: int = 0
    nested: int = 0
    invalid_transitions: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def corpus_stats(corpus: Corpus) -> CorpusStats:
    """Counts over a corpus; read it with ``mode="lenient"`` to count invalid transitions."""
    stats = CorpusStats(corpus.path, corpus.format, corpus.scheme,
                        invalid_transitions=corpus.invalid_transitions)
    counts: Counter[str] = Counter()
    for ex in corpus.examples:
        stats.sentences += 1
        stats.characters += len(ex.text)
        counts.update(s.label for s in ex.spans)
        if len(ex.text) > stats.longest:
            stats.longest, stats.longest_line = len(ex.text), ex.line
        stats.nested += len(flatten_spans(ex.spans)[1])
    stats.entities = sum(counts.values())
    stats.per_type = dict(sorted(counts.items()))
    return stats


def format_stats(stats: CorpusStats) -> str:
    rows = [
        ("file", stats.path),
        ("format", stats.format + (f" ({stats.scheme})" if stats.scheme else "")),
        ("sentences", f"{stats.sentences:,}"),
        ("characters", f"{stats.characters:,}"),
        ("entities", f"{stats.entities:,}"),
    ]
    rows += [(f"  {label}", f"{n:,}") for label, n in stats.per_type.items()]
    rows += [
        ("longest sentence", f"{stats.longest:,} characters (line {stats.longest_line})"),
        ("nested entities", f"{stats.nested:,}"),
        ("invalid transitions", f"{stats.invalid_transitions:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
