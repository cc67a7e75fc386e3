"""One pass of a saved model over a labelled corpus, shared by the scores, the error analysis,
the calibration figures, the probe and the report.

The model is loaded by `Tagger.load` and run through its predictor, as `evaluate_ner` and
`cner annotate` do, so the scores here are exactly `evaluate_ner`'s and the entities those
`cner annotate` writes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cner.data.example import Example
from cner.data.formats import read_corpus
from cner.errors import InputError
from cner.inference.predictor import Entity
from cner.inference.tagger import Tagger
from cner.insight.calibration import calibration, scored_predictions
from cner.insight.errors import ErrorAnalysis, analyse_errors
from cner.insight.probe import default_types, probe_corpus, probe_report
from cner.metrics import entity_scores
from cner.schemes import Span, flatten_spans
from cner.tasks.ner import load_for_evaluation, print_notes


@dataclass
class EvaluationRun:
    """A model's entities on a labelled corpus and its scores (`entity_scores`)."""

    tagger: Tagger
    examples: list[Example]
    predicted: list[list[Entity]]
    scores: dict
    data: str = ""
    model: str = ""
    extra: dict = field(default_factory=dict)

    def n_gold(self) -> int:
        return sum(len(flatten_spans(list(ex.spans))[0]) for ex in self.examples)

    def calibration(self, *, bins: int = 10) -> dict:
        return calibration(scored_predictions(self.examples, self.predicted), self.n_gold(),
                           bins=bins)

    def errors(self) -> ErrorAnalysis:
        return analyse_errors(self.examples, self.predicted)

    def probe(self, probe: str = "names", *, types: Sequence[str] | None = None, seed: int = 0,
              train: Sequence[Example] = (),
              mentions: Mapping[str, Sequence[str]] | None = None) -> dict:
        """The memorisation probe (`cner.insight.probe`) of ``types`` (default: the corpus's
        person-name types); the model runs once more, on the probed corpus."""
        labels = sorted({s.label for ex in self.examples for s in ex.spans})
        if types is None:
            types = default_types(labels)
            if not types:
                raise InputError(f"the corpus has no person-name type to probe (its types: "
                                 f"{', '.join(labels) or 'none'})",
                                 path=self.data or None, hint="name the types with --types")
        unknown = sorted(set(types) - set(labels))
        if unknown:
            raise InputError(f"no gold mentions of {', '.join(unknown)} to probe (the corpus's "
                             f"types: {', '.join(labels)})", path=self.data or None)
        probed = probe_corpus(self.examples, types, seed=seed, train=train, mentions=mentions)
        after = self.tagger.predictor.entities([ex.text for ex in probed.examples])
        return probe_report(self.examples, probed, self.predicted, after, types=types,
                            probe=probe, seed=seed)


def score_predictions(examples: Sequence[Example], predicted: Sequence[Sequence]) -> dict:
    """`entity_scores` of entities (start, end, label) against the examples' gold spans."""
    return entity_scores([ex.spans for ex in examples],
                         [[Span(e.start, e.end, e.label) for e in ents] for ents in predicted],
                         [len(ex.text) for ex in examples])


def evaluate_corpus(model_dir: str | Path, data: str | Path, **options) -> EvaluationRun:
    """Load the model and the corpus as `evaluate_ner` does (`load_for_evaluation`: options
    and checks), find the entities, score them."""
    tagger, corpus = load_for_evaluation(model_dir, data, **options)
    predicted = tagger.predictor.entities([ex.text for ex in corpus.examples])
    return EvaluationRun(tagger, list(corpus.examples), predicted,
                         score_predictions(corpus.examples, predicted), data=str(data),
                         model=str(model_dir))


def read_examples(path: str | Path, *, format: str = "auto", mode: str = "strict",
                  token_suffix: str = "auto") -> list[Example]:
    """A corpus's examples (the probe's ``--train``), its notes printed on stderr."""
    corpus = read_corpus(path, format=format, mode=mode, token_suffix=token_suffix)
    print_notes(corpus)
    return list(corpus.examples)


__all__ = ["EvaluationRun", "evaluate_corpus", "read_examples", "score_predictions"]
