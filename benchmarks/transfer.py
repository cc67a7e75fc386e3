"""The transfer table: what masked-LM pre-training on this machine buys each task.

For each row (an encoder architecture) the encoder is pre-trained once with ``cner pretrain``
on the corpora's training text (dev/test lines excluded), then every task is fine-tuned twice
with the same config, seed and wall-clock budget: from random initialisation (``scratch``)
and from the pre-trained encoder (``--set model.encoder=PRETRAIN_DIR/model``). Figures: MSRA
test F1, CLUENER dev F1, ChnSentiCorp and AFQMC dev accuracy.

    python benchmarks/transfer.py                        # everything not yet measured
    python benchmarks/transfer.py --rows bert --tasks msra afqmc
    python benchmarks/transfer.py --table                # print what results.json holds

Every finished cell is stored in ``OUTPUT/results.json`` and skipped on the next call
(``--redo`` measures again), so the table can be filled over several sittings; a cell's
record keeps the CPU and precision it ran on. Each fine-tune runs in its own process;
``--jobs 2`` runs two at once with one torch thread each (as ``benchmarks/classify.py
--set training.threads=1`` does), which changes their speed, so the record says so too.
The pre-training budget is a step count (``--pretrain-steps``, stated in the table), so the
encoder does not depend on how busy the machine was.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = Path(os.environ.get("CNER_CORPORA", ROOT.parent / "shared" / "corpora"))

TASK_METRIC = {"msra": "MSRA test F1", "cluener": "CLUENER dev F1",
               "chnsenticorp": "ChnSentiCorp dev acc.", "afqmc": "AFQMC dev acc."}
# The small BERT on CLUENER: the BiLSTM recipe's config with the encoder of msra-small-bert-cpu.
SMALL_BERT = ["model.encoder=scratch", "model.hidden_size=256", "model.num_layers=4",
              "model.num_heads=4", "model.intermediate_size=1024", "model.dropout=0.1",
              "training.lr=1.0e-3", "training.max_grad_norm=1.0"]
# The BiLSTM recipe's encoder (configs/msra-small-cpu.yaml) under the classification configs.
BILSTM_CLASSIFIER = ["model.encoder=bilstm", "model.embedding_size=128", "model.hidden_size=400",
                     "model.num_layers=1", "model.dropout=0.3", "training.lr=2.0e-3",
                     "training.max_grad_norm=5.0"]
TARGETS = {"afqmc": 72.0, "chnsenticorp": 92.0, "msra": 92.0}


@dataclass(frozen=True)
class Row:
    label: str
    pretrain_config: str
    tasks: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # config, overrides


ROWS = {
    "bert": Row("small BERT (256 x 4)", "configs/pretrain-small.yaml", {
        "msra": ("configs/msra-small-bert-cpu.yaml", []),
        "cluener": ("configs/cluener-small-cpu.yaml", SMALL_BERT),
        "chnsenticorp": ("configs/chnsenticorp-small-cpu.yaml", []),
        "afqmc": ("configs/afqmc-small-cpu.yaml", [])}),
    "bilstm": Row("BiLSTM recipe (msra-small-cpu)", "configs/pretrain-bilstm-cpu.yaml", {
        "msra": ("configs/msra-small-cpu.yaml", []),
        "cluener": ("configs/cluener-small-cpu.yaml", []),
        "chnsenticorp": ("configs/chnsenticorp-small-cpu.yaml", BILSTM_CLASSIFIER),
        "afqmc": ("configs/afqmc-small-cpu.yaml", BILSTM_CLASSIFIER)}),
}
# The pre-training text: `cner corpora text` of every training split, evaluation lines removed.
TEXT_SOURCES = ["msra_ner/msra_train_bio", "cluener2020/train.json", "chnsenticorp:train",
                "chnsenticorp_htl:train", "afqmc:train"]
TEXT_EXCLUDE = ["msra_ner/msra_test_bio", "cluener2020/dev.json", "cluener2020/test.json",
                "chnsenticorp:dev", "chnsenticorp:test", "chnsenticorp_htl:dev",
                "chnsenticorp_htl:test", "afqmc:dev", "afqmc:test"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def source_name(name: str) -> str:
    """A registered ``TASK:SPLIT`` as it is; a file relative to the corpora folder."""
    return name if ":" in name and "/" not in name else str(CORPORA / name)


def pretrain_text(out: Path) -> Path:
    from cner.data.text import corpus_text

    path = out / "pretrain.txt"
    if not path.is_file():
        log(f"writing the pre-training text to {path}")
        corpus_text([source_name(s) for s in TEXT_SOURCES], path,
                    exclude=[source_name(s) for s in TEXT_EXCLUDE])
    return path


def pretrained_encoder(row: str, args, out: Path) -> Path:
    """``DIR/model`` of the row's pre-training run: an existing one (``--pretrained``), else
    this benchmark's own, run now or resumed (the step budget makes it the same either way)."""
    from cner.config import load_config
    from cner.tasks.pretrain import pretrain

    given = dict(item.split("=", 1) for item in args.pretrained)
    if row in given:
        run_dir = Path(given[row])
    else:
        run_dir = out / f"pretrain-{row}"
    if (run_dir / "summary.json").is_file():
        return run_dir
    if row in given:
        raise SystemExit(f"--pretrained {row}={run_dir}: no finished pre-training run there")
    cfg = load_config(ROOT / ROWS[row].pretrain_config,
                      [f"training.max_steps={args.pretrain_steps}", "training.max_minutes=null"])
    log(f"pre-training {row} for {args.pretrain_steps} steps -> {run_dir}")
    if (run_dir / "cner_config.yaml").is_file():
        pretrain(resume=run_dir)
    else:
        pretrain(cfg, text=[pretrain_text(out)], output=run_dir)
    return run_dir


