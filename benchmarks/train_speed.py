"""Training throughput: cner's training loop against Hugging Face ``Trainer``.

Variants, all on the same BertConfig, the same windows, the same batch size and the same
number of optimizer steps. The windows are the first (warm-up + timed steps) x batch windows
of the first MSRA training sentences, encoded with cner's CharVocab and cut to
``--max-length`` positions: each run is exactly one epoch over them, so all variants see the
same length mix and differ only in how they batch it.

  (a) cner      ``cner.training.train_loop`` with a CRF ``TokenTagger`` (precision ``auto``,
                bf16 on a CPU with bf16 support), batches from ``cner.tasks.ner.ner_train_batches``
  (b) trainer   ``Trainer`` + ``BertForTokenClassification`` at its defaults (fp32, random
                sampler), each batch padded to its longest window by a minimal collator
  (c) tuned     the same with ``bf16=True`` and length grouping (``group_by_length=True``;
                in transformers 5.x ``train_sampling_strategy="group_by_length"``, and bf16 on
                a CPU-only machine also needs ``use_cpu=True``)

Timing. The machine's speed drifts by up to ~3x within seconds, so whole runs timed one after
the other are not comparable. In each round every run is a fresh process, built untimed, and
the runs take turns on the CPU, one at a time, ``--quantum`` seconds each
(`process_interleaver.ProcessInterleaver`, SIGSTOP/SIGCONT; from round 2 on the turns are in
proportion to the previous round's times, so the runs advance together). Each run records the
time after every optimizer step; its time for a stretch of steps is the CPU turns it had in
between, so every variant is timed as if alone, in the main thread of its own process, over
the same stretch of wall time. (Threads were used before the fourth session; GNU OpenMP slows
every thread's parallel regions once a process holds more OpenMP threads than CPUs:
benchmarks/README.md.)
chars/s = real characters (not padding, not [CLS]/[SEP], counted by a forward pre-hook) of
``--steps`` steps after ``--warmup`` warm-up steps / their time; model construction, batching
set-up, warm-up and cner's end-of-run checkpoint are excluded. The table shows the median of
``--rounds`` rounds.

Needs ``accelerate`` (a requirement of ``Trainer``, not of cner): ``pip install accelerate``.

    python benchmarks/train_speed.py --size small
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import inspect
import sys
import tempfile
import time
import warnings
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import (add_variants_option, build_vocab, chosen_variants, corpus_path, log,
                    machine_line, median, model_config, read_examples, table)
from process_interleaver import ProcessInterleaver

warnings.filterwarnings("ignore", message=".*pin_memory.*")  # Trainer's default, a no-op on CPU

VARIANTS = ("cner", "trainer", "tuned")
LABELS = {"cner": "(a) cner train_loop, precision auto",
          "trainer": "(b) HF Trainer, defaults (fp32)",
          "tuned": "(c) HF Trainer, bf16 + group_by_length"}
TARGETS = {"trainer": 1.5, "tuned": 1.0}


def encode_windows(examples, vocab, tags, cfg):
    """``(windows, featurizer)`` from ``cner.tasks.ner.encode_corpus``."""
    from cner.encoding.features import Featurizer
    from cner.tasks.ner import encode_corpus

    featurizer = Featurizer(vocab)
    return encode_corpus(examples, featurizer, tags, cfg), featurizer


def window_ids(window) -> list[int]:
    """A training window's ``input_ids`` ([CLS] chars [SEP]); windows are id lists or dicts."""
    return window["input_ids"] if isinstance(window, dict) else window


def count_forwards(model, count) -> list[tuple[int, int]]:
    """A list that gets ``(real characters, padded positions)`` of every forward of ``model``."""
    seen: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(count(kwargs)),
                                    with_kwargs=True)
    return seen


def prepare_cner(windows, vocab, featurizer, tags, args, model_cfg, run_dir: Path):
    """``(job, forwards)``: a callable running ``train_loop`` and its forward counter."""
    from cner.config import TrainingConfig
    from cner.models.encoders import scratch_encoder
    from cner.models.tagger import TokenTagger
    from cner.tasks.ner import ner_train_batches
    from cner.training.loop import seed_everything, train_loop

    seed_everything(42)
    model = TokenTagger(scratch_encoder(model_cfg, vocab, max_positions=max(512, args.max_length)),
                        tags, scheme="bio", head="crf", dropout=model_cfg.dropout)
    cfg = TrainingConfig(max_steps=args.warmup + args.steps, batch_size=args.batch_size,
                         precision=args.cner_precision, early_stopping_patience=None, seed=42)

    @functools.lru_cache(maxsize=2)
    def epoch_batches(epoch: int):
        return ner_train_batches(windows, batch_size=args.batch_size, seed=cfg.seed,
                                 epoch=epoch, featurizer=featurizer)

    forwards = count_forwards(model, lambda kw: (int(kw["char_mask"].sum()),
                                                 kw["input_ids"].numel()))
    epoch_batches(0)  # collate before the run starts (train_ner does it inside train_loop)
    job = functools.partial(train_loop, model, cfg=cfg, run_dir=run_dir,
                            epoch_batches=epoch_batches, evaluate=None,
                            save_best=lambda m, metrics: None, progress=False)
    return job, forwards


