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
    from cner.encoding.vocab import CharVocab

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


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    import platform

    import torch
    import transformers

    return (f"machine: {os.cpu_count()} CPU cores ({cpu_name()}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
            f"python {platform.python_version()}")


def add_variants_option(parser, known: Sequence[str]) -> None:
    parser.add_argument("--variants", default=",".join(known),
                        help=f"comma-separated subset of {','.join(known)}")


def chosen_variants(parser, args, known: Sequence[str]) -> list[str]:
    """The ``--variants`` list, in the order given; an unknown name is a parser error."""
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(known):
        parser.error(f"unknown variants {sorted(unknown)}")
    return variants