def run_cell(row: str, task: str, init: str, encoder: str | None, output: Path,
             minutes: float | None, threads: int | None) -> dict:
    """One fine-tune (in this process); returns its record."""
    from common import cpu_name
    from cner.config import load_config
    from cner.runtime.devices import resolve_device, resolve_precision

    config, overrides = ROWS[row].tasks[task]
    overrides = list(overrides)  # the config as published: early stopping, budget, seed
    if encoder:
        overrides.append(f"model.encoder={encoder}")
    if minutes is not None:
        overrides.append(f"training.max_minutes={minutes}")
    if threads:
        overrides.append(f"training.threads={threads}")
    cfg = load_config(ROOT / config, overrides)
    started = time.perf_counter()
    if task in ("msra", "cluener"):
        from cner.tasks.ner import train_ner

        run_dir, result = train_ner(cfg, output=output, overwrite=True, progress=False)
        summary = json.loads((run_dir / "summary.json").read_text("utf-8"))
        score = (summary.get("test") or result.best_metrics)["f1"]
    else:
        from cner.tasks.classification import train_classifier

        run_dir, result = train_classifier(cfg, output=output, overwrite=True, progress=False)
        score = result.best_metrics["accuracy"]
    return {"row": row, "task": task, "init": init, "score": round(100 * score, 2),
            "metric": TASK_METRIC[task], "config": config, "overrides": overrides,
            "minutes_budget": cfg.training.max_minutes, "steps": result.state.step,
            "wall_minutes": round((time.perf_counter() - started) / 60, 1),
            "stopped": result.stopped_because, "threads": threads or "default",
            "precision": resolve_precision(cfg.training.precision, resolve_device("auto")),
            "cpu": cpu_name(), "run_dir": str(run_dir)}


def load_results(path: Path) -> dict:
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def save_results(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False), "utf-8")
    os.replace(tmp, path)


def cell_key(row: str, task: str, init: str) -> str:
    return f"{row}/{task}/{init}"


def pending_cells(args, results: dict) -> list[tuple[str, str, str]]:
    cells = []
    for row in args.rows:
        for task in args.tasks:
            if task not in ROWS[row].tasks:
                continue
            for init in args.inits:
                if args.redo or cell_key(row, task, init) not in results:
                    cells.append((row, task, init))
    return cells


def run_cells(cells, args, out: Path) -> None:
    """Each cell in a child process (``--cell``), ``--jobs`` at a time; records land in
    results.json as each child finishes."""
    results_path = out / "results.json"
    encoders: dict[str, str] = {}
    for row in sorted({row for row, _, init in cells if init == "pretrained"}):
        encoders[row] = str(pretrained_encoder(row, args, out) / "model")
    queue, running = list(cells), {}
    threads = 1 if args.jobs > 1 else None
    while queue or running:
        while queue and len(running) < args.jobs:
            row, task, init = queue.pop(0)
            record = out / "cells" / f"{row}-{task}-{init}.json"
            record.parent.mkdir(parents=True, exist_ok=True)
            record.unlink(missing_ok=True)
            cmd = [sys.executable, __file__, "--cell", row, task, init, "--record", str(record),
                   "--output", str(out)]
            if init == "pretrained":
                cmd += ["--encoder", encoders[row]]
            if threads:
                cmd += ["--threads", str(threads)]
            if task in args.minutes:
                cmd += ["--cell-minutes", str(args.minutes[task])]
            log(f"start {cell_key(row, task, init)}")
            running[(row, task, init)] = (subprocess.Popen(cmd), record)
        time.sleep(5)
        for cell, (proc, record) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[cell]
            if proc.returncode or not record.is_file():
                log(f"FAILED {cell_key(*cell)} (exit {proc.returncode}); not recorded")
                continue
            results = load_results(results_path)
            results[cell_key(*cell)] = json.loads(record.read_text("utf-8"))
            save_results(results_path, results)
            log(f"done {cell_key(*cell)}: {results[cell_key(*cell)]['score']}")


