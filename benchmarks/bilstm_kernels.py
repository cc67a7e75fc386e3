"""The BiLSTM's two inference paths on the CPU: packed sequences (``nn.LSTM`` on a
``PackedSequence``, cner's training path) against unpacked (`BiLSTMEncoder.unpacked`: each
direction one ``torch.lstm`` call, the backward one on rows reversed within their length,
which lets the CPU take oneDNN's RNN kernel), in fp32 and, where the CPU has it, bf16.

The batches: ``--batches`` batches of ``--batch-size`` windows whose lengths are those of
consecutive MSRA test sentences sorted by length (as the predictor's length-sorted batches
are; the shipped sample when ../shared is missing), with random embeddings of the
msra-small-cpu shape (input ``--input-size``, hidden 2 x ``--hidden``). Both paths run in
this process, alternating batch sets ``--rounds`` times (so that drift hits both alike); the
table shows the median time per round and the ratio. The two paths' outputs are compared
first (they must agree to float tolerance).

    python benchmarks/bilstm_kernels.py --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time

import common  # noqa: F401
from common import corpus_path, machine_line, median, read_texts, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=200, help="per direction")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    args = parser.parse_args(argv)

    import torch

    from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder
    from cner.runtime.devices import cpu_has_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path, note = corpus_path("test")
    lengths = sorted(len(t) + 2 for t in read_texts(path) if t)  # [CLS] text [SEP]
    step = max(1, (len(lengths) - args.batch_size) // max(1, args.batches))
    batches = []
    for k in range(args.batches):
        rows = torch.tensor(lengths[k * step:k * step + args.batch_size][::-1])
        mask = (torch.arange(int(rows.max()))[None, :] < rows[:, None]).long()
        batches.append((torch.randn(len(rows), mask.size(1), args.input_size), mask))
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=10, embedding_size=args.input_size,
                                         hidden_size=2 * args.hidden, dropout=0.0)).eval()
    precisions = ["fp32"] + (["bf16"] if cpu_has_bf16() else [])
    times: dict[tuple[str, str], list[float]] = {}
    with torch.inference_mode():
        embeds, mask = batches[0]
        diff = (encoder.packed(embeds, mask) - encoder.unpacked(embeds, mask)).abs().max()
        for precision in precisions:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            encoder.to(dtype)
            cast = [(e.to(dtype), m) for e, m in batches]
            for _ in range(args.rounds + 1):  # the first round warms up, untimed
                for path_name in ("packed", "unpacked"):
                    run = getattr(encoder, path_name)
                    started = time.perf_counter()
                    for e, m in cast:
                        run(e, m)
                    times.setdefault((precision, path_name), []).append(
                        time.perf_counter() - started)
    chars = sum(int(m.sum()) for _, m in batches)
    rows = []
    for precision in precisions:
        packed = median(times[(precision, "packed")][1:])
        unpacked = median(times[(precision, "unpacked")][1:])
        rows.append([precision, f"{chars / packed:,.0f}", f"{chars / unpacked:,.0f}",
                     f"{packed / unpacked:.2f}x"])
    print(f"bilstm_kernels: {args.batches} batches of {args.batch_size} windows "
          f"({chars:,} positions, lengths from {note}); input {args.input_size}, hidden "
          f"2 x {args.hidden}; {torch.get_num_threads()} threads; {args.rounds} rounds; "
          f"max |packed - unpacked| in fp32 {float(diff):.1e}")
    print(machine_line())
    print(table(["precision", "packed positions/s", "unpacked positions/s", "unpacked / packed"],
                rows))
    if "bf16" not in precisions:
        print("bf16: skipped, this CPU has no bf16 (fp32 is the fast path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
