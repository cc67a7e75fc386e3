"""A score threshold on a tagger's entities (``cner annotate --min-score``).

`Entity.score` is the mean probability of the entity's tags; `cner evaluate` prints, from a
labelled corpus, the precision and recall at each threshold and the one with the best F1.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from cner.inference.predictor import Entity
from cner.inference.tagger import Tagger
from cner.inference.writers import check_min_score, keep_scored


class MinScoreTagger(Tagger):
    """``tagger`` (sharing its engine and metadata) whose `__call__` and `pipe` drop the
    entities scored below ``min_score``; everything built on them (`annotate_frame`,
    `cner.inference.annotate.annotate_files`) drops them too."""

    def __init__(self, tagger: Tagger, min_score: float) -> None:
        super().__init__(tagger.predictor, tagger.meta)
        self.min_score = check_min_score(min_score)

    def __call__(self, text: str) -> list[Entity]:
        return keep_scored(super().__call__(text), self.min_score)

    def pipe(self, texts: Iterable[str], *, chunk_size: int | None = None,
             batch_size: int | None = None) -> Iterator[list[Entity]]:
        for entities in super().pipe(texts, chunk_size=chunk_size, batch_size=batch_size):
            yield keep_scored(entities, self.min_score)


__all__ = ["MinScoreTagger", "check_min_score", "keep_scored"]
