"""How well an entity's score predicts that it is correct, and what a score threshold costs.

`Entity.score` is the mean probability of the entity's tags. Here each predicted entity is a
``(score, correct)`` pair, ``correct`` meaning an exact gold match (start, end and type):

* the expected calibration error (ECE): the predictions binned by score into ``bins``
  equal-width bins over [0, 1] (the last one closed), ``sum(n_b / N * |accuracy_b -
  mean_score_b|)``; 0 for scores that are exactly the chance of being right;
* the largest such gap of a non-empty bin and the Brier score (mean squared gap);
* precision, recall and F1 of the entities kept at each score threshold (kept: ``score >=
  threshold``; recall over all gold entities), and the threshold with the best F1 over every
  score the model gave, which is what ``cner annotate --min-score`` takes.
"""
from __future__ import annotations

from collections.abc import Sequence

from cner.inference.writers import SCORE_DECIMALS
from cner.schemes import flatten_spans

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
CURVE_POINTS = 50  # the precision/recall curve: thresholds 0, 0.02, ..., 1


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _f1(p: float, r: float) -> float:
    return _div(2 * p * r, p + r)


def scored_predictions(examples: Sequence, predicted: Sequence[Sequence]
                       ) -> list[tuple[float, bool]]:
    """``(score, correct)`` of every predicted entity (``Entity``: start, end, label, score)
    against the examples' gold spans, flattened to the outermost as the scores are. Scores
    are taken as `cner annotate` writes them (rounded to `SCORE_DECIMALS`), which is what
    ``--min-score`` compares, so the threshold figures are exactly what it gives."""
    pairs = []
    for example, entities in zip(examples, predicted, strict=True):
        gold = {(s.start, s.end, s.label) for s in flatten_spans(list(example.spans))[0]}
        pairs += [(round(float(e.score), SCORE_DECIMALS), (e.start, e.end, e.label) in gold)
                  for e in entities]
    return pairs


def at_threshold(scored: Sequence[tuple[float, bool]], n_gold: int, threshold: float) -> dict:
    """Precision, recall and F1 of the entities scored at least ``threshold``."""
    kept = [correct for score, correct in scored if score >= threshold]
    right = sum(kept)
    precision, recall = _div(right, len(kept)), _div(right, n_gold)
    return {"threshold": threshold, "kept": len(kept), "correct": right,
            "precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def calibration(scored: Sequence[tuple[float, bool]], n_gold: int, *, bins: int = 10,
                thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """The figures of the module docstring for ``scored`` (``(score, correct)`` per predicted
    entity) against ``n_gold`` gold entities.

    Returns ``{"n": .., "correct": .., "gold": .., "ece": .., "max_gap": .., "brier": ..,
    "bins": [{"low", "high", "count", "mean_score", "accuracy"}], "thresholds": [...],
    "best": {...}, "curve": [...]}`` (``curve``: the threshold rows at 0, 0.02, ..., 1);
    with no prediction the error figures are 0.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    for score, _ in scored:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scores must lie in [0, 1], got {score}")
    n = len(scored)
    sums = [[0, 0.0, 0] for _ in range(bins)]  # count, score sum, correct
    for score, correct in scored:
        row = sums[min(int(score * bins), bins - 1)]
        row[0] += 1
        row[1] += score
        row[2] += bool(correct)
    table, ece, max_gap = [], 0.0, 0.0
    for i, (count, score_sum, right) in enumerate(sums):
        mean, accuracy = _div(score_sum, count), _div(right, count)
        table.append({"low": i / bins, "high": (i + 1) / bins, "count": count,
                      "mean_score": mean, "accuracy": accuracy})
        if count:
            ece += count / n * abs(accuracy - mean)
            max_gap = max(max_gap, abs(accuracy - mean))
    brier = _div(sum((score - bool(correct)) ** 2 for score, correct in scored), n)
    best = at_threshold(scored, n_gold, 0.0)
    for candidate in sorted({score for score, _ in scored}):
        row = at_threshold(scored, n_gold, candidate)
        if row["f1"] > best["f1"]:
            best = row
    return {"n": n, "correct": sum(bool(c) for _, c in scored), "gold": n_gold, "ece": ece,
            "max_gap": max_gap, "brier": brier, "bins": table,
            "thresholds": [at_threshold(scored, n_gold, t) for t in thresholds], "best": best,
            "curve": [at_threshold(scored, n_gold, i / CURVE_POINTS)
                      for i in range(CURVE_POINTS + 1)]}


def format_calibration(report: dict) -> str:
    """A few lines for `cner evaluate`: the calibration figures, a threshold table and the
    threshold with the best F1."""
    lines = [f"score calibration: {report['n']} predicted entities, {report['correct']} "
             f"correct; expected calibration error {report['ece']:.4f} over "
             f"{len(report['bins'])} score bins (largest gap {report['max_gap']:.4f}, Brier "
             f"{report['brier']:.4f})"]
    header = f"{'min score':>10}{'kept':>10}{'precision':>10}{'recall':>10}{'f1':>10}"
    lines += [header, "-" * len(header)]
    for row in report["thresholds"]:
        lines.append(f"{row['threshold']:>10.2f}{row['kept']:>10}{row['precision']:>10.4f}"
                     f"{row['recall']:>10.4f}{row['f1']:>10.4f}")
    best = report["best"]
    lines.append(f"best F1 {best['f1']:.4f} at --min-score {best['threshold']!r} (precision "
                 f"{best['precision']:.4f}, recall {best['recall']:.4f}, {best['kept']} kept)")
    return "\n".join(lines)


__all__ = ["THRESHOLDS", "at_threshold", "calibration", "format_calibration",
           "scored_predictions"]
