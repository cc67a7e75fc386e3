"""Scaling out on this machine: Ray annotation with 1 and 2 workers and DDP training with 1
and 2 ranks, each against the single-process command, as a user runs them (the CLI, fresh
processes, start-up included).

Annotation: ``cner annotate FILE --model M -o OUT.csv`` (single process, torch's default
threads) against the same with ``--engine ray --workers 1 --threads T`` and ``--workers 2
--threads T/2`` on a local Ray started by the command. The file is the MSRA test sentences,
once and twice over (``--copies``): the difference between the two sizes is the cost of the
extra chunks alone, so each variant's time splits into a fixed part (start-up: Ray, actors,
model loads) and a per-chunk part; the per-chunk overhead of Ray is its per-chunk time minus
the single process's. The model: the small (or base) BERT shape with random weights (the
speed does not depend on the weights), saved with ``save_model_dir``.

Training: ``cner train`` (one process) against ``torchrun --nproc_per_node 1`` and ``2``
(gloo, ``cores // ranks`` threads per rank) on the first ``--train-sentences`` MSRA training
sentences, ``--steps`` optimizer steps of the same global batch, no evaluation; chars/s is the
training throughput the run logs (``metrics.jsonl``'s end event: characters / training time,
start-up excluded), wall the whole command.

The variants alternate within each round and the table shows medians over ``--rounds``
rounds (whole commands cannot share the CPU in slices as the other benchmarks' processes do:
a Ray job is many processes).

    python benchmarks/scale.py                       # both parts, 3 rounds
    python benchmarks/scale.py --parts annotate --rounds 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import (ROOT, build_vocab, corpus_path, log, machine_line, median, model_config,
                    read_texts, table)

CNER = [sys.executable, "-m", "cner"]


def save_random_tagger(size: str, texts: list[str], out: Path) -> Path:
    """A small/base BERT-CRF tagger with random weights written as a cner model directory."""
    from cner.models.encoders import scratch_encoder
    from cner.models.metadata import ModelMeta
    from cner.models.modeldir import save_model_dir
    from cner.models.tagger import TokenTagger
    from cner.schemes import label_set
    from cner.training.loop import seed_everything

    seed_everything(42)
    vocab = build_vocab(texts, size)
    tags = label_set(["LOC", "ORG", "PER"], "bio")
    cfg = model_config(size)
    model = TokenTagger(scratch_encoder(cfg, vocab), tags, scheme="bio", head="crf",
                        dropout=cfg.dropout)
    meta = ModelMeta(task="ner", labels=tags, scheme="bio", head="crf", dropout=cfg.dropout,
                     lowercase=vocab.lowercase, halfwidth=vocab.halfwidth, max_length=128,
                     overlap=32)
    return save_model_dir(model, vocab, meta, out)


def timed(cmd: list[str], **kwargs) -> float:
    """Wall seconds of a command that must succeed."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


# --- annotation -------------------------------------------------------------------------------

