"""Pictures: a run's training curves (``curves.png``) and the report's figures, as PNG.

Drawn with matplotlib's object API on the Agg canvas (no display, no pyplot state, safe in a
server or a thread). matplotlib is the optional extra ``plots`` (``pip install
"cner[plots]"``); without it `require_matplotlib` raises a one-line `ConfigError` saying so.
"""
from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

from cner.errors import ConfigError, InputError
from cner.fileio import atomic_write
from cner.insight import PLOTS_HINT

CURVES = "curves.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# One colour per error class, the same in every picture.
KIND_COLOURS = {"correct": "#4caf50", "wrong_type": "#ff9800", "wrong_boundary": "#2196f3",
                "wrong_boundary_and_type": "#9c27b0", "missed": "#9e9e9e",
                "spurious": "#f44336"}


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib() -> None:
    if not have_matplotlib():
        raise ConfigError(f"pictures need matplotlib, which is not installed: {PLOTS_HINT}")


def _figure(width: float, height: float):
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def read_metrics(path: str | Path) -> list[dict]:
    """The events of a ``metrics.jsonl`` (a last line cut short by a kill is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such metrics file", path=path,
                         hint="a run directory written by cner train has metrics.jsonl")
    lines = path.read_text("utf-8").split("\n")
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if number == len(lines):
                continue
            raise InputError("is not a JSON event", path=path, line=number) from None
        if isinstance(event, dict):
            events.append(event)
    return events


def _numbers(events: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    rows = [(e["step"], e[key]) for e in events
            if isinstance(e.get(key), (int, float)) and isinstance(e.get("step"), int)]
    return [s for s, _ in rows], [float(v) for _, v in rows]


# The dev score keys plotted when present, in order (NER: f1; classifiers: accuracy...).
SCORE_KEYS = ("f1", "macro_f1", "accuracy", "matthews_corrcoef", "pearson", "spearman")


def curves_png(events: Sequence[dict]) -> bytes:
    """Three panels over optimiser steps: the train loss, the dev scores (overall and F1 per
    entity type, the best evaluation marked) and the learning rate."""
    train = [e for e in events if e.get("event") == "train"]
    evals = [e for e in events if e.get("event") == "eval"]
    figure = _figure(13, 3.8)
    loss_ax, score_ax, lr_ax = figure.subplots(1, 3)
    steps, loss = _numbers(train, "loss")
    loss_ax.plot(steps, loss, color="#1f77b4")
    if loss and min(loss) > 0 and max(loss) / min(loss) > 20:
        loss_ax.set_yscale("log")
    loss_ax.set(title="train loss", xlabel="step")
    drawn = False
    for key in SCORE_KEYS:
        steps, values = _numbers(evals, key)
        if values:
            score_ax.plot(steps, values, marker="o", markersize=3, linewidth=2,
                          label=f"dev {key}")
            drawn = True
    types = sorted({t for e in evals for t in (e.get("per_type") or {})})
    for label in types:
        rows = [(e["step"], e["per_type"][label]["f1"]) for e in evals
                if label in (e.get("per_type") or {}) and "f1" in e["per_type"][label]]
        score_ax.plot([s for s, _ in rows], [v for _, v in rows], linestyle="--",
                      linewidth=1, label=f"{label} f1")
        drawn = True
    best = [e for e in evals if e.get("best")]
    key = next((k for k in SCORE_KEYS if best and isinstance(best[-1].get(k), (int, float))),
               None)
    if key:
        score_ax.axvline(best[-1]["step"], color="#888888", linewidth=0.8, linestyle=":")
        score_ax.annotate(f"best {best[-1][key]:.3f}", (best[-1]["step"], best[-1][key]),
                          textcoords="offset points", xytext=(-4, 6), ha="right", fontsize=8)
    if drawn:
        score_ax.legend(fontsize=7, loc="best")
    else:
        score_ax.text(0.5, 0.5, "no dev evaluation", ha="center", va="center",
                      transform=score_ax.transAxes)
    score_ax.set(title="dev scores", xlabel="step", ylim=(0, 1.02))
    steps, lr = _numbers(train, "lr")
    lr_ax.plot(steps, lr, color="#2ca02c")
    lr_ax.set(title="learning rate", xlabel="step")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in (loss_ax, score_ax, lr_ax):
        ax.grid(alpha=0.3)
    return _png(figure)


def write_curves(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """``RUN_DIR/curves.png`` (or ``output``) from ``RUN_DIR/metrics.jsonl``, written
    atomically; returns its path."""
    run_dir = Path(run_dir)
    target = Path(output) if output is not None else run_dir / CURVES
    image = curves_png(read_metrics(run_dir / "metrics.jsonl"))
    with atomic_write(target, "wb", encoding=None) as handle:
        handle.write(image)
    return target


def confusion_png(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> bytes:
    """The entity-type confusion matrix (`ErrorAnalysis.confusion`): rows gold, columns
    predicted, counts in the cells, shaded by each row's share."""
    n = len(labels)
    figure = _figure(1.6 + 0.75 * n, 1.2 + 0.6 * n)
    ax = figure.subplots()
    shares = [[c / (sum(row) or 1) for c in row] for row in matrix]
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if shares[i][j] > 0.6 else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted type (none: missed)", ylabel="gold type (none: spurious)",
           title="entity types")
    return _png(figure)


