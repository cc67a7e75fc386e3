"""Entity-level evaluation with seqeval in strict mode (exact span and type)."""
from __future__ import annotations

import math
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


# --- Sentence classification, multi-label and regression scores ---------------------------
# Plain Python (no sklearn): the definitions follow sklearn's with zero_division=0, i.e. a
# precision, recall or F1 whose denominator is zero counts as 0.0.



def _safe_div(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _safe_div(2 * precision * recall, precision + recall)


def classification_scores(gold: Sequence[str], predicted: Sequence[str], *,
                          labels: Sequence[str], positive: str | None = None) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1/support and Matthews correlation.

    ``labels`` fixes the label set and order: macro-F1 averages over all of them (a label
    never gold nor predicted scores F1 0), and a gold or predicted value outside it is a
    ValueError. With ``positive``, ``f1`` / ``precision`` / ``recall`` are those of that
    label (binary F1 as GLUE reports for MRPC). ``matthews_corrcoef`` is the multi-class
    (Gorodkin) form, equal to the binary phi coefficient for two labels; 0.0 when
    undefined. ``confusion[i][j]`` counts gold ``labels[i]`` predicted as ``labels[j]``.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} items but predicted has {len(predicted)}")
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels in {labels}")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(x) for x in (*gold, *predicted) if x not in index})
    if unknown:
        raise ValueError(f"labels not in the label set {labels}: {unknown}")
    if positive is not None and positive not in index:
        raise ValueError(f"positive label {positive!r} is not one of {labels}")
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]
    for g, p in zip(gold, predicted):
        confusion[index[g]][index[p]] += 1
    n = len(gold)
    correct = sum(confusion[i][i] for i in range(k))
    true_counts = [sum(confusion[i]) for i in range(k)]
    pred_counts = [sum(confusion[i][j] for i in range(k)) for j in range(k)]

    per_label = {}
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        precision = _safe_div(tp, pred_counts[i])
        recall = _safe_div(tp, true_counts[i])
        per_label[label] = {"precision": precision, "recall": recall,
                            "f1": _f1(precision, recall), "support": true_counts[i]}

    covariance = correct * n - sum(p * t for p, t in zip(pred_counts, true_counts))
    var_pred = n * n - sum(p * p for p in pred_counts)
    var_true = n * n - sum(t * t for t in true_counts)
    mcc = _safe_div(covariance, math.sqrt(var_pred * var_true)) if var_pred and var_true else 0.0

    scores = {
        "accuracy": _safe_div(correct, n),
        "macro_precision": _safe_div(sum(r["precision"] for r in per_label.values()), k),
        "macro_recall": _safe_div(sum(r["recall"] for r in per_label.values()), k),
        "macro_f1": _safe_div(sum(r["f1"] for r in per_label.values()), k),
        "matthews_corrcoef": mcc,
        "support": n,
        "labels": labels,
        "per_label": per_label,
        "confusion": confusion,
    }
    if positive is not None:
        scores.update(positive=positive, precision=per_label[positive]["precision"],
                      recall=per_label[positive]["recall"], f1=per_label[positive]["f1"])
    return scores


