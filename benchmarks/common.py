"""Shared helpers for the speed benchmarks in this folder (not part of the cner package).

Everything runs offline: models are built from configs with random weights, never loaded
from the Hugging Face hub (``HF_HUB_OFFLINE=1`` is set before transformers is imported).
"""
from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent
MSRA = ROOT.parent / "shared" / "corpora" / "msra_ner"
SAMPLE = ROOT / "corpora" / "sample"

# bert-base-chinese's vocabulary size: the base shape pads the character vocabulary to it.
BASE_VOCAB = 21128

SIZES = {
    # hidden, layers, heads, intermediate
    "small": (256, 4, 4, 1024),
    "base": (768, 12, 12, 3072),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def corpus_path(split: str) -> tuple[Path, str]:
    """``(path, note)`` of the MSRA ``train``/``test`` file, or of the shipped sample corpus
    when ../shared is missing (``note`` then says so)."""
    path = MSRA / f"msra_{split}_bio"
    if path.is_file():
        return path, f"MSRA {split} ({path})"
    fallback = SAMPLE / f"{split}.conll"
    note = (f"NOTE: {path} not found; falling back to the small shipped sample "
            f"{fallback.relative_to(ROOT)} (numbers are not comparable with MSRA runs)")
    print(note, file=sys.stderr, flush=True)
    return fallback, note


def read_examples(path: Path, limit: int | None):
    """The first ``limit`` sentences of a BIO column file as `cner.data.example.Example`s,
    read with cner's own reader."""
    from cner.data.conll import read_conll_sentences, sentence_to_example

    sentences = itertools.islice(read_conll_sentences(path), limit)
    return [sentence_to_example(s, scheme="bio", mode="lenient") for s in sentences]


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    from cner.data.conll import read_conll_sentences

    return ["".join(s.tokens) for s in itertools.islice(read_conll_sentences(path), limit)]


def model_config(size: str, dropout: float = 0.1):
    from cner.config import ModelConfig

    hidden, layers, heads, inter = SIZES[size]
    return ModelConfig(encoder="scratch", hidden_size=hidden, num_layers=layers, num_heads=heads,
                       intermediate_size=inter, dropout=dropout)


def build_vocab(texts, size: str):
    """A `CharVocab` of the characters in ``texts`` as ``cner train`` builds it (lower-case and
    half-width look-up); for ``base`` padded with ``[unusedN]`` tokens to 21,128 entries so
    the config has bert-base-chinese's vocabulary size."""
    from cner.encoding import CharVocab

    vocab = CharVocab.build(texts, lowercase=True, halfwidth=True)
    if size == "base" and len(vocab) < BASE_VOCAB:
        extra = tuple(f"[unused{i}]" for i in range(BASE_VOCAB - len(vocab)))
        vocab = CharVocab(vocab.tokens + extra, lowercase=vocab.lowercase, halfwidth=vocab.halfwidth)
    return vocab


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-markdown table."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(fmt(r) for r in rows)])


def machine_line() -> str:
    import platform

    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"machine: {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
            f"python {platform.python_version()}")