def prepare_trainer(dataset, bert_config, tags, pad_id, args, tuned: bool, out_dir: Path):
    """``(job, forwards)``: a callable running ``Trainer.train`` and its forward counter."""
    import torch
    from transformers import BertForTokenClassification, Trainer, TrainingArguments, set_seed

    def collate(features):
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    set_seed(42)
    config = copy.deepcopy(bert_config)
    config.num_labels = len(tags)
    config.id2label = dict(enumerate(tags))
    config.label2id = {t: i for i, t in enumerate(tags)}
    model = BertForTokenClassification(config)
    extra = {}
    if tuned:
        extra["bf16"] = True
        params = inspect.signature(TrainingArguments).parameters
        if "group_by_length" in params:
            extra["group_by_length"] = True
        else:  # transformers 5.x
            extra["train_sampling_strategy"] = "group_by_length"
        if "use_cpu" in params:  # 5.x refuses bf16 on a CPU-only machine without it
            extra["use_cpu"] = True
    training_args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps, report_to="none", save_strategy="no",
        disable_tqdm=True, seed=42, **extra)
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset,
                      data_collator=collate)
    forwards = count_forwards(model, lambda kw: (int((kw["labels"] != -100).sum()),
                                                 kw["input_ids"].numel()))
    return trainer.train, forwards


