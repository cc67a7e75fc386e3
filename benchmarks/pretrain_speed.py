"""Pre-training throughput: cner's masked-LM pre-training against Hugging Face ``Trainer``.

Variants, all on the same BertConfig (that of ``configs/pretrain-small.yaml``: hidden 256,
4 layers, 4 heads, intermediate 1024, built by `cner.tasks.pretrain.build_model`), the same
packed sequences (the same token ids), the same batch size and the same number of optimizer
steps, with whole-word masking on jieba words and no sentence-pair objective:

  (a) cner      what ``cner pretrain`` runs: `MaskedLanguageModel` on
                ``cner.training.train_loop`` (precision ``auto``: bf16 on a CPU with bf16
                support), batches built and masked on demand by ``MlmBatches`` / ``Masker``
  (b) trainer   ``Trainer`` + ``BertForMaskedLM`` at its defaults (fp32), masked by
                ``DataCollatorForLanguageModeling(whole_word_mask=True)``
  (c) tuned     the same with ``bf16=True`` (and ``use_cpu=True``, which transformers 5.x
                needs for bf16 on a CPU-only machine); skipped on a CPU without bf16

The text is the first lines of ``runs/pretrain.txt`` (the text ``cner pretrain`` is being run
on), else of the MSRA training sentences, else of the shipped sample corpus (repeated), just
enough for (warm-up + timed steps) x batch sequences; the vocabulary is the one ``cner
pretrain`` builds from all of that source (vocab_size 8000, min count 2), since its size sets
the cost of the Trainer's output layer. cner packs the text with ``pack_documents`` (one
document: every sequence is full, ``--max-length`` positions, so neither side pads) and each
run is exactly one epoch over those sequences. The Trainer gets the same ids, with an
``offset_mapping`` that makes each jieba word a run of contiguous offsets and puts a gap
between words, which is how the 5.x collator finds words, and a ``special_tokens_mask`` of
the ids cner never masks.

The masking differs in ways that do not change the work: the collator selects each word
with probability 0.15 and shows ``[MASK]`` at all of them (it disables random replacement
under whole-word masking); cner fills a budget of 15% of the positions with whole words and
shows 80% ``[MASK]``, 10% a random character, 10% the character. Both select ~15% of the
positions (printed per variant). What differs in the work: ``BertForMaskedLM`` scores every
position against the vocabulary, cner's head only the selected ones.

Timing is `train_speed`'s (see its docstring and benchmarks/README.md): every run is a fresh
process per round, the runs take turns on the CPU ``--quantum`` seconds each, and a run's
time for its ``--steps`` steps after ``--warmup`` warm-up steps is the CPU turns it had
between the optimizer-step hooks that bound them. Reading and segmenting the text, packing,
model construction and warm-up are untimed. chars/s = real characters (positions other than
[CLS]/[SEP]/padding, counted by a forward pre-hook) / time; the table shows the median of
``--rounds`` rounds.

Needs ``accelerate`` (a requirement of ``Trainer``, not of cner): ``pip install accelerate``.

    python benchmarks/pretrain_speed.py
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import sys
import tempfile
import time
import warnings
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import (ROOT, add_variants_option, chosen_variants, corpus_path, log, machine_line,
                    median, read_texts, table)
from process_interleaver import ProcessInterleaver
from train_speed import count_forwards, measure

# Expected: the 5.x collator turns random replacement off under whole-word masking.
warnings.filterwarnings("ignore", message=".*Random token replacement is not supported.*")

VARIANTS = ("cner", "trainer", "tuned")
LABELS = {"cner": "(a) cner pretrain (train_loop), precision auto",
          "trainer": "(b) HF Trainer + BertForMaskedLM, defaults (fp32)",
          "tuned": "(c) HF Trainer + BertForMaskedLM, bf16"}
TARGETS = {"trainer": 1.5, "tuned": 1.0}
CONFIG = ROOT / "configs" / "pretrain-small.yaml"
OWN_TEXT = ROOT / "runs" / "pretrain.txt"


def write_text(args, tmp: Path) -> tuple[str, Path, Path]:
    """``(note, text, vocab)``: the benchmark's text, one line per line, and the vocabulary
    ``cner pretrain`` builds from the whole source (its size decides the cost of the
    Trainer's output layer, which scores every position). The text is just over (warm-up +
    steps) x batch full sequences of characters, so that every sequence the runs train on is
    full and the text does not end inside one of them."""
    from cner.tasks.pretrain import _run_vocab

    needed = (args.warmup + args.steps) * args.batch_size * (args.max_length - 2) + 1
    if OWN_TEXT.is_file():
        note, source = str(OWN_TEXT.relative_to(ROOT)), OWN_TEXT
        with open(OWN_TEXT, encoding="utf-8") as handle:
            lines, chars = _first_lines((line.strip() for line in handle), needed)
    else:
        path, note = corpus_path("train")
        every = read_texts(path, None)
        source = tmp / "source.txt"
        source.write_text("\n".join(every) + "\n", encoding="utf-8")
        lines, chars = _first_lines(every, needed)
    note = f"{note}: first {len(lines):,} lines, {chars:,} characters"
    if chars < needed:  # the sample corpus is too small: repeat it
        lines *= needed // chars + 1
        note += f", repeated {needed // chars + 1} times"
    text = tmp / "pretrain.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = _run_vocab(pretrain_config(args), tmp, [str(source)], resume=False)
    vocab.save(tmp / "vocab.txt")
    return f"{note}; vocabulary {len(vocab):,} (built from all of it)", text, tmp / "vocab.txt"


def _first_lines(source, needed: int) -> tuple[list[str], int]:
    lines, chars = [], 0
    for line in source:
        if line:
            lines.append(line)
            chars += len(line)
        if chars >= needed:
            break
    return lines, chars


def pretrain_config(args, vocab: Path | None = None):
    """``configs/pretrain-small.yaml`` with the benchmark's shape and length; no pair
    objective (the Trainer variants have none) and no time budget (it would bend the
    learning-rate curve to the clock); ``vocab``: ``pretrain.vocab``."""
    from cner.config.loading import load_config

    return load_config(CONFIG, [*([f"pretrain.vocab={vocab}"] if vocab else []),
        "pretrain.pair_objective=none", f"data.max_length={args.max_length}",
        f"training.batch_size={args.batch_size}", f"training.max_steps={args.warmup + args.steps}",
        "training.max_minutes=null", "training.precision=auto", "training.seed=42"])


def prepare_data(args, text: Path, vocab: Path, run_dir: Path) -> dict:
    """What ``cner pretrain`` builds before it trains: config, vocabulary (``pretrain.vocab``,
    read by `_run_vocab`) and the packed sequences (jieba word starts included)."""
    from cner.data.text import read_documents
    from cner.encoding.packing import pack_documents
    from cner.tasks.pretrain import _run_vocab

    cfg = pretrain_config(args, vocab)
    vocab = _run_vocab(cfg, run_dir, [str(text)], resume=False)
    packed = pack_documents(read_documents([text]), vocab, length=args.max_length - 2,
                            words=cfg.pretrain.masking != "char")
    needed = (args.warmup + args.steps) * args.batch_size
    lengths = packed.lengths()[:needed]
    if len(lengths) < needed or (lengths != args.max_length - 2).any():
        raise RuntimeError(f"expected {needed} full sequences, packed {len(packed)}")
    return {"cfg": cfg, "vocab": vocab, "packed": packed, "sequences": list(range(needed))}


def prepare_cner(data: dict, args, run_dir: Path):
    """``(job, model)``: the objects `cner.tasks.pretrain.pretrain` trains with, minus the
    held-out slice and its evaluation, and a callable running ``train_loop`` on them."""
    from cner.encoding.masking import Masker
    from cner.encoding.packing import BatchBuilder, MlmBatches, train_plan
    from cner.tasks.pretrain import build_model, masking_spec
    from cner.training.loop import train_loop

    cfg, vocab, packed = data["cfg"], data["vocab"], data["packed"]
    model = build_model(cfg, vocab)  # seeded
    spec = masking_spec(cfg)
    builder = BatchBuilder(packed, vocab, Masker(spec, vocab), cfg.pretrain.pair_objective,
                           use_words=spec.strategy != "char")
    seed = cfg.training.seed

    @functools.lru_cache(maxsize=2)
    def plan(epoch: int) -> list[list[int]]:
        return train_plan(packed, data["sequences"], batch_size=cfg.training.batch_size,
                          seed=seed, epoch=epoch)

    def epoch_batches(epoch: int) -> MlmBatches:  # batches are built and masked on demand
        return MlmBatches(builder, plan(epoch), seed=seed, epoch=epoch)

    job = functools.partial(train_loop, model, cfg=cfg.training, run_dir=run_dir,
                            epoch_batches=epoch_batches, evaluate=None,
                            save_best=lambda m, metrics: None, score_key="mlm_loss",
                            higher_is_better=False, progress=False)
    return job, model


def hf_features(data: dict) -> list[dict]:
    """The same sequences for the Trainer: ``[CLS] chars [SEP]`` ids, and offsets in which
    character ``i`` of a sequence holding ``w`` word starts up to it spans ``(i + w, i + w +
    1)``: contiguous within a jieba word, a gap of one before every word."""
    import numpy as np

    from cner.encoding.masking import special_ids
    from cner.encoding.packing import WORD

    vocab, packed = data["vocab"], data["packed"]
    never = special_ids(vocab)
    features = []
    for k in data["sequences"]:
        ids, flags = packed.sequence(k)
        start = np.arange(len(ids)) + np.cumsum((flags & WORD).astype(np.int64))
        seq = [vocab.cls_id, *ids.tolist(), vocab.sep_id]
        offsets = [(0, 0), *zip(start.tolist(), (start + 1).tolist()), (0, 0)]
        features.append({"input_ids": seq, "attention_mask": [1] * len(seq),
                         "special_tokens_mask": np.isin(seq, never).astype(int).tolist(),
                         "offset_mapping": offsets})
    return features


def prepare_trainer(data: dict, args, out_dir: Path, *, tuned: bool):
    """``(job, model)``: ``Trainer.train`` on ``BertForMaskedLM`` with the config of cner's
    scratch encoder, the same sequences and the whole-word-masking collator."""
    from transformers import (AutoTokenizer, BertForMaskedLM, DataCollatorForLanguageModeling,
                              Trainer, TrainingArguments, set_seed)

    from cner.models.encoderdir import write_tokenizer
    from cner.tasks.pretrain import build_model

    vocab = data["vocab"]
    tokenizer_dir = out_dir / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    write_tokenizer(vocab, args.max_length, tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if (tokenizer.mask_token_id, tokenizer.pad_token_id) != (vocab.mask_id, vocab.pad_id):
        raise RuntimeError("the tokenizer's [MASK]/[PAD] ids are not the vocabulary's")
    config = copy.deepcopy(build_model(data["cfg"], vocab).encoder.config)
    set_seed(42)
    model = BertForMaskedLM(config)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, whole_word_mask=True,
                                               mlm_probability=0.15)
    extra = {"bf16": True, "use_cpu": True} if tuned else {}
    training_args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps, report_to="none", save_strategy="no",
        disable_tqdm=True, seed=42,
        # Trainer drops the features its model's forward does not take, and the collator
        # needs offset_mapping and special_tokens_mask to find the words
        remove_unused_columns=False, **extra)
    trainer = Trainer(model=model, args=training_args, train_dataset=hf_features(data),
                      data_collator=collator)
    return trainer.train, model


def real_chars(kw) -> tuple[int, int]:
    """``(real characters, positions)`` of one forward: every row is [CLS] chars [SEP]."""
    ids = kw["input_ids"]
    return int(kw["attention_mask"].sum()) - 2 * ids.shape[0], ids.numel()


def setup_variant(variant: str, args: argparse.Namespace, text: str, vocab: str,
                  out_dir: str):
    """Process job: one variant's run, built untimed; its run returns the ``perf_counter``
    readings at its start and after every optimizer step, its forwards' ``(real, positions)``
    and the positions selected for the loss in each forward."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from cner.runtime.devices import resolve_device, resolve_precision

    run_dir = Path(out_dir)
    data = prepare_data(args, Path(text), Path(vocab), run_dir)
    if variant == "cner":
        job, model = prepare_cner(data, args, run_dir)
    else:
        job, model = prepare_trainer(data, args, run_dir, tuned=variant == "tuned")
    forwards = count_forwards(model, real_chars)
    selected = count_forwards(model, lambda kw: int((kw["labels"] != -100).sum()))
    stamps: list[float] = []
    register_optimizer_step_post_hook(lambda opt, a, kw: stamps.append(time.perf_counter()))
    config = model.config if variant != "cner" else model.encoder.config
    info = {"sequences": len(data["sequences"]), "vocab": len(data["vocab"]),
            "shape": (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                      config.intermediate_size, config.vocab_size),
            "precision": resolve_precision(data["cfg"].training.precision, resolve_device("auto")),
            "threads": torch.get_num_threads()}

    def run(stop_requested):
        for seen in (stamps, forwards, selected):
            seen.clear()
        stamps.append(time.perf_counter())
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its final log
            job()
        return stamps[:], forwards[:], selected[:]
    return info, run


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128,
                        help="positions per packed sequence, [CLS] and [SEP] included")
    parser.add_argument("--quantum", type=float, default=0.5,
                        help="seconds a run computes before the CPU may go to another")
    add_variants_option(parser, VARIANTS)
    args = parser.parse_args(argv)
    variants = chosen_variants(parser, args, VARIANTS)
    if args.warmup < 1 or args.steps < 1 or args.max_length < 4:
        parser.error("--warmup and --steps must be at least 1, --max-length at least 4")
    if "trainer" in variants or "tuned" in variants:
        try:
            import accelerate  # noqa: F401
        except ImportError:
            parser.error("Hugging Face Trainer needs accelerate: pip install 'accelerate>=1.1.0'")
    if "tuned" in variants:
        from cner.runtime.devices import cpu_has_bf16

        if not cpu_has_bf16():
            log("skipping (c) tuned: this CPU has no bf16 support (oneDNN), so bf16 would only "
                "be emulated")
            variants.remove("tuned")
            if not variants:
                parser.error("no variant left to run")
    return args, variants