class Interleaver:
    """Runs several jobs in threads, one at a time, switching between them at `checkpoint`
    calls, so that their timed work is spread evenly over the machine's speed drift.

    Only the job holding the baton runs (the others wait on a condition, using no CPU), so
    every job is timed as if it had the machine alone. At a checkpoint the running job gives
    the baton up once it has run for ``quantum`` seconds since it last got it; the next job is
    the unfinished one with the least busy time divided by its weight (a fair share), so all
    jobs advance through the same stretch of wall time. A job's busy time counts only the
    spans in which it held the baton. With ``totals`` (the number of checkpoints each job will
    reach) the next job is instead the one least far through its work, so that all of them
    finish together; with ``weights`` set to the jobs' expected busy times (say, from an
    earlier round) the fair share does the same.

    ``checkpoint()`` is meant for hooks (after an optimizer step, before a model forward): in a
    thread that is not one of the jobs it does nothing. Per job, `segments` holds the busy time
    between consecutive checkpoints (the last entry runs from the last checkpoint to the end),
    and `busy` the total.
    """

    def __init__(self, quantum: float = 0.5) -> None:
        import threading

        self.quantum = quantum
        self._threading = threading
        self._cond = threading.Condition()
        self._names: dict[int, str] = {}
        self._current: str | None = None
        self._active: set[str] = set()
        self._weights: dict[str, float] = {}
        self._totals: dict[str, int] | None = None
        self._got_baton = 0.0  # when the current job last got the baton
        self._since_mark: dict[str, float] = {}  # busy time since the job's last checkpoint
        self._segment_start = 0.0
        self.busy: dict[str, float] = {}
        self.segments: dict[str, list[float]] = {}

    def _pick(self) -> None:
        def key(n):
            if self._totals:
                return len(self.segments[n]) / self._totals[n], n
            return self.busy[n] / self._weights[n], n
        self._current = min(self._active, key=key) if self._active else None
        self._cond.notify_all()

    def _wait(self, name: str) -> None:
        while self._current != name:
            self._cond.wait()
        self._got_baton = self._segment_start = time.perf_counter()

    def _account(self, name: str, now: float) -> None:
        span = now - self._segment_start
        self.busy[name] += span
        self._since_mark[name] += span
        self._segment_start = now

    def checkpoint(self) -> None:
        name = self._names.get(self._threading.get_ident())
        if name is None:
            return
        now = time.perf_counter()
        with self._cond:
            self._account(name, now)
            self.segments[name].append(self._since_mark[name])
            self._since_mark[name] = 0.0
            if now - self._got_baton >= self.quantum:
                self._pick()
                if self._current != name:
                    self._wait(name)
                else:
                    self._got_baton = time.perf_counter()
            self._segment_start = time.perf_counter()

    def run(self, jobs: dict, weights: dict | None = None, totals: dict | None = None) -> dict:
        """Run ``{name: callable}`` interleaved; returns ``{name: result}`` (re-raises the
        first failure). ``weights``: ``{name: share}`` of busy time (default 1 each);
        ``totals``: ``{name: checkpoints}`` for every job, to schedule by progress instead."""
        results, errors = {}, {}
        self._active = set(jobs)
        self._weights = {n: (weights or {}).get(n, 1.0) for n in jobs}
        self._totals = {n: max(1, totals[n]) for n in jobs} if totals else None
        self.busy = {n: 0.0 for n in jobs}
        self.segments = {n: [] for n in jobs}
        self._since_mark = {n: 0.0 for n in jobs}

        def worker(name, fn):
            with self._cond:
                self._names[self._threading.get_ident()] = name
                self._wait(name)
            try:
                results[name] = fn()
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller)
                errors[name] = exc
            finally:
                with self._cond:
                    self._account(name, time.perf_counter())
                    self.segments[name].append(self._since_mark[name])
                    self._active.discard(name)
                    self._names.pop(self._threading.get_ident(), None)
                    self._pick()

        threads = [self._threading.Thread(target=worker, args=(n, f), name=f"bench-{n}",
                                          daemon=True) for n, f in jobs.items()]
        for thread in threads:
            thread.start()
        with self._cond:
            while len(self._names) < len(jobs):  # every job waits for the baton first
                self._cond.wait(0.01)
            self._pick()
        for thread in threads:
            thread.join()
        if errors:
            raise next(iter(errors.values()))
        return results

    def is_active(self, name: str) -> bool:
        return name in self._active


def add_variants_option(parser, known: Sequence[str]) -> None:
    parser.add_argument("--variants", default=",".join(known),
                        help=f"comma-separated subset of {','.join(known)}")


def chosen_variants(parser, args, known: Sequence[str]) -> list[str]:
    """The ``--variants`` list, in the order given; an unknown name is a parser error."""
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(known):
        parser.error(f"unknown variants {sorted(unknown)}")
    return variants