def reliability_png(report: dict) -> bytes:
    """The reliability diagram of a calibration report (`cner.insight.calibration`): each
    score bin's accuracy against its mean score, the diagonal, and the bins' counts; beside
    it precision, recall and F1 over the score threshold."""
    figure = _figure(10, 4)
    ax, curve_ax = figure.subplots(1, 2)
    bins = [b for b in report["bins"] if b["count"]]
    width = report["bins"][0]["high"] - report["bins"][0]["low"] if report["bins"] else 0.1
    ax.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
           color="#64b5f6", edgecolor="#1565c0", label="share correct")
    ax.plot([0, 1], [0, 1], color="#888888", linestyle="--", label="perfect calibration")
    ax.plot([b["mean_score"] for b in bins], [b["accuracy"] for b in bins], marker="o",
            color="#d32f2f", linewidth=1, label="mean score of the bin")
    for b in bins:
        ax.annotate(str(b["count"]), (b["low"] + width / 2, b["accuracy"]), ha="center",
                    textcoords="offset points", xytext=(0, 3), fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="entity score", ylabel="share correct",
           title=f"reliability (ECE {report['ece']:.3f})")
    ax.legend(fontsize=7, loc="upper left")
    curve = report.get("curve") or report["thresholds"]
    for key in ("precision", "recall", "f1"):
        rows = [r for r in curve if r["kept"] or key != "precision"]  # no precision of nothing
        curve_ax.plot([r["threshold"] for r in rows], [r[key] for r in rows], label=key)
    best = report["best"]
    curve_ax.axvline(best["threshold"], color="#888888", linestyle=":", linewidth=0.8)
    curve_ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="minimum score (--min-score)",
                 title=f"best F1 {best['f1']:.3f} at {best['threshold']:.3f}")
    curve_ax.legend(fontsize=7, loc="lower left")
    for a in (ax, curve_ax):
        a.grid(alpha=0.3)
    return _png(figure)


def outcomes_png(counts: dict, kinds: Sequence[str], title: str) -> bytes:
    """Horizontal stacked bars: per type, its entities by class (`ErrorAnalysis` counts)."""
    rows = list(counts["per_type"].items()) + [("all", counts["overall"])]
    figure = _figure(9, 1.0 + 0.45 * len(rows))
    ax = figure.subplots()
    names = [label for label, _ in rows][::-1]
    left = [0.0] * len(rows)
    for kind in kinds:
        shares = [row[kind] / (row["total"] or 1) for _, row in rows][::-1]
        ax.barh(names, shares, left=left, color=KIND_COLOURS[kind],
                label=kind.replace("_", " "))
        left = [a + b for a, b in zip(left, shares)]
    ax.set(xlim=(0, 1), xlabel="share of the entities", title=title)
    figure.legend(fontsize=7, ncols=len(kinds), loc="outside lower center", frameon=False)
    return _png(figure)


__all__ = ["CURVES", "PNG_MAGIC", "confusion_png", "curves_png", "have_matplotlib",
           "outcomes_png", "read_metrics", "reliability_png", "require_matplotlib",
           "write_curves"]
