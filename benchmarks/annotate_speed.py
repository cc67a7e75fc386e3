"""Annotation throughput: the engine of ``cner annotate`` against Hugging Face's pipeline.

Variants, on the same texts (the first ``--texts`` MSRA test sentences) and the same weights:

  cner bf16 / fp32   ``Tagger.load(model_dir, precision=...).pipe(texts)``: the model is built
                     as ``TokenTagger(scratch_encoder(...))`` with random weights, written with
                     ``save_model_dir`` and read back with ``Tagger.load`` (the real loading
                     path); windows of ``max_length`` 128 positions, overlap 32, batch 64
  cner compiled      the same, bf16, ``Tagger.load(..., compile=True)`` (what ``cner annotate``
                     runs on large inputs, or with ``--compile``): TorchInductor with frozen
                     weights; the compile time is printed and left out of chars/s
  cner annotate      end to end after loading: the texts written one per line to a .txt file,
                     ``annotate_files`` (the function behind ``cner annotate``) reads it, tags
                     it with the compiled tagger and writes the CSV atomically with its resume
                     state (fsync per chunk); offsets are checked on the CSV as written
  HF pipeline        ``pipeline("token-classification", model=BertForTokenClassification(same
                     config, same encoder and classifier weights), tokenizer=BertTokenizerFast
                     (same vocab.txt, model_max_length 512 as bert-base-chinese ships),
                     aggregation_strategy="simple")`` at its default batch size (1), fp32

Timing. The machine's speed drifts by up to ~3x within seconds, so the variants are not run
one after the other: each runs in its own process (built and warmed up once, untimed), and in
each of ``--rounds`` rounds they take turns on the CPU, one at a time, ``--quantum`` seconds
each (`process_interleaver.ProcessInterleaver`: SIGSTOP/SIGCONT); from the second round on the
turns are weighted by the previous round's times, so that the jobs advance in step and finish
together. A variant's time is the sum of the spans in which it ran (tokenising, batching,
decoding and merging included), so each is timed as if alone, in the main thread of its own
process as a user's ``cner annotate`` runs, over the same stretch of wall time. chars/s =
characters of the input texts / that time; the table shows the median of the rounds, after
two untimed warm-up passes over 64 texts.

Compute ceiling: one more interleaved process per precision in use multiplies 2048x2048
matrices in that precision (for ``--probe-share`` of a variant's time), giving the machine's
bf16 or fp32 FLOP/s over the same stretch of time; each variant is held to the ceiling of its
own precision (a bf16 probe on a CPU without bf16 measures emulation, not what fp32 reaches).
The bf16 variants are skipped, with a note, on a CPU without bf16. Then

    ceiling chars/s = matmul FLOP/s / F,
    F = layers * (2 * (4*H^2 + 2*H*I) + 4*H*S)        FLOPs per character

where H is the hidden size, I the intermediate size and S the character-weighted mean window
length (positions, [CLS]/[SEP] included) of cner's windows over these texts: 2 FLOPs per
multiply-add of the Q/K/V/output projections (4*H^2) and the feed-forward (2*H*I) per
position, plus Q.K^T and attention.V (2*H*S multiply-adds). Embeddings, layer norms, softmax,
GELU, the classifier, the CRF and the extra [CLS]/[SEP]/overlap positions are left out, so the
ceiling is the useful matmul work only. The "% of ceiling" target uses each round's own
ceiling.

    python benchmarks/annotate_speed.py --size small
"""
from __future__ import annotations

import argparse
import copy
import csv
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import (SIZES, add_variants_option, build_vocab, chosen_variants,
                    corpus_path, log, machine_line, median, model_config, read_texts, table)
from process_interleaver import ProcessInterleaver

VARIANTS = ("cner_annotate", "cner_compiled", "cner_bf16", "cner_fp32", "pipeline")
BF16 = ("cner_annotate", "cner_compiled", "cner_bf16")
LABELS = {"cner_annotate": "cner annotate texts.txt -o out.csv, bf16, compiled",
          "cner_compiled": "cner Tagger.pipe, bf16, compile=True",
          "cner_bf16": "cner Tagger.pipe, bf16", "cner_fp32": "cner Tagger.pipe, fp32",
          "pipeline": "HF pipeline (simple aggregation, batch 1, fp32)"}
PROBES = {"bf16": "matmul_bf16", "fp32": "matmul_fp32"}  # one compute ceiling per precision
PIPELINE_TARGET = {"small": 5.0, "base": 3.0}
CEILING_TARGET = {"base": 0.75}


def precision_of(variant: str) -> str:
    return "fp32" if variant == "cner_fp32" else "bf16"