def run_rounds(args, variants: list[str], text: Path, vocab: Path
               ) -> tuple[dict[str, list[dict]], dict]:
    """Every round: fresh processes, interleaved; returns each variant's measurements and the
    first round's set-up info."""
    results: dict[str, list[dict]] = {v: [] for v in variants}
    busy: dict[str, float] = {}
    info: dict = {}
    for r in range(args.rounds):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="cner-pretrain-bench-") as tmp:
            jobs = {v: (setup_variant, dict(variant=v, args=args, text=str(text),
                                            vocab=str(vocab), out_dir=str(Path(tmp) / v)))
                    for v in variants}
            with ProcessInterleaver(jobs, quantum=args.quantum) as interleaver:
                info = info or interleaver.info
                if r == 0:
                    first = info[variants[0]]
                    log(f"{first['sequences']} sequences of {args.max_length} positions, vocab "
                        f"{first['vocab']}; hidden/layers/heads/intermediate/vocab "
                        f"{first['shape']}; torch threads {first['threads']}")
                # from round 2 on, turns in proportion to the last round's times
                busy, _ = interleaver.run_round(weights=busy or None)
                for v in variants:
                    stamps, forwards, selected = interleaver.result(v)
                    res = measure(stamps, forwards, args.warmup, args.steps,
                                  functools.partial(interleaver.busy_between, v))
                    # over every step, warm-up included: more positions, a steadier share
                    res["selected"] = sum(selected) / sum(c for c, _ in forwards)
                    results[v].append(res)
                    log(f"round {r + 1}/{args.rounds} {v:8s} {res['chars_s']:>10,.0f} chars/s  "
                        f"{res['ms_step']:7.1f} ms/step  {100 * res['selected']:5.1f}% of real "
                        f"positions selected")
        log(f"round {r + 1}/{args.rounds} took {time.perf_counter() - started:.1f} s")
    return results, info


