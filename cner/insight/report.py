"""``report.html``: one self-contained page on a model's behaviour on a labelled corpus.

The scores per type, the error breakdown (both sides, boundary shapes), the entity-type
confusion matrix, the calibration of the entity scores (reliability diagram, thresholds),
the memorisation probe when it ran, and the sentences with the most errors, their gold and
predicted entities highlighted. Pictures are inline base64 PNGs and the style sheet is in
the page: no script, no font, no link to load, so it opens offline and can be mailed as is.
``report.json`` beside it holds the same figures.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Sequence
from pathlib import Path

from cner.fileio import atomic_write
from cner.insight import plots
from cner.insight.errors import (GOLD_KINDS, KIND_TITLES, PREDICTED_KINDS, ErrorAnalysis,
                                 Outcome, SentenceErrors)

REPORT = "report.html"
REPORT_JSON = "report.json"
# Entity type colours (background of highlighted mentions), cycled.
TYPE_COLOURS = ("#ffe082", "#a5d6a7", "#90caf9", "#f48fb1", "#ce93d8", "#80cbc4", "#ffab91",
                "#c5e1a5", "#b0bec5", "#fff59d")
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",
"Microsoft YaHei",sans-serif;margin:2em auto;max-width:1150px;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
tr.total td{font-weight:bold;background:#fafafa}
img{max-width:100%;display:block;margin:.6em 0}
.meta{color:#666;font-size:.9em}.note{color:#555;font-size:.9em;max-width:60em}
.sentence{border:1px solid #e0e0e0;border-radius:6px;padding:.5em .8em;margin:.8em 0}
.line{margin:.2em 0;font-size:1.05em;word-break:break-all}
.side{display:inline-block;width:6.5em;color:#777;font-size:.85em}
mark{padding:0 .1em;border-radius:3px;border:2px solid transparent}
mark sub{font-size:.65em;color:#333;margin-left:.1em}
mark.k-correct{border-color:#4caf50}mark.k-wrong_type{border-color:#ff9800}
mark.k-wrong_boundary{border-color:#2196f3}mark.k-wrong_boundary_and_type{border-color:#9c27b0}
mark.k-missed{border-color:#9e9e9e;border-style:dashed}mark.k-spurious{border-color:#f44336}
.events{font-size:.85em;color:#444;margin:.3em 0 0 6.5em}
.legend span{display:inline-block;margin-right:1em;font-size:.85em}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[Sequence], total_last: bool = False) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="total"' if total_last and i == len(rows) - 1 else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def _f(x: float) -> str:
    return f"{x:.4f}"


def scores_section(scores: dict) -> str:
    rows = [(label, _f(r["precision"]), _f(r["recall"]), _f(r["f1"]), r["support"])
            for label, r in sorted(scores["per_type"].items())]
    rows.append(("micro avg", _f(scores["precision"]), _f(scores["recall"]), _f(scores["f1"]),
                 scores["support"]))
    rows.append(("macro avg", _f(scores["macro_precision"]), _f(scores["macro_recall"]),
                 _f(scores["macro_f1"]), scores["support"]))
    return ("<h2>Scores</h2><p class=note>Strict entity-level scores (start, end and type must "
            "all match), as <code>cner evaluate</code> prints them.</p>"
            + _table(["type", "precision", "recall", "F1", "support"], rows))


def _count_rows(counts: dict, kinds: Sequence[str]) -> list[list]:
    rows = []
    for label, row in [*counts["per_type"].items(), ("all", counts["overall"])]:
        total = row["total"]
        rows.append([label, total, *(f"{row[k]} ({100 * row[k] / total:.0f}%)" if total
                                     else "0" for k in kinds)])
    return rows


def errors_section(analysis: ErrorAnalysis, images: bool) -> str:
    gold, predicted = analysis.gold_counts(), analysis.predicted_counts()
    shapes = analysis.boundary_counts()
    parts = ["<h2>Errors</h2><p class=note>Every gold entity is classed by the best prediction "
             "that overlaps it, every predicted entity by the best gold entity that overlaps "
             "it: correct (same boundaries and type), wrong type (same boundaries), wrong "
             "boundary (same type, overlapping), wrong both (overlapping, other boundaries "
             "and type), missed / spurious (nothing overlaps). Each side's classes sum to its "
             "total.</p>",
             "<h3>Gold entities, by what the model made of each</h3>",
             _table(["type", "gold", *(KIND_TITLES[k] for k in GOLD_KINDS)],
                    _count_rows(gold, GOLD_KINDS), total_last=True)]
    if images:
        parts.append(_img(plots.outcomes_png(gold, GOLD_KINDS, "gold entities"),
                          "gold entities by outcome"))
    parts += ["<h3>Predicted entities, by what each one was</h3>",
              _table(["type", "predicted", *(KIND_TITLES[k] for k in PREDICTED_KINDS)],
                     _count_rows(predicted, PREDICTED_KINDS), total_last=True)]
    if images:
        parts.append(_img(plots.outcomes_png(predicted, PREDICTED_KINDS, "predicted entities"),
                          "predicted entities by outcome"))
    parts.append(f"<p>Boundary errors: {shapes['longer']} predictions too long (they contain "
                 f"the gold entity), {shapes['shorter']} too short (inside it), "
                 f"{shapes['shifted']} shifted. {analysis.n_events()} error events in "
                 f"{sum(1 for s in analysis.sentences if s.n_errors)} of "
                 f"{len(analysis.sentences)} sentences.</p>")
    labels, matrix = analysis.confusion()
    parts.append("<h3>Entity types</h3><p class=note>Rows: gold type; columns: the type of the "
                 "prediction that overlaps it best (same boundaries or not). The last column "
                 "counts the missed gold entities, the last row the spurious predictions.</p>")
    if images:
        parts.append(_img(plots.confusion_png(labels, matrix), "entity type confusion matrix"))
    parts.append(_table(["gold \\ predicted", *labels],
                        [[label, *row] for label, row in zip(labels, matrix)]))
    return "".join(parts)


def calibration_section(report: dict, images: bool) -> str:
    best = report["best"]
    parts = ["<h2>Entity scores</h2>",
             f"<p>{report['n']} predicted entities, {report['correct']} correct. Expected "
             f"calibration error <b>{report['ece']:.4f}</b> over {len(report['bins'])} score "
             f"bins (largest gap {report['max_gap']:.4f}, Brier score {report['brier']:.4f}). "
             f"Best F1 <b>{best['f1']:.4f}</b> keeping the entities scored at least "
             f"<b>{best['threshold']!r}</b> (<code>cner annotate --min-score</code>).</p>"]
    if images:
        parts.append(_img(plots.reliability_png(report), "reliability diagram"))
    parts.append(_table(["min score", "kept", "precision", "recall", "F1"],
                        [(f"{r['threshold']:.2f}", r["kept"], _f(r["precision"]),
                          _f(r["recall"]), _f(r["f1"])) for r in report["thresholds"]]))
    parts.append(_table(["score bin", "entities", "mean score", "share correct"],
                        [(f"{b['low']:.1f}-{b['high']:.1f}", b["count"], _f(b["mean_score"]),
                          _f(b["accuracy"])) for b in report["bins"]]))
    return "".join(parts)


def probe_section(report: dict) -> str:
    rows = [(label + (" (replaced)" if r["probed"] else ""), r["support"], _f(r["f1_before"]),
             _f(r["f1_after"]), f"{r['change']:+.4f}") for label, r in report["per_type"].items()]
    o = report["overall"]
    rows.append(("micro avg", "", _f(o["f1_before"]), _f(o["f1_after"]), f"{o['change']:+.4f}"))
    examples = ", ".join(f"{x['before']} → {x['after']}" for x in report["examples"][:10])
    return ("<h2>Memorisation probe</h2>"
            f"<p>Every gold {_e(', '.join(report['types']))} mention of the corpus replaced by "
            "another of the same type ("
            + _e("; ".join(f"{k}: {v}" for k, v in report["sources"].items()))
            + f"; {report['replaced']} mentions, seed "
            f"{report['seed']}; {report['skipped']} nested ones left as they were). A model "
            "that learnt the test mentions by heart drops sharply; one that reads the context "
            f"keeps its F1. The replaced mentions found exactly: {report['found_before']} "
            f"before, {report['found_after']} after.</p>"
            + _table(["type", "support", "F1 before", "F1 after", "change"], rows,
                     total_last=True)
            + f"<p class=note>For example: {_e(examples)}</p>")


def _colour(labels: list[str], label: str) -> str:
    return TYPE_COLOURS[labels.index(label) % len(TYPE_COLOURS)] if label in labels else "#eee"


def highlight(text: str, outcomes: Sequence[Outcome], labels: list[str]) -> str:
    """``text`` as HTML with each outcome's entity (non-overlapping) marked: background by
    type, border by class, type and class in the tooltip."""
    out, cursor = [], 0
    for o in sorted(outcomes, key=lambda o: o.span.start):
        s = o.span
        if s.start < cursor:
            continue
        other = (f"; other side: {o.other.label} {text[o.other.start:o.other.end]}"
                 if o.other else "")
        out.append(_e(text[cursor:s.start]))
        out.append(f'<mark class="k-{o.kind}" style="background:{_colour(labels, s.label)}" '
                   f'title="{_e(s.label)}: {_e(KIND_TITLES[o.kind])}{_e(other)}">'
                   f"{_e(text[s.start:s.end])}<sub>{_e(s.label)}</sub></mark>")
        cursor = s.end
    out.append(_e(text[cursor:]))
    return "".join(out)


def _where(sentence: SentenceErrors) -> str:
    ex = sentence.example
    where = f"sentence {sentence.index + 1}"
    if ex.line:
        where += f", {Path(ex.source).name}:{ex.line}"
    if ex.id is not None:
        where += f", id {ex.id}"
    return where


def examples_section(analysis: ErrorAnalysis, n: int) -> str:
    labels = analysis.labels()
    legend = "".join(f'<span><mark class="k-{k}" style="background:#fff">{_e(t)}</mark></span>'
                     for k, t in KIND_TITLES.items())
    legend += "".join(f'<span><mark style="background:{_colour(labels, label)}">{_e(label)}'
                      "</mark></span>" for label in labels)
    parts = [f"<h2>The sentences with the most errors</h2><p class=legend>{legend}</p>"]
    worst = analysis.worst(n)
    if not worst:
        parts.append("<p>No errors.</p>")
    for sentence in worst:
        text = sentence.example.text
        events = "; ".join(
            f"{KIND_TITLES[e.kind]}"
            + (f" ({e.boundary})" if e.boundary else "")
            + (f": gold {e.gold.label} {text[e.gold.start:e.gold.end]}" if e.gold else ":")
            + (f" / predicted {e.predicted.label} {text[e.predicted.start:e.predicted.end]}"
               if e.predicted else "")
            for e in sentence.events())
        parts.append(f'<div class="sentence"><div class="meta">{_e(_where(sentence))}: '
                     f"{sentence.n_errors} errors</div>"
                     f'<div class="line"><span class="side">gold</span>'
                     f"{highlight(text, sentence.gold, labels)}</div>"
                     f'<div class="line"><span class="side">predicted</span>'
                     f"{highlight(text, sentence.predicted, labels)}</div>"
                     f'<div class="events">{_e(events)}</div></div>')
    return "".join(parts)


def build_report(*, scores: dict, analysis: ErrorAnalysis, calibration: dict,
                 probe: dict | None = None, model: str = "", data: str = "",
                 worst: int = 30, images: bool = True) -> str:
    """The report page as a string (``images=False``: tables only, no matplotlib)."""
    from cner import __version__

    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>cner report: {_e(Path(model).name or model)} on {_e(Path(data).name)}"
            f"</title><style>{STYLE}</style></head><body>"
            f"<h1>Why the model is right or wrong</h1><p class=meta>model <code>{_e(model)}"
            f"</code><br>data <code>{_e(data)}</code> ({len(analysis.sentences)} sentences, "
            f"{scores['support']} gold entities)<br>cner {_e(__version__)}, {when}</p>")
    body = [scores_section(scores), errors_section(analysis, images),
            calibration_section(calibration, images)]
    if probe is not None:
        body.append(probe_section(probe))
    body.append(examples_section(analysis, worst))
    return head + "".join(body) + "</body></html>\n"


def write_report(directory: str | Path, *, scores: dict, analysis: ErrorAnalysis,
                 calibration: dict, probe: dict | None = None, model: str = "",
                 data: str = "", worst: int = 30) -> Path:
    """``DIRECTORY/report.html`` (with its pictures: needs matplotlib) and ``report.json``,
    each written atomically; returns the page's path."""
    plots.require_matplotlib()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    page = build_report(scores=scores, analysis=analysis, calibration=calibration, probe=probe,
                        model=model, data=data, worst=worst)
    figures = {"model": model, "data": data, "scores": scores, "errors": analysis.to_dict(),
               "calibration": calibration, "probe": probe}
    with atomic_write(directory / REPORT_JSON) as handle:
        json.dump(figures, handle, ensure_ascii=False, indent=1)
    with atomic_write(directory / REPORT) as handle:
        handle.write(page)
    return directory / REPORT


__all__ = ["REPORT", "REPORT_JSON", "build_report", "highlight", "write_report"]