def setup_probe(dtype: str, n: int = 2048):
    """Process job: 2048x2048 matmuls in ``dtype`` (bf16/fp32) until told to stop; returns
    the FLOPs done. Each precision gets its own probe: a bf16 probe on a CPU without bf16
    measures emulation and says nothing about what an fp32 engine could reach."""
    import torch

    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n).to(kind)
    b = torch.randn(n, n).to(kind)
    for _ in range(2):
        a @ b

    def run(stop_requested) -> float:
        flops = 0.0
        while not stop_requested():
            a @ b
            flops += 2 * n ** 3
        return flops
    return {}, run


def _warm_tagger(model_dir: str, precision: str, batch_size: int, compile: bool,
                 texts: list[str]):
    """``(Tagger, load seconds)``, warmed up on the first 64 texts twice (oneDNN primitives,
    allocator, compiled shape guards)."""
    from cner.inference.tagger import Tagger

    started = time.perf_counter()
    tagger = Tagger.load(model_dir, precision=precision, batch_size=batch_size, compile=compile)
    load_s = time.perf_counter() - started
    for _ in range(2):
        list(tagger.pipe(texts[:64]))
    return tagger, load_s


def setup_cner(model_dir: str, precision: str, batch_size: int, compile: bool, texts: list[str]):
    """Process job: ``Tagger.load(...).pipe(texts)``, loaded and warmed up untimed."""
    tagger, load_s = _warm_tagger(model_dir, precision, batch_size, compile, texts)
    return {"load_s": load_s}, lambda stop_requested: list(tagger.pipe(texts))


def setup_annotate(model_dir: str, batch_size: int, texts: list[str], workdir: str):
    """Process job: what ``cner annotate texts.txt --model DIR -o out.csv --compile`` runs
    after loading (`annotate_files`: read the file, tag, write the CSV atomically with its
    resume state), with the compiled tagger loaded and warmed up untimed."""
    from cner.inference.annotate import annotate_files

    source, output = Path(workdir) / "texts.txt", Path(workdir) / "out.csv"
    source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    tagger, _ = _warm_tagger(model_dir, "bf16", batch_size, True, texts)

    def run(stop_requested) -> str:
        annotate_files([str(source)], tagger, output=output, progress=False)
        return str(output)
    return {}, run


def setup_pipeline(hf_dir: str, texts: list[str]):
    """Process job: the Hugging Face token-classification pipeline, simple aggregation."""
    from transformers import BertForTokenClassification, BertTokenizerFast, pipeline

    model = BertForTokenClassification.from_pretrained(hf_dir).eval()
    tokenizer = BertTokenizerFast.from_pretrained(hf_dir, do_lower_case=True,
                                                  model_max_length=512)
    nlp = pipeline("token-classification", model=model, tokenizer=tokenizer,
                   aggregation_strategy="simple")
    for _ in range(2):
        nlp(texts[:64])
    return {}, lambda stop_requested: nlp(texts)


