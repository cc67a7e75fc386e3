"""Entity-level evaluation with seqeval in strict mode (exact span and type)."""
from __future__ import annotations

from collections.abc import Sequence

from cner.schemes import Span, flatten_spans, spans_to_tags


def entity_scores(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]],
                  lengths: Sequence[int]) -> dict:
    """Precision/recall/F1 per entity type plus micro and macro averages.

    Both sides are written as IOB2 tags and scored by seqeval with ``mode="strict"``, so an
    entity counts only when its start, end and type all match. Nested gold entities (which
    a flat tagger cannot produce) are flattened to the outermost first.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    y_true = [spans_to_tags(flatten_spans(g)[0], n, scheme="bio") for g, n in zip(gold, lengths)]
    y_pred = [spans_to_tags(p, n, scheme="bio") for p, n in zip(predicted, lengths)]
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True,
                                   zero_division=0)
    per_type = {label: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                        "f1": float(row["f1-score"]), "support": int(row["support"])}
                for label, row in report.items() if not label.endswith(" avg")}
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    macro = report.get("macro avg", {"f1-score": 0.0})
    return {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]), "macro_precision": float(macro.get("precision", 0.0)),
            "macro_recall": float(macro.get("recall", 0.0)), "macro_f1": float(macro["f1-score"]), "support": sum(r["support"] for r in per_type.values()),
            "per_type": per_type}


def format_scores(scores: dict) -> str:
    """A fixed-width table: one row per type, then micro and macro averages."""
    header = f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"
    lines = [header, "-" * len(header)]
    for label, row in sorted(scores["per_type"].items()):
        lines.append(f"{label:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}"
                     f"{row['f1']:>10.4f}{row['support']:>10}")
    lines.append("-" * len(header))
    lines.append(f"{'micro avg':<16}{scores['precision']:>10.4f}{scores['recall']:>10.4f}"
                 f"{scores['f1']:>10.4f}{scores['support']:>10}")
    lines.append(f"{'macro avg':<16}{scores['macro_precision']:>10.4f}{scores['macro_recall']:>10.4f}"
                 f"{scores['macro_f1']:>10.4f}{scores['support']:>10}")
    return "\n".join(lines)
