"""Throughput and latency of ``cner serve`` under closed-loop load, against in-process
``Tagger.pipe`` and against the same server with batching off.

The model: the ``--size`` shape (small: 256 x 4, base: bert-base) with random weights over
the MSRA vocabulary, written with ``save_model_dir`` and served by ``cner serve`` (a
subprocess, listening on 127.0.0.1 only) at ``--precision`` (auto: bf16 where the CPU has it).
The texts: the first ``--texts`` MSRA test sentences (the shipped sample when ../shared is
missing), one sentence per request.

Rows, in this order:

  in-process       ``list(Tagger.pipe(texts))`` in this process, the same model directory and
                   precision, repeated for ``--seconds``: with torch's default threads (one per
                   core) and with the server's (``--threads`` in ``--server-args``, else one core
                   fewer, `default_threads`); the ratios are to the faster of the two. Also,
                   with the server's threads, calls of
                   as many texts as the most clients have in flight (32 x --texts-per-request):
                   the largest batch a closed loop can give the server
  batched, N       ``cner serve`` (dynamic batching, its default settings): N clients, each
                   sending its next sentence as soon as the last one was answered (closed
                   loop), for ``--seconds`` or ``--requests`` requests, whichever ends first
  batching off, N  the same against ``cner serve --no-batching`` (each request runs alone)

The clients are asyncio tasks in this process, one keep-alive connection each, speaking plain
HTTP/1.1 (`Connection`: cheap, so that the load generator does not take the CPU the server
needs; they still share the machine with the server). A request is answered when its JSON
is parsed. chars/s =
characters of the answered sentences / wall time; latencies from request to parsed answer.

Timing. The machine's speed drifts within seconds, so the variants take turns: both servers
run (an idle one costs nothing), and in each of ``--rounds`` rounds every variant runs for
``--seconds``; the table shows the median chars/s of the rounds and the latency percentiles
of all their requests.

    python benchmarks/serve_speed.py --size small --seconds 3 --rounds 3
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment before transformers loads)
from common import (build_vocab, corpus_path, log, machine_line, median, model_config,
                    read_texts, table)

CLIENTS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_model(size: str, max_length: int, overlap: int, tmp: Path) -> Path:
    from cner.models.encoders import scratch_encoder
    from cner.models.metadata import ModelMeta
    from cner.models.modeldir import save_model_dir
    from cner.models.tagger import TokenTagger
    from cner.schemes import label_set
    from cner.training.loop import seed_everything

    train_path, _ = corpus_path("train")
    vocab = build_vocab(read_texts(train_path, None), size)
    tags = label_set(["LOC", "ORG", "PER"], "bio")
    seed_everything(42)
    cfg = model_config(size)
    model = TokenTagger(scratch_encoder(cfg, vocab, max_positions=max(512, max_length)), tags,
                        scheme="bio", head="crf", dropout=cfg.dropout)
    meta = ModelMeta(task="ner", labels=tags, scheme="bio", head="crf", dropout=cfg.dropout,
                     lowercase=vocab.lowercase, halfwidth=vocab.halfwidth,
                     max_length=max_length, overlap=overlap)
    return save_model_dir(model, vocab, meta, tmp / "model")


def in_process(tagger, texts: list[str], seconds: float, chunk: int | None = None) -> float:
    """chars/s of ``Tagger.pipe`` over ``texts`` (``chunk`` texts a call: all), repeated for
    ``seconds``."""
    chunk = chunk or len(texts)
    chars, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for first in range(0, len(texts), chunk):
            list(tagger.pipe(texts[first:first + chunk]))
            chars += sum(map(len, texts[first:first + chunk]))
    return chars / (time.perf_counter() - started)


@contextlib.contextmanager
def server(model_dir: Path, precision: str, extra: list[str]):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "cner", "serve", "-m", str(model_dir),
                                "--port", str(port), "--precision", precision, *extra],
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"cner serve exited: {process.stderr.read()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("cner serve did not get ready")


class Connection:
    """A minimal HTTP/1.1 keep-alive client for one connection: a load generator has to cost
    far less than the server it loads (httpx's AsyncClient took ~5 ms of CPU per request
    here, 7x the server's own cost, on the same 2 cores)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, payload: dict) -> dict:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}"
                          "\r\n\r\n".encode("ascii") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        answer = json.loads(await self.reader.readexactly(length))
        if status != 200:
            raise SystemExit(f"HTTP {status}: {answer}")
        return answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def closed_loop(url: str, texts: list[str], clients: int, seconds: float,
                      max_requests: int, per_request: int = 1) -> tuple[float, list[float], int]:
    """``(chars/s, latencies in s, requests)`` of ``clients`` closed-loop clients, one
    connection each, sending ``per_request`` texts a request."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    latencies: list[float] = []
    chars, next_text = 0, 0
    connections = [Connection(host, int(port)) for _ in range(clients)]
    async def warm_up(connection: Connection, text: str) -> None:
        await connection.open()
        await connection.post("/v1/ner", {"text": text})

    # open the connections together: one left idle for 5 s is closed by the server
    await asyncio.gather(*(warm_up(c, t) for c, t in zip(connections, texts)))
    started = time.perf_counter()
    deadline = started + seconds

    async def one_client(connection: Connection):
        nonlocal chars, next_text
        while time.perf_counter() < deadline and len(latencies) < max_requests:
            mine = [texts[(next_text + i) % len(texts)] for i in range(per_request)]
            next_text += per_request
            sent = time.perf_counter()
            answer = await connection.post("/v1/ner", {"texts": mine})
            assert len(answer["entities"]) == per_request
            latencies.append(time.perf_counter() - sent)
            chars += sum(map(len, mine))

    await asyncio.gather(*(one_client(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return chars / elapsed, latencies, len(latencies)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--texts", type=int, default=1000, help="first N MSRA test sentences")
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000,
                        help="most requests per measurement")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)))
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--server-args", default="",
                        help="more cner serve options, e.g. '--threads 1 --max-wait-ms 5'")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]

    import torch

    from cner.inference.tagger import Tagger

    server_threads = server_thread_count(args.server_args)
    in_process_threads = sorted({torch.get_num_threads(), server_threads},
                                reverse=True)

    test_path, note = corpus_path("test")
    texts = [t for t in read_texts(test_path, args.texts) if t]
    tmp = Path(tempfile.mkdtemp(prefix="cner-serve-bench-"))
    model_dir = write_model(args.size, args.max_length, args.overlap, tmp)
    log(f"{len(texts)} texts, {sum(map(len, texts))} characters; model in {model_dir}")
    tagger = Tagger.load(model_dir, precision=args.precision)
    list(tagger.pipe(texts[:64]))
    extra = args.server_args.split()
    rates: dict = collections.defaultdict(list)
    latencies: dict = collections.defaultdict(list)
    with server(model_dir, args.precision, extra) as batched, \
            server(model_dir, args.precision, ["--no-batching", *extra]) as off:
        for round_ in range(1, args.rounds + 1):
            for threads in in_process_threads:
                torch.set_num_threads(threads)
                rates["in-process", threads].append(in_process(tagger, texts, args.seconds))
            torch.set_num_threads(server_threads)
            in_flight = max(clients) * args.texts_per_request
            rates["in-process chunks", in_flight].append(
                in_process(tagger, texts, args.seconds, in_flight))
            torch.set_num_threads(in_process_threads[0])
            for label, url in (("batched", batched), ("batching off", off)):
                for n in clients:
                    rate, lat, _ = asyncio.run(closed_loop(url, texts, n, args.seconds,
                                                           args.requests,
                                                           args.texts_per_request))
                    rates[label, n].append(rate)
                    latencies[label, n] += lat
            log(f"round {round_}: " + ", ".join(f"{k[0]} {k[1]}: {v[-1]:,.0f}"
                                               for k, v in rates.items()))
    report(args, note, test_path, clients, rates, latencies, server_threads)
    return 0


def server_thread_count(server_args: str) -> int:
    """The torch threads of ``cner serve SERVER_ARGS``: its ``--threads``, else its default."""
    from cner.serving.registry import default_threads

    words = server_args.split()
    for i, word in enumerate(words):
        if word == "--threads" and i + 1 < len(words):
            return int(words[i + 1])
        if word.startswith("--threads="):
            return int(word.partition("=")[2])
    return default_threads() or 1


def report(args, note, test_path, clients, rates, latencies, server_threads) -> None:
    in_process_rows = sorted(k for k in rates if k[0] == "in-process")
    reference = max(median(rates[k]) for k in in_process_rows)
    chunks = next(k for k in rates if k[0] == "in-process chunks")
    print(machine_line())
    print(f"model: {args.size}, random weights, precision {args.precision}; texts: "
          f"{args.texts} sentences of {note if 'NOTE' in note else test_path.name}, "
          f"{args.texts_per_request} per request; {args.rounds} rounds of {args.seconds:g} s "
          f"per variant, variants taking turns; median chars/s of the rounds; server: cner serve "
          f"{args.server_args or '(defaults: --max-batch-chars 16384, --max-wait-ms 5)'}, "
          f"torch threads {server_threads}")
    body = [(f"in-process Tagger.pipe, {k[1]} torch threads", "-", "-",
             f"{median(rates[k]):,.0f}", f"{median(rates[k]) / reference:.2f}", "-", "-", "-")
            for k in in_process_rows]
    body.append((f"in-process Tagger.pipe, {server_threads} torch threads, {chunks[1]} "
                 "texts a call", "-", "-", f"{median(rates[chunks]):,.0f}",
                 f"{median(rates[chunks]) / reference:.2f}", "-", "-", "-"))
    for label in ("batched", "batching off"):
        for n in clients:
            lat = latencies[label, n]
            body.append((f"cner serve, {label}", n, len(lat), f"{median(rates[label, n]):,.0f}",
                         f"{median(rates[label, n]) / reference:.2f}",
                         *(f"{percentile(lat, q) * 1000:.1f}" for q in (0.5, 0.95, 0.99))))
    print(table(["mode", "clients", "requests", "chars/s", "x in-process", "p50 ms", "p95 ms",
                 "p99 ms"], body))
    top = max(clients)
    ratio_pipe = median(rates["batched", top]) / reference
    ratio_off = median(rates["batched", top]) / median(rates["batching off", top])
    print(f"{top} clients, batched: {ratio_pipe:.2f}x in-process Tagger.pipe (target >= 0.8: "
          f"{'pass' if ratio_pipe >= 0.8 else 'MISS'}), {ratio_off:.2f}x batching off (target "
          f">= 3: {'pass' if ratio_off >= 3 else 'MISS'}); p99 "
          f"{percentile(latencies['batched', top], 0.99) * 1000:.0f} ms")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
