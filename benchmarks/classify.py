"""Small-CPU fine-tuning on ChnSentiCorp and AFQMC, and which long-text strategy wins.

For each task: train configs/<task>-small-cpu.yaml within its wall-clock budget (20 minutes
by default) and print dev accuracy, wall time and training throughput next to published
BERT-base figures (for context: those are pre-trained 110M-parameter models on GPUs).
``--strategies`` also trains ChnSentiCorp once per truncation strategy with a shorter budget
and prints dev accuracy per strategy.

    python benchmarks/classify.py                          # both tasks, 20 min each
    python benchmarks/classify.py --minutes 5 --tasks chnsenticorp
    python benchmarks/classify.py --strategies --strategy-minutes 4 --tasks
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cner.config import load_config  # noqa: E402
from cner.tasks.classification import train_classifier  # noqa: E402

# Context only: pre-trained BERT-base (Chinese) as reported by the ERNIE paper (Sun et al.
# 2019; ChnSentiCorp dev accuracy) and the CLUE paper (Xu et al. 2020; AFQMC test accuracy).
PUBLISHED = {"chnsenticorp": ("BERT-base dev acc., ERNIE paper", 94.6),
             "afqmc": ("BERT-base test acc., CLUE paper", 73.70)}
STRATEGIES = ("head", "tail", "head+tail", "chunks")


def run(task: str, minutes: float, output: Path, extra: list[str]) -> dict:
    cfg = load_config(ROOT / "configs" / f"{task}-small-cpu.yaml",
                      [f"training.max_minutes={minutes}", *extra])
    started = time.perf_counter()
    run_dir, result = train_classifier(cfg, output=output, overwrite=True)
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speed = [e["chars_per_s"] for e in events if e["event"] == "end"][-1]
    return {"accuracy": result.best_metrics.get("accuracy", float("nan")),
            "macro_f1": result.best_metrics.get("macro_f1", float("nan")),
            "wall_min": wall / 60, "chars_per_s": speed, "steps": result.state.step}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["chnsenticorp", "afqmc"])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--strategies", action="store_true")
    parser.add_argument("--strategy-minutes", type=float, default=4.0)
    parser.add_argument("--output", default=str(ROOT / "runs" / "bench-classify"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for every run, e.g. training.threads=1")
    args = parser.parse_args()
    os.chdir(ROOT)
    out = Path(args.output)
    rows = []
    for task in args.tasks:
        res = run(task, args.minutes, out / task, args.overrides)
        rows.append((task, res))
        print(f"[{task}] {res}", file=sys.stderr)
    if rows:
        print(f"{'task':<14}{'dev acc':>9}{'macro F1':>10}{'wall min':>10}{'chars/s':>10}"
              f"   published (context)")
        for task, res in rows:
            name, acc = PUBLISHED[task]
            print(f"{task:<14}{100 * res['accuracy']:>9.2f}{100 * res['macro_f1']:>10.2f}"
                  f"{res['wall_min']:>10.1f}{res['chars_per_s']:>10,.0f}   {name}: {acc:.2f}")
    if args.strategies:
        print(f"\nChnSentiCorp dev accuracy by long-text strategy ({args.strategy_minutes} min each, "
              "max_length 256):")
        for strategy in STRATEGIES:
            res = run("chnsenticorp", args.strategy_minutes, out / f"strategy-{strategy.replace('+', '-')}",
                      [f"classify.truncation={strategy}", *args.overrides])
            print(f"  {strategy:<10} {100 * res['accuracy']:6.2f}  ({res['steps']} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
