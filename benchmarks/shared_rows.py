"""Windows sharing model rows against windows padded alone: `Tagger.pipe` chars/s and the
positions the encoder computes, on MSRA test sentences.

The model: the ``--size`` shape with random weights over the MSRA vocabulary (as
`serve_speed.py` writes it), at ``--precision``. Variants: each ``--calls`` size (texts per
`Tagger.pipe` call: 32 is what a server batching 32 one-sentence clients runs; the whole
list is `cner annotate`'s case) in each layout. Every variant runs in its own process
(`process_interleaver`: loaded and warmed up untimed, then one pass over the texts per round,
the processes taking turns on the CPU every 0.2 s, so each is timed as if alone over the same
stretch of time; the machine's speed drifts by tens of percent within seconds here). The
table: the median chars/s of the rounds; the positions the encoder computes per real one
(``[CLS]`` and ``[SEP]`` of each window count as real, padding does not); and how many texts
get other entities than padded (fp32: none; bf16: rounding in other matrix shapes).

    python benchmarks/shared_rows.py --size small --texts 1000 --calls 32,1000 --rounds 5
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import corpus_path, log, machine_line, median, read_texts, table


def count_positions(engine) -> collections.Counter:
    """Wrap the engine's two emission calls to count the positions they compute."""
    counts: collections.Counter = collections.Counter()
    for name in ("emissions", "shared_row_emissions"):
        original = getattr(engine, name)

        def counted(inputs, original=original):
            counts["positions"] += inputs["input_ids"].numel()
            return original(inputs)
        setattr(engine, name, counted)
    return counts


def setup_variant(model_dir: str, precision: str, threads: int | None, texts: list[str],
                  per_call: int, shared: bool):
    """Process job: ``Tagger.pipe`` over ``texts``, ``per_call`` a call, in one layout."""
    import torch

    from cner.inference.tagger import Tagger

    if threads:
        torch.set_num_threads(threads)
    tagger = Tagger.load(model_dir, precision=precision)
    if not tagger.engine.shares_rows:
        raise SystemExit("this engine does not share rows (not a BERT-type encoder?)")
    tagger.engine.shares_rows = shared
    counts = count_positions(tagger.engine)

    def run(stop_requested) -> list:
        found = []
        for first in range(0, len(texts), per_call):
            found += [[(e.start, e.end, e.label) for e in doc]
                      for doc in tagger.pipe(texts[first:first + per_call])]
        return found
    run(None)  # warm-up; counts the positions of one pass
    positions = counts["positions"]
    return {"positions": positions, "precision": tagger.precision}, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--texts", type=int, default=1000, help="first N MSRA test sentences")
    parser.add_argument("--calls", default="32,1000", help="texts per Tagger.pipe call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)

    from process_interleaver import ProcessInterleaver
    from serve_speed import write_model

    from cner.encoding.windows import plan_windows

    test_path, note = corpus_path("test")
    texts = [t for t in read_texts(test_path, args.texts) if t]
    n_chars = sum(map(len, texts))
    model_dir = write_model(args.size, 128, 32, Path(tempfile.mkdtemp(prefix="cner-rows-")))
    real = sum(end - start + 2 for t in texts  # every window with its [CLS] and [SEP]
               for start, end in plan_windows(len(t), max_chars=126, overlap=32))
    variants = [(int(c), shared) for c in args.calls.split(",") for shared in (True, False)]
    name = {v: f"{v[0]} {'shared' if v[1] else 'padded'}" for v in variants}
    jobs = {name[v]: (setup_variant, dict(model_dir=str(model_dir), precision=args.precision,
                                          threads=args.threads, texts=texts, per_call=v[0],
                                          shared=v[1])) for v in variants}
    rates = collections.defaultdict(list)
    with ProcessInterleaver(jobs) as interleaver:
        weights = None
        for round_ in range(1, args.rounds + 1):
            busy, _ = interleaver.run_round(weights=weights)
            weights = busy  # so that the variants finish the next round together
            for v in variants:
                rates[v].append(n_chars / busy[name[v]])
            log(f"round {round_}: " + ", ".join(f"{name[v]} {rates[v][-1]:,.0f}"
                                               for v in variants))
        info = interleaver.info
        found = {v: interleaver.result(name[v]) for v in variants}
    rows = []
    for per_call, shared in variants:
        rate, padded = median(rates[per_call, shared]), median(rates[per_call, False])
        differ = sum(a != b for a, b in zip(found[per_call, True], found[per_call, False]))
        rows.append((per_call, "shared rows" if shared else "padded", f"{rate:,.0f}",
                     f"{rate / padded:.2f}",
                     f"{info[name[per_call, shared]]['positions'] / real:.2f}",
                     differ if shared else "-"))
    print(machine_line())
    print(f"model: {args.size}, random weights, precision "
          f"{info[name[variants[0]]]['precision']}, torch threads {args.threads or 'default'}; "
          f"{len(texts)} sentences of {note if 'NOTE' in note else test_path.name}; "
          f"{args.rounds} rounds, each variant in its own process, taking turns; median chars/s")
    print(table(["texts a call", "layout", "chars/s", "x padded", "positions / real",
                 "texts with other entities"], rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