def multilabel_scores(gold_sets: Sequence[Sequence[str]], predicted_sets: Sequence[Sequence[str]],
                      *, labels: Sequence[str]) -> dict:
    """Micro and macro precision/recall/F1 over ``labels``, per-label scores, exact match.

    Each item is a set (any iterable) of labels. Micro pools true/false positives over all
    labels; macro averages the per-label F1 over ``labels``; ``exact_match`` is the share
    of items whose predicted set equals the gold set.
    """
    if len(gold_sets) != len(predicted_sets):
        raise ValueError(f"gold has {len(gold_sets)} items but predicted has "
                         f"{len(predicted_sets)}")
    labels = list(labels)
    known = set(labels)
    counts = {label: [0, 0, 0] for label in labels}  # tp, fp, fn
    exact = 0
    for gold_items, predicted_items in zip(gold_sets, predicted_sets):
        g, p = set(gold_items), set(predicted_items)
        unknown = (g | p) - known
        if unknown:
            raise ValueError(f"labels not in the label set {labels}: {sorted(unknown)}")
        exact += g == p
        for label in g & p:
            counts[label][0] += 1
        for label in p - g:
            counts[label][1] += 1
        for label in g - p:
            counts[label][2] += 1
    per_label = {}
    for label, (tp, fp, fn) in counts.items():
        precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
        per_label[label] = {"precision": precision, "recall": recall,
                            "f1": _f1(precision, recall), "support": tp + fn}
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    micro_p, micro_r = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
    k = len(labels)
    return {
        "micro_precision": micro_p, "micro_recall": micro_r, "micro_f1": _f1(micro_p, micro_r),
        "macro_precision": _safe_div(sum(r["precision"] for r in per_label.values()), k),
        "macro_recall": _safe_div(sum(r["recall"] for r in per_label.values()), k),
        "macro_f1": _safe_div(sum(r["f1"] for r in per_label.values()), k),
        "exact_match": _safe_div(exact, len(gold_sets)),
        "support": len(gold_sets),
        "labels": labels,
        "per_label": per_label,
    }


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = rank
        start = end + 1
    return ranks


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    if n < 2:
        return 0.0
    mean_x, mean_y = math.fsum(x) / n, math.fsum(y) / n
    dx = [v - mean_x for v in x]
    dy = [v - mean_y for v in y]
    sxx, syy = math.fsum(d * d for d in dx), math.fsum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return 0.0
    r = math.fsum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def regression_scores(gold: Sequence[float], predicted: Sequence[float]) -> dict:
    """Pearson r, Spearman rho (Pearson of average ranks, so ties share a rank) and MSE.

    A correlation with a constant side (zero variance) or fewer than two items is
    undefined; it is reported as 0.0 rather than NaN so that scores stay comparable.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} items but predicted has {len(predicted)}")
    gold = [float(v) for v in gold]
    predicted = [float(v) for v in predicted]
    n = len(gold)
    return {
        "pearson": _pearson(gold, predicted),
        "spearman": _pearson(_average_ranks(gold), _average_ranks(predicted)),
        "mse": _safe_div(math.fsum((g - p) ** 2 for g, p in zip(gold, predicted)), n),
        "support": n,
    }


def format_classification_scores(scores: dict) -> str:
    """A fixed-width table: per-label rows (if any), then the summary scores present."""
    per_label = scores.get("per_label") or {}
    if per_label:
        header = f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"
    else:
        header = f"{'metric':<16}{'':>20}{'value':>10}{'support':>10}"
    lines = [header, "-" * len(header)]
    for label, row in per_label.items():
        lines.append(f"{str(label):<16}{row['precision']:>10.4f}{row['recall']:>10.4f}"
                     f"{row['f1']:>10.4f}{row['support']:>10}")
    if per_label:
        lines.append("-" * len(header))
    label_support = sum(row["support"] for row in per_label.values())
    if "micro_f1" in scores:
        lines.append(f"{'micro avg':<16}{scores['micro_precision']:>10.4f}"
                     f"{scores['micro_recall']:>10.4f}{scores['micro_f1']:>10.4f}"
                     f"{label_support:>10}")
    if "macro_f1" in scores and "macro_precision" in scores:
        lines.append(f"{'macro avg':<16}{scores['macro_precision']:>10.4f}"
                     f"{scores['macro_recall']:>10.4f}{scores['macro_f1']:>10.4f}"
                     f"{label_support:>10}")
    if "positive" in scores:
        lines.append(f"{'positive ' + str(scores['positive']):<16}{scores['precision']:>10.4f}"
                     f"{scores['recall']:>10.4f}{scores['f1']:>10.4f}"
                     f"{scores['per_label'][scores['positive']]['support']:>10}")
    for key, name in (("accuracy", "accuracy"), ("exact_match", "exact match"),
                      ("matthews_corrcoef", "matthews corr"), ("pearson", "pearson"),
                      ("spearman", "spearman"), ("mse", "mse")):
        if key in scores:
            lines.append(f"{name:<16}{'':>20}{scores[key]:>10.4f}{scores.get('support', ''):>10}")
    return "\n".join(lines)


def scores_for_kind(kind: str, labels: Sequence[str], positive: str | None, gold: Sequence,
                    predicted: Sequence) -> dict:
    """The score dict of a classification task of ``kind`` (single, pair, multilabel or
    regression)."""
    if kind == "regression":
        return regression_scores(gold, predicted)
    if kind == "multilabel":
        return multilabel_scores(gold, predicted, labels=labels)
    return classification_scores(gold, predicted, labels=labels, positive=positive)