def annotate_variants(threads: int) -> dict[str, list[str]]:
    half = max(1, threads // 2)
    return {"single process": [],
            f"ray, 1 worker x {threads} threads": ["--engine", "ray", "--workers", "1",
                                                   "--threads", str(threads)],
            f"ray, 2 workers x {half} thread{'s' * (half > 1)}": [
                "--engine", "ray", "--workers", "2", "--threads", str(half)]}


def run_annotation(args, tmp: Path, texts: list[str], model_dir: Path) -> list[list[str]]:
    import torch

    threads = torch.get_num_threads()
    files = {}
    for copies in args.copies:
        path = tmp / f"texts-{copies}.txt"
        path.write_text("\n".join(texts * copies) + "\n", "utf-8")
        files[copies] = path
    chars = {c: c * sum(len(t) for t in texts) for c in args.copies}
    chunks = {c: -(-c * len(texts) // (64 * 8)) for c in args.copies}  # batch 64 x 8 per chunk
    variants = annotate_variants(threads)
    seconds: dict[tuple[str, int], list[float]] = {}
    for r in range(args.rounds):
        for name, extra in variants.items():
            for copies, path in files.items():
                out = tmp / "out.csv"
                t = timed([*CNER, "annotate", str(path), "--model", str(model_dir), "-o", str(out),
                           *extra])
                seconds.setdefault((name, copies), []).append(t)
                log(f"round {r + 1} {name}, {copies}x: {t:.1f} s")
    small, large = min(args.copies), max(args.copies)
    base = {c: median(seconds[("single process", c)]) for c in args.copies}
    rows = []
    for name in variants:
        t = {c: median(seconds[(name, c)]) for c in args.copies}
        per_chunk = (t[large] - t[small]) / max(1, chunks[large] - chunks[small])
        fixed = t[small] - per_chunk * chunks[small]
        base_chunk = (base[large] - base[small]) / max(1, chunks[large] - chunks[small])
        rows.append([name, f"{chars[large] / t[large]:,.0f}", f"{base[large] / t[large]:.2f}x",
                     f"{t[large]:.1f}", f"{fixed:.1f}", f"{1000 * per_chunk:.0f}",
                     "" if name == "single process" else f"{1000 * (per_chunk - base_chunk):+.0f}"])
    print(f"\nannotation: {chars[large]:,} characters ({large}x {len(texts)} MSRA test "
          f"sentences), {chunks[large]} chunks of 512 texts; medians of {args.rounds} rounds")
    print(table(["variant", "chars/s (whole command)", "vs single", "wall s", "fixed s",
                 "ms per chunk", "Ray overhead ms/chunk"], rows))
    return rows


# --- training ---------------------------------------------------------------------------------

def train_corpus(n: int, out: Path) -> Path:
    """The first ``n`` sentences of the MSRA training file, as it is written."""
    path, _ = corpus_path("train")
    kept, sentences = [], 0
    for line in path.read_text("utf-8").splitlines():
        kept.append(line)
        if not line.strip():
            sentences += 1
            if sentences >= n:
                break
    out.write_text("\n".join(kept) + "\n", "utf-8")
    return out


def train_command(ranks: int | None, corpus: Path, run: Path, args, port: int) -> list[str]:
    settings = [f"data.train={corpus}", "data.dev=null", "data.dev_fraction=0", "data.test=null",
                f"training.max_steps={args.steps}", "training.eval_every=100000",
                "training.checkpoint_every=100000", "training.max_minutes=null"]
    cli = ["train", "-q", "-c", str(ROOT / "configs" / "msra-small-bert-cpu.yaml"), "-o", str(run),
           "--overwrite", *[x for s in settings for x in ("--set", s)]]
    if ranks is None:
        return [*CNER, *cli]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
            "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "cner", *cli]


def run_training(args, tmp: Path) -> list[list[str]]:
    import socket

    corpus = train_corpus(args.train_sentences, tmp / "train.bio")
    variants = {"one process": None, "torchrun, 1 rank": 1, "torchrun, 2 ranks": 2}
    speed: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name, ranks in variants.items():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            run = tmp / "run"
            t = timed(train_command(ranks, corpus, run, args, port),
                      env={**os.environ, "HF_HUB_OFFLINE": "1"})
            end = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                   if '"end"' in line][-1]
            speed.setdefault(name, []).append(end["chars_per_s"])
            wall.setdefault(name, []).append(t)
            log(f"round {r + 1} {name}: {end['chars_per_s']:,.0f} chars/s, {t:.1f} s wall")
    base = median(speed["one process"])
    rows = [[name, f"{median(speed[name]):,.0f}", f"{median(speed[name]) / base:.2f}x",
             f"{median(wall[name]):.1f}"] for name in variants]
    print(f"\ntraining: configs/msra-small-bert-cpu.yaml on the first {args.train_sentences} "
          f"MSRA training sentences, {args.steps} steps of the global batch; medians of "
          f"{args.rounds} rounds")
    print(table(["variant", "training chars/s", "vs one process", "wall s (whole command)"], rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="*", default=["annotate", "train"],
                        choices=["annotate", "train"])
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--texts", type=int, default=None, help="MSRA test sentences (all)")
    parser.add_argument("--copies", type=int, nargs=2, default=[1, 2],
                        help="the two input sizes, in copies of the texts")
    parser.add_argument("--train-sentences", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if "annotate" in args.parts:
        try:
            import ray  # noqa: F401
        except ImportError:
            parser.error('the Ray rows need Ray Data: pip install "cner[ray]"')
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="cner-scale-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "annotate" in args.parts:
            test_path, note = corpus_path("test")
            texts = [t for t in read_texts(test_path, args.texts) if t]
            train_path, _ = corpus_path("train")
            model_dir = save_random_tagger(args.size, read_texts(train_path), tmp / "model")
            log(f"{note}: {len(texts)} texts; model {args.size} (random weights)")
            run_annotation(args, tmp, texts, model_dir)
        if "train" in args.parts:
            run_training(args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
