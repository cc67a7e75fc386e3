"""MSRA accuracy of the small-CPU config against the published character BiLSTM-CRF baseline.

Trains configs/msra-small-cpu.yaml (5% of train held out as dev, wall-clock budget from the
config or --minutes), then prints test precision/recall/F1 per type, wall time and training
throughput next to Zhang & Yang (2018)'s character-level BiLSTM-CRF without pre-training:
MSRA test F1 88.81.

    python benchmarks/accuracy.py                 # the 30-minute run the target is about
    python benchmarks/accuracy.py --minutes 5     # a shorter look
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
from cner.metrics import format_scores  # noqa: E402
from cner.tasks.ner import train_ner  # noqa: E402

BASELINE_F1 = 88.81  # Zhang & Yang 2018, Lattice LSTM paper, char BiLSTM-CRF baseline on MSRA


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "msra-small-cpu.yaml"))
    parser.add_argument("--minutes", type=float, help="override training.max_minutes")
    parser.add_argument("--output", default=str(ROOT / "runs" / "bench-msra-small"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    os.chdir(ROOT)  # config paths are relative to the project root
    overrides = list(args.overrides)
    if args.minutes is not None:
        overrides.append(f"training.max_minutes={args.minutes}")
    cfg = load_config(args.config, overrides)
    if not Path(cfg.data.train).exists():
        print(f"needs {cfg.data.train} (../shared/corpora beside the project)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    run_dir, result = train_ner(cfg, output=args.output, overwrite=True)
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speed = [e["chars_per_s"] for e in events if e["event"] == "end"][-1]
    test = summary["test"]
    print(format_scores(test))
    print()
    print(f"{'system':<44}{'MSRA test F1':>14}")
    print(f"{'char BiLSTM-CRF, no pre-training (Zhang & Yang 2018)':<44}{BASELINE_F1:>14.2f}")
    print(f"{'cner ' + cfg.name + f' ({cfg.training.max_minutes} min budget)':<44}{100 * test['f1']:>14.2f}")
    print(f"ratio to baseline: {100 * test['f1'] / BASELINE_F1:.3f}; "
          f"wall time {wall / 60:.1f} min (training + evaluation); "
          f"training throughput {speed:,.0f} chars/s; steps {result.state.step}; "
          f"stopped: {result.stopped_because}")
    print("target (beat 88.81 within 30 min on 2 cores):",
          "PASS" if 100 * test["f1"] > BASELINE_F1 else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