def flops_per_char(size: str, texts: list[str], max_length: int, overlap: int) -> tuple[float, float]:
    """``(F, S)``: matmul FLOPs per character and the character-weighted mean window length."""
    from cner.encoding.windows import plan_windows

    hidden, layers, _, inter = SIZES[size]
    weighted = chars = 0
    for text in texts:
        for start, end in plan_windows(len(text), max_chars=max_length - 2,
                                       overlap=min(overlap, max_length - 3)):
            weighted += (end - start) * (end - start + 2)
            chars += end - start
    s = weighted / max(chars, 1)
    return layers * (2 * (4 * hidden ** 2 + 2 * hidden * inter) + 4 * hidden * s), s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--texts", type=int, default=300, help="first N MSRA test sentences")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="cner's batch (windows)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--vocab-sentences", type=int, default=None,
                        help="build the vocabulary from the first N training sentences (all)")
    parser.add_argument("--quantum", type=float, default=0.2,
                        help="seconds a job computes before the CPU may go to another")
    parser.add_argument("--probe-share", type=float, default=0.25,
                        help="CPU time of the matmul probe relative to each variant's")
    add_variants_option(parser, VARIANTS)
    args = parser.parse_args(argv)
    variants = chosen_variants(parser, args, VARIANTS)
    from cner.runtime.devices import cpu_has_bf16

    if not cpu_has_bf16() and (skipped := [v for v in variants if v in BF16]):
        # oneDNN's bf16 kernels fail (or are emulated) here: fp32 is the fast path
        log(f"skipping {', '.join(skipped)}: this CPU has no bf16 (fp32 is the fast path)")
        variants = [v for v in variants if v not in BF16]

    import torch
    from transformers import BertForTokenClassification
    from transformers.utils import logging as transformers_logging

    from cner.models.encoders import scratch_encoder
    from cner.models.metadata import ModelMeta
    from cner.models.modeldir import save_model_dir
    from cner.models.tagger import TokenTagger
    from cner.schemes import label_set
    from cner.training.loop import seed_everything

    test_path, note = corpus_path("test")
    train_path, _ = corpus_path("train")
    texts = [t for t in read_texts(test_path, args.texts) if t]
    vocab = build_vocab(read_texts(train_path, args.vocab_sentences), args.size)
    tags = label_set(["LOC", "ORG", "PER"], "bio")
    n_chars = sum(len(t) for t in texts)
    threads = torch.get_num_threads()

    seed_everything(42)
    model_cfg = model_config(args.size)
    model = TokenTagger(scratch_encoder(model_cfg, vocab, max_positions=max(512, args.max_length)),
                        tags, scheme="bio", head="crf", dropout=model_cfg.dropout)
    meta = ModelMeta(task="ner", labels=tags, scheme="bio", head="crf", dropout=model_cfg.dropout,
                     lowercase=vocab.lowercase, halfwidth=vocab.halfwidth,
                     max_length=args.max_length, overlap=args.overlap)
    tmp = Path(tempfile.mkdtemp(prefix="cner-annotate-bench-"))
    model_dir = save_model_dir(model, vocab, meta, tmp / "model")

    jobs = {}
    for v in variants:
        if v == "cner_annotate":
            (tmp / "annotate").mkdir()
            jobs[v] = (setup_annotate, dict(model_dir=str(model_dir), batch_size=args.batch_size,
                                            texts=texts, workdir=str(tmp / "annotate")))
        elif v.startswith("cner"):
            jobs[v] = (setup_cner, dict(model_dir=str(model_dir), batch_size=args.batch_size,
                                        precision="fp32" if v == "cner_fp32" else "bf16",
                                        compile=v == "cner_compiled", texts=texts))
    if "pipeline" in variants:
        config = copy.deepcopy(model.encoder.config)
        config.num_labels = len(tags)
        config.id2label = dict(enumerate(tags))
        config.label2id = {t: i for i, t in enumerate(tags)}
        hf_model = BertForTokenClassification(config)
        hf_model.bert.load_state_dict(model.encoder.state_dict())
        hf_model.classifier.load_state_dict(model.classifier.state_dict())
        transformers_logging.disable_progress_bar()  # its bar would go to stdout
        hf_model.save_pretrained(tmp / "hf")  # safetensors
        vocab.save(tmp / "hf" / "vocab.txt")
        jobs["pipeline"] = (setup_pipeline, dict(hf_dir=str(tmp / "hf"), texts=texts))
        del hf_model
    del model
    probes = {PROBES[p]: p for p in sorted({precision_of(v) for v in variants
                                            if v.startswith("cner")})}
    for probe, dtype in probes.items():
        jobs[probe] = (setup_probe, {"dtype": dtype})

    flops, mean_len = flops_per_char(args.size, texts, args.max_length, args.overlap)
    log(f"{note}: {len(texts)} texts, {n_chars:,} characters (longest {max(map(len, texts))}); "
        f"vocab {len(vocab)}; size {args.size} {SIZES[args.size]}; {threads} threads; "
        f"F = {flops / 1e6:.2f} MFLOP/char (mean window {mean_len:.1f} positions)")
    log(f"starting {len(jobs)} processes (load, compile, warm-up: untimed)")
    speeds: dict[str, list[float]] = {v: [] for v in variants}
    ceilings: dict[str, list[float]] = {dtype: [] for dtype in probes.values()}
    fractions: dict[str, list[float]] = {v: [] for v in variants if v.startswith("cner")}
    with ProcessInterleaver(jobs, quantum=args.quantum) as interleaver:
        compile_s = interleaver.info.get("cner_compiled", {}).get("load_s")
        if compile_s is not None:
            log(f"Tagger.load(compile=True) took {compile_s:.1f} s")
        log("warm-up done")
        busy: dict[str, float] = {}
        for r in range(args.rounds):
            started = time.perf_counter()
            if r == 0:
                weights = {probe: args.probe_share for probe in probes}
            else:  # the last round's times, so that the jobs finish together
                weights = {v: busy[v] for v in variants}
                share = args.probe_share * median(list(weights.values()))
                weights.update({probe: share for probe in probes})
            busy, summaries = interleaver.run_round(weights=weights, until_others=set(probes))
            peaks = {dtype: summaries[probe] / busy[probe] for probe, dtype in probes.items()}
            for dtype, peak in peaks.items():
                if peak <= 0:  # the probe's turn was shorter than one product
                    raise SystemExit(f"the {dtype} matmul probe finished no product in its turn; "
                                     "give it more time (--probe-share, --texts)")
                ceilings[dtype].append(peak / flops)
            for v in variants:
                speeds[v].append(n_chars / busy[v])
                log(f"round {r + 1}/{args.rounds} {v:10s} {speeds[v][-1]:>10,.0f} chars/s "
                    f"({busy[v]:.2f} s)")
            for v in fractions:
                fractions[v].append(speeds[v][-1] / ceilings[precision_of(v)][-1])
            for dtype, peak in peaks.items():
                log(f"round {r + 1}/{args.rounds} {dtype} matmul {peak / 1e9:,.0f} GFLOP/s "
                    f"-> ceiling {ceilings[dtype][-1]:,.0f} chars/s")
            log(f"round {r + 1}/{args.rounds} took {time.perf_counter() - started:.1f} s")
        outputs = {v: interleaver.result(v) for v in variants}

    med = {v: median(speeds[v]) for v in variants}
    rows = []
    for v in variants:
        ratio = f"{med[v] / med['pipeline']:.2f}x" if "pipeline" in med and v != "pipeline" else ""
        share = f"{100 * median(fractions[v]):.0f}% ({precision_of(v)})" if v in fractions else ""
        rows.append([LABELS[v], f"{med[v]:,.0f}", " / ".join(f"{s:,.0f}" for s in speeds[v]),
                     ratio, share])
    checks = []
    for v in fractions:
        name = LABELS[v].replace("cner Tagger.pipe, ", "cner ")
        if "pipeline" in med:
            need = PIPELINE_TARGET[args.size]
            got = med[v] / med["pipeline"]
            checks.append([f"{name} / pipeline", f">= {need:.0f}x", f"{got:.2f}x",
                           "PASS" if got >= need else "MISS"])
        if args.size in CEILING_TARGET:
            need = CEILING_TARGET[args.size]
            got = median(fractions[v])
            checks.append([f"{name} / compute ceiling", f">= {100 * need:.0f}%",
                           f"{100 * got:.0f}%", "PASS" if got >= need else "MISS"])

    errors = []
    if "pipeline" in outputs:
        found = [(e, text) for text, ents in zip(texts, outputs["pipeline"]) for e in ents]
        bad = [(e["word"], text[e["start"]:e["end"]]) for e, text in found
               if e["word"] != text[e["start"]:e["end"]]]
        examples = ", ".join(f"{w!r} vs {t!r}" for w, t in bad[:4])
        errors.append(f"HF pipeline: {len(bad):,} of {len(found):,} entities have word != "
                      f"text[start:end]" + (f" (e.g. word vs text: {examples})" if bad else ""))
    if "cner_annotate" in outputs:  # the CSV as written: doc_id is the 1-based line
        with open(outputs["cner_annotate"], encoding="utf-8", newline="") as handle:
            written = list(csv.DictReader(handle))
        outputs["cner_annotate"] = [[] for _ in texts]
        for row in written:
            outputs["cner_annotate"][int(row["doc_id"]) - 1].append(argparse.Namespace(
                start=int(row["start"]), end=int(row["end"]), text=row["text"]))
    for v in VARIANTS[:-1]:
        if v in outputs:
            found = [(e, text) for text, ents in zip(texts, outputs[v]) for e in ents]
            bad = sum(e.text != text[e.start:e.end] for e, text in found)
            errors.append(f"{LABELS[v]}: {bad:,} of {len(found):,} entities have text != "
                          f"text[start:end]")

    print(f"annotate_speed --size {args.size}: {note}; {len(texts)} texts, {n_chars:,} "
          f"characters; {args.rounds} rounds, variants and matmul probe each in its own "
          f"process, interleaved (quantum {args.quantum} s)")
    print(machine_line())
    for dtype, values in ceilings.items():
        print(f"compute ceiling ({dtype}): {dtype} 2048x2048 matmul "
              f"{median(values) * flops / 1e9:,.0f} GFLOP/s (median of rounds, {threads} threads, "
              f"interleaved with the variants) / F {flops / 1e6:.2f} MFLOP/char "
              f"(S = {mean_len:.1f}) = {median(values):,.0f} chars/s")
    print(table(["variant", "chars/s (median)", "per round", "vs pipeline", "% of ceiling"], rows))
    if compile_s is not None:
        print(f"compile=True: Tagger.load took {compile_s:.1f} s (TorchInductor, once per "
              "process; not in chars/s)")
    if checks:
        print()
        print(table(["target", "needed", "measured", "result"], checks))
    print()
    for line in errors:
        print(line)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