def main(argv: list[str] | None = None) -> int:
    args, variants = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cner-pretrain-text-") as tmp:
        note, text, vocab = write_text(args, Path(tmp))
        log(note)
        results, info = run_rounds(args, variants, text, vocab)

    med = {v: median([x["chars_s"] for x in results[v]]) for v in variants}
    rows = []
    for v in variants:
        runs = results[v]
        ratio, target, verdict = "", "", ""
        if v != "cner" and "cner" in med:
            got = med["cner"] / med[v]
            ratio, target = f"{got:.2f}x", f">= {TARGETS[v]:.1f}x"
            verdict = "PASS" if got >= TARGETS[v] else "MISS"
        rows.append([LABELS[v], f"{med[v]:,.0f}",
                     " / ".join(f"{x['chars_s']:,.0f}" for x in runs),
                     f"{median([x['ms_step'] for x in runs]):.0f}",
                     f"{100 * median([x['selected'] for x in runs]):.1f}%",
                     ratio, target, verdict])
    precision = info.get("cner", next(iter(info.values())))["precision"]
    print(f"pretrain_speed: {note}; {info[variants[0]]['sequences']} packed sequences; batch "
          f"{args.batch_size}, max_length {args.max_length}, whole-word masking, "
          f"{args.warmup} warm-up + {args.steps} timed steps; {args.rounds} rounds, each run in "
          f"its own process, interleaved (quantum {args.quantum} s)")
    print(f"{machine_line()}; cner precision {precision}")
    print(table(["variant", "chars/s (median)", "per round", "ms/step", "selected/real",
                 "cner / this", "target", "result"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
