"""Annotation on batch shapes oneDNN has not seen: the packed bf16 linears with their rows padded
to a multiple of ``ROW_BUCKET`` (cner's default) against unpadded rows.

Why: oneDNN builds a kernel per input shape of a packed linear, and a tagger's batch shapes
(rows = batch x padded length) rarely repeat on real traffic (a server's batches, a stream of
new documents). The other annotation benchmarks run the same texts every round, so after the
first round every shape is cached and this cost never shows.

What: one process, the ``--size`` shape with random weights over the MSRA vocabulary, bf16 with
packed linears (`Tagger.load(..., precision="bf16")`), ``--threads`` torch threads. MSRA test
sentences are cut into ``--rounds`` disjoint slices of ``--texts``; in each round both variants
annotate the round's slice in ``Tagger.pipe`` calls of ``--chunk`` texts (as a server with 32
one-sentence clients runs them), taking turns, so each variant meets shapes it has not seen
(row padding on: only the first round's row counts are new). Also, in each round, the padded
variant's second pass over the same slice (every shape seen): the ceiling for this path.
chars/s per round; the table shows the medians.

    python benchmarks/unseen_shapes.py --size small --rounds 5
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import corpus_path, log, machine_line, median, read_texts, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=500, help="texts per round and variant")
    parser.add_argument("--chunk", type=int, default=32, help="texts per Tagger.pipe call")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from cner import Tagger
    from cner.runtime import packing
    from cner.runtime.devices import cpu_has_bf16
    from serve_speed import write_model

    if not cpu_has_bf16():
        raise SystemExit("this CPU has no bf16: the packed bf16 path does not run here")
    torch.set_num_threads(args.threads)
    path, note = corpus_path("test")
    texts = read_texts(path, None)
    needed = args.rounds * 2 * args.texts
    if len(texts) < needed:
        raise SystemExit(f"{note}: {len(texts)} texts, {needed} needed; lower --texts/--rounds")
    with tempfile.TemporaryDirectory() as tmp:
        tagger = Tagger.load(write_model(args.size, 256, 32, Path(tmp)), precision="bf16")
        bucket = packing.ROW_BUCKET

        def run(batch: list[str], rows: int) -> float:
            packing.ROW_BUCKET = rows
            started = time.perf_counter()
            for first in range(0, len(batch), args.chunk):
                list(tagger.pipe(batch[first:first + args.chunk]))
            return sum(map(len, batch)) / (time.perf_counter() - started)

        run(texts[-64:], bucket)  # warm-up: untimed
        results: dict[str, list[float]] = {"rows as they come": [], f"rows padded to {bucket}": [],
                                           f"rows padded to {bucket}, shapes seen": []}
        for r in range(args.rounds):
            plain = texts[2 * r * args.texts:(2 * r + 1) * args.texts]
            padded = texts[(2 * r + 1) * args.texts:(2 * r + 2) * args.texts]
            order = [("rows as they come", plain, 1), (f"rows padded to {bucket}", padded, bucket)]
            for name, batch, rows in order if r % 2 == 0 else order[::-1]:
                results[name].append(run(batch, rows))
            results[f"rows padded to {bucket}, shapes seen"].append(run(padded, bucket))
            log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()))
        packing.ROW_BUCKET = bucket
    base = median(results["rows as they come"])
    print(machine_line())
    print(f"{args.size} shape, bf16 packed linears, {args.threads} thread(s), {args.chunk} texts a "
          f"call, {args.texts} unseen {note.split(' (')[0]} sentences a round, {args.rounds} rounds")
    print(table(["variant", "chars/s (median)", "x rows as they come"],
                [[k, f"{median(v):,.0f}", f"{median(v) / base:.2f}"] for k, v in results.items()]))


if __name__ == "__main__":
    main()
