"""Corpus formats declared as data, format detection, and whole-corpus read/write/convert."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cner.data.cluener import read_cluener, write_cluener
from cner.data.conll import (read_conll, read_conll_sentences, sentence_to_example, split_columns,
                              write_conll)
from cner.data.example import Example
from cner.data.spanjsonl import read_span_jsonl, write_span_jsonl
from cner.errors import InputError
from cner.fileio import check_not_input, iter_lines, open_output
from cner.schemes import check_scheme, detect_scheme, find_invalid, flatten_spans


@dataclass(frozen=True)
class CorpusFormat:
    name: str
    description: str
    suffixes: tuple[str, ...]
    read: Callable[..., Iterable[Example]]
    write: Callable[..., None]
    tagged: bool  # whether the file stores per-character tags (so a scheme applies)


FORMATS: dict[str, CorpusFormat] = {
    "conll": CorpusFormat("conll", "one token per line, 'token<TAB>tag' or 'token tag', blank line "
                          "between sentences", (".conll", ".bio", ".bmes", ".txt", ".tsv", ".dev",
                                                ".test", ".train"),
                          read_conll, write_conll, True),
    "cluener": CorpusFormat("cluener", "CLUENER2020 JSON lines, spans grouped by type and mention, "
                            "end inclusive", (".json",), read_cluener, write_cluener, False),
    "jsonl": CorpusFormat("jsonl", "cner span JSON lines {id, text, entities:[{start,end,label}]}, "
                          "end exclusive", (".jsonl",), read_span_jsonl, write_span_jsonl, False),
}


@dataclass(frozen=True)
class Corpus:
    path: str
    format: str
    scheme: str | None
    examples: list[Example]
    invalid_transitions: int = 0  # repaired ones, when read with mode="lenient"

    def labels(self) -> list[str]:
        return sorted({s.label for ex in self.examples for s in ex.spans})


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise InputError(f"unknown corpus format {name!r}; expected auto or one of "
                         f"{', '.join(FORMATS)}")
    return name


_TAG = re.compile(r"O|[A-Za-z]+-\S+")


def _looks_like_column_line(line: str) -> bool:
    fields = split_columns(line)
    return len(fields) >= 2 and fields[0] != "" and _TAG.fullmatch(fields[-1].strip()) is not None


def detect_format(path: str | Path) -> str:
    """Look at the first non-empty line: a JSON object is CLUENER (``label``/``text`` only)
    or cner JSONL (``entities``); anything else is a column file."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                if _looks_like_column_line(line):  # a column file whose first token is '{'
                    return "conll"
                raise InputError(f"looks like JSON lines but does not parse: {exc.msg}",
                                 path=path, line=number, hint="pass --format to override") from None
            return "jsonl" if isinstance(obj, dict) and "entities" in obj else "cluener"
        return "conll"
    return "conll"


def read_corpus(path: str | Path, *, format: str = "auto", scheme: str = "auto",
                mode: str = "strict") -> Corpus:
    """Read a corpus file of any supported format into a `Corpus`.

    ``scheme`` applies to column files (``auto`` detects BIO/IOB1/BIOES/BMES/BILOU);
    ``mode="lenient"`` repairs invalid tag transitions instead of raising.
    """
    fmt = detect_format(path) if format == "auto" else check_format(format)
    if FORMATS[fmt].tagged:
        sentences = list(read_conll_sentences(path))
        scheme = detect_scheme([s.tags for s in sentences]) if scheme == "auto" else check_scheme(scheme)
        examples = [sentence_to_example(s, scheme=scheme, mode=mode) for s in sentences]
        invalid = 0
        if mode == "lenient":  # strict mode has already refused any invalid sentence
            invalid = sum(len(find_invalid(s.tags, scheme)) for s in sentences)
        return Corpus(str(path), fmt, scheme, examples, invalid)
    return Corpus(str(path), fmt, None, list(FORMATS[fmt].read(path)))


def write_corpus(examples: Iterable[Example], handle: IO[str], *, format: str,
                 scheme: str = "bio") -> None:
    fmt = FORMATS[check_format(format)]
    if fmt.tagged:
        fmt.write(examples, handle, scheme=check_scheme(scheme))
    else:
        fmt.write(examples, handle)


@dataclass(frozen=True)
class ConversionReport:
    examples: int
    entities: int
    dropped_nested: int


def convert_corpus(source: str | Path, target: str | Path | None, *, to: str,
                   scheme: str = "bio", source_format: str = "auto", source_scheme: str = "auto",
                   mode: str = "strict", out: IO[str] | None = None) -> ConversionReport:
    """Convert ``source`` to format ``to`` (and tag ``scheme`` for column files).

    The output is written to ``target`` by `cner.fileio.open_output` (a file atomically, a
    device or FIFO as a stream, ``-`` to standard output), or to ``out`` when ``target`` is
    None; a ``target`` naming ``source`` is refused. Nested spans, which a column file cannot
    hold, keep the outermost entity and are counted in the report's ``dropped_nested``.
    """
    check_not_input(target, [source])
    corpus = read_corpus(source, format=source_format, scheme=source_scheme, mode=mode)
    examples = corpus.examples
    dropped = 0
    if FORMATS[check_format(to)].tagged:
        flat = []
        for ex in examples:
            kept, lost = flatten_spans(ex.spans)
            dropped += len(lost)
            flat.append(Example(ex.text, tuple(kept), ex.id, ex.source, ex.line))
        examples = flat
    if target is None:
        assert out is not None, "either target or out is needed"
        write_corpus(examples, out, format=to, scheme=scheme)
    else:
        with open_output(target) as handle:
            write_corpus(examples, handle, format=to, scheme=scheme)
    return ConversionReport(len(examples), sum(len(e.spans) for e in examples), dropped)