def print_table(out: Path) -> None:
    results = load_results(out / "results.json")
    tasks = [t for t in TASK_METRIC if any(k.split("/")[1] == t for k in results)]
    print(f"{'row':<34}" + "".join(f"{TASK_METRIC[t]:>28}" for t in tasks))
    for row, spec in ROWS.items():
        cells = []
        for task in tasks:
            scratch = results.get(cell_key(row, task, "scratch"))
            pre = results.get(cell_key(row, task, "pretrained"))
            if task not in spec.tasks or not (scratch or pre):
                cells.append("-")
                continue
            text = (f"{scratch['score']:.2f}" if scratch else "?") + " -> " + \
                   (f"{pre['score']:.2f}" if pre else "?")
            if scratch and pre:
                text += f" ({pre['score'] - scratch['score']:+.2f})"
            cells.append(text)
        if any(c != "-" for c in cells):
            print(f"{spec.label:<34}" + "".join(f"{c:>28}" for c in cells))
    print("(scratch -> pre-trained, same config, seed and budget)")
    for task, target in TARGETS.items():
        best = max((r["score"] for k, r in results.items()
                    if r["task"] == task and r["init"] == "pretrained"), default=None)
        if best is not None:
            print(f"target {TASK_METRIC[task]} >= {target}: best pre-trained {best:.2f} "
                  f"{'PASS' if best >= target else 'MISS'}")
    gains = [(k, r["score"] - results[k.replace("pretrained", "scratch")]["score"])
             for k, r in results.items()
             if r["init"] == "pretrained" and k.replace("pretrained", "scratch") in results]
    if gains:
        print("pre-training improves every measured row:",
              "PASS" if all(g > 0 for _, g in gains) else
              "MISS (" + ", ".join(f"{k} {g:+.2f}" for k, g in gains if g <= 0) + ")")
    machines = sorted({(r["cpu"], r["precision"], str(r["threads"])) for r in results.values()})
    for cpu, precision, threads in machines:
        print(f"measured on: {cpu}, precision {precision}, torch threads {threads}")


def parse_minutes(items: list[str]) -> dict[str, float]:
    return {task: float(minutes) for task, minutes in (i.split("=", 1) for i in items)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--tasks", nargs="*", default=list(TASK_METRIC), choices=list(TASK_METRIC))
    parser.add_argument("--inits", nargs="*", default=["scratch", "pretrained"],
                        choices=["scratch", "pretrained"])
    parser.add_argument("--pretrain-steps", type=int, default=3600,
                        help="optimizer steps of pre-training (3,600 x 64 x 128 positions: "
                             "about 75 minutes for the small BERT on 2 AVX-512 cores)")
    parser.add_argument("--pretrained", action="append", default=[], metavar="ROW=RUN_DIR",
                        help="use a finished `cner pretrain` run instead of running one")
    parser.add_argument("--minutes", action="append", default=[], metavar="TASK=MIN",
                        help="override a task's wall-clock budget (default: its config's)")
    parser.add_argument("--jobs", type=int, default=1, help="fine-tunes at once (1 thread each)")
    parser.add_argument("--redo", action="store_true", help="measure cells already recorded")
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument("--output", default=str(ROOT / "runs" / "transfer"))
    # the child process of one cell
    parser.add_argument("--cell", nargs=3, metavar=("ROW", "TASK", "INIT"), help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    parser.add_argument("--encoder", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cell-minutes", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # config paths are relative to the project root
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.cell:
        row, task, init = args.cell
        record = run_cell(row, task, init, args.encoder, out / "cells" / f"{row}-{task}-{init}",
                          args.cell_minutes, args.threads)
        save_results(Path(args.record), record)
        return 0
    if not args.table:
        if not (CORPORA / "msra_ner").is_dir():
            print(f"needs the public corpora at {CORPORA} (set CNER_CORPORA)", file=sys.stderr)
            return 2
        args.minutes = parse_minutes(args.minutes)
        run_cells(pending_cells(args, load_results(out / "results.json")), args, out)
    print_table(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