def prepare_data(args) -> dict:
    """Everything every variant trains on, built the same way in every process."""
    from cner.config import Config
    from cner.models.encoders import scratch_encoder
    from cner.schemes import label_set
    from cner.runtime.devices import resolve_device, resolve_precision

    path, note = corpus_path("train")
    # Exactly one epoch of (warm-up + timed steps) x batch windows: every variant trains on the
    # same set of windows once, so the length mix is the same and only the batching differs.
    needed = (args.warmup + args.steps) * args.batch_size
    examples = read_examples(path, needed)  # a sentence gives at least one window
    cfg = Config()
    cfg.data.max_length = args.max_length
    cfg.model = model_config(args.size)
    vocab = build_vocab((ex.text for ex in examples), args.size)
    tags = label_set(sorted({s.label for ex in examples for s in ex.spans}), "bio")
    windows, featurizer = encode_windows(examples, vocab, tags, cfg)
    if len(windows) < needed:  # the sample corpus: repeat it
        windows = windows * (needed // len(windows) + 1)
    windows = windows[:needed]
    dataset = [{"input_ids": window_ids(w), "labels": [-100, *labs, -100]} for w, labs in windows]
    bert_config = scratch_encoder(cfg.model, vocab, max_positions=max(512, args.max_length)).config
    precision = resolve_precision(args.cner_precision, resolve_device("auto"))
    return {"note": note, "examples": examples, "vocab": vocab, "tags": tags, "windows": windows,
            "featurizer": featurizer, "dataset": dataset, "bert_config": bert_config,
            "precision": precision, "cfg": cfg}


def setup_variant(variant: str, args: argparse.Namespace, out_dir: str):
    """Process job: one variant's training run, built untimed; its run returns the
    ``perf_counter`` readings at its start and after every optimizer step, and its forwards."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    data = prepare_data(args)
    if variant == "cner":
        job, forwards = prepare_cner(data["windows"], data["vocab"], data["featurizer"],
                                     data["tags"], args, data["cfg"].model, Path(out_dir))
    else:
        job, forwards = prepare_trainer(data["dataset"], data["bert_config"], data["tags"],
                                        data["vocab"].pad_id, args, variant == "tuned",
                                        Path(out_dir))
    stamps: list[float] = []
    register_optimizer_step_post_hook(lambda opt, a, kw: stamps.append(time.perf_counter()))

    def run(stop_requested):
        stamps.clear()
        forwards.clear()
        stamps.append(time.perf_counter())
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its final log
            job()
        return stamps[:], forwards[:]
    return {}, run


def measure(stamps: list[float], forwards: list[tuple[int, int]], warmup: int, steps: int,
            busy_between) -> dict:
    """chars/s over the timed steps. ``stamps``: the run's start, then the end of every
    optimizer step (``perf_counter``); ``busy_between(a, b)``: the run's CPU turns in between."""
    if len(forwards) != warmup + steps or len(stamps) != warmup + steps + 1:
        raise RuntimeError(f"expected {warmup + steps} steps and forwards, saw "
                           f"{len(stamps) - 1} steps and {len(forwards)} forwards")
    seconds = busy_between(stamps[warmup], stamps[warmup + steps])
    timed = forwards[warmup:warmup + steps]
    chars = sum(c for c, _ in timed)
    return {"chars_s": chars / seconds, "ms_step": 1000 * seconds / steps,
            "real": chars / sum(p for _, p in timed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128,
                        help="positions per window, [CLS] and [SEP] included")
    parser.add_argument("--cner-precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--quantum", type=float, default=0.5,
                        help="seconds a run computes before the CPU may go to another")
    add_variants_option(parser, VARIANTS)
    args = parser.parse_args(argv)
    variants = chosen_variants(parser, args, VARIANTS)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if "trainer" in variants or "tuned" in variants:
        try:
            import accelerate  # noqa: F401
        except ImportError:
            parser.error("Hugging Face Trainer needs accelerate: pip install 'accelerate>=1.1.0'")

    import torch

    data = prepare_data(args)
    note, examples, vocab, windows = (data[k] for k in ("note", "examples", "vocab", "windows"))
    tags, bert_config, precision = data["tags"], data["bert_config"], data["precision"]
    log(f"{note}: first {len(examples)} sentences -> {len(windows)} windows of <= {args.max_length} "
        f"positions, {sum(len(l) for _, l in windows):,} characters; vocab {len(vocab)}, "
        f"tags {len(tags)}")
    log(f"size {args.size}: hidden {bert_config.hidden_size}, layers "
        f"{bert_config.num_hidden_layers}, heads {bert_config.num_attention_heads}, intermediate "
        f"{bert_config.intermediate_size}, vocab {bert_config.vocab_size}; batch {args.batch_size}, "
        f"{args.warmup} warm-up + {args.steps} timed steps, {args.rounds} rounds; cner precision "
        f"{precision}; torch threads {torch.get_num_threads()}")

    results: dict[str, list[dict]] = {v: [] for v in variants}
    busy: dict[str, float] = {}
    for r in range(args.rounds):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="cner-train-bench-") as tmp:
            # fresh processes every round: every run starts from a new model
            jobs = {v: (setup_variant, dict(variant=v, args=args, out_dir=str(Path(tmp) / v)))
                    for v in variants}
            with ProcessInterleaver(jobs, quantum=args.quantum) as interleaver:
                # round 1: equal turns; later rounds: turns in proportion to the last round's
                # times, so that the runs advance together
                busy, _ = interleaver.run_round(weights=busy or None)
                for v in variants:
                    stamps, forwards = interleaver.result(v)
                    res = measure(stamps, forwards, args.warmup, args.steps,
                                  functools.partial(interleaver.busy_between, v))
                    results[v].append(res)
                    log(f"round {r + 1}/{args.rounds} {v:8s} {res['chars_s']:>10,.0f} chars/s  "
                        f"{res['ms_step']:7.1f} ms/step  {100 * res['real']:5.1f}% real positions")
        log(f"round {r + 1}/{args.rounds} took {time.perf_counter() - started:.1f} s")

    med = {v: median([x["chars_s"] for x in results[v]]) for v in variants}
    rows = []
    for v in variants:
        runs = results[v]
        ratio, target, verdict = "", "", ""
        if v != "cner" and "cner" in med:
            got = med["cner"] / med[v]
            ratio = f"{got:.2f}x"
            target = f">= {TARGETS[v]:.1f}x"
            verdict = "PASS" if got >= TARGETS[v] else "MISS"
        rows.append([LABELS[v], f"{med[v]:,.0f}",
                     " / ".join(f"{x['chars_s']:,.0f}" for x in runs),
                     f"{median([x['ms_step'] for x in runs]):.0f}",
                     f"{100 * median([x['real'] for x in runs]):.0f}%", ratio, target, verdict])
    print(f"train_speed --size {args.size}: {note}; {len(windows)} windows; batch "
          f"{args.batch_size}, max_length {args.max_length}, {args.warmup} warm-up + "
          f"{args.steps} timed steps; {args.rounds} rounds, each run in its own process, "
          f"interleaved (quantum {args.quantum} s); cner precision {precision}")
    print(machine_line())
    print(table(["variant", "chars/s (median)", "per round", "ms/step", "real/positions",
                 "cner / this", "target", "result"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
