"""Corpus formats declared as data, format detection, and whole-corpus read/write/convert."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cner.data.cluener import read_cluener, write_cluener
from cner.data.conll import (read_conll, read_conll_sentences, read_tokens, sentence_to_example,
                              split_columns, write_conll)
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
    repaired_lines: tuple[int, ...] = ()  # the lines of the tags repaired, sorted
    token_suffix: str | None = None  # column files: "position" (digits dropped) or "none"
    notes: tuple[str, ...] = ()  # what reading noticed or repaired, one line per kind

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
                mode: str = "strict", token_suffix: str = "auto") -> Corpus:
    """Read a corpus file of any supported format into a `Corpus`.

    ``scheme`` applies to column files (``auto`` detects BIO/IOB1/BIOES/BMES/BILOU);
    ``mode="lenient"`` repairs invalid tag transitions instead of raising, counting them and
    their lines in the `Corpus` and its ``notes``. ``token_suffix`` applies to column files,
    which are read one character per token (`cner.data.conll.read_tokens`): ``auto`` also
    reads Weibo NER's word-position digits (``科0``) when nearly every token has them, and
    says so in a note; ``position`` declares them; ``none`` reads each token as written, a
    token of several characters as a word.
    """
    fmt = detect_format(path) if format == "auto" else check_format(format)
    if FORMATS[fmt].tagged:
        raw = list(read_conll_sentences(path))
        sentences, applied = read_tokens(raw, token_suffix=token_suffix)
        scheme = detect_scheme([s.tags for s in sentences]) if scheme == "auto" else check_scheme(scheme)
        examples = [sentence_to_example(s, scheme=scheme, mode=mode) for s in sentences]
        notes = []
        if token_suffix == "auto" and applied == "position":
            written = " ".join(t for t in raw[0].tokens[:3])
            characters = sum(len(ex.text) for ex in examples)
            notes.append(f"{path}: every token is a character followed by its word position "
                         f"({written}), as Weibo NER writes them: read the {characters:,} "
                         "characters without the digits (--token-suffix none keeps them)")
        invalid, lines = 0, set()
        if mode == "lenient":  # strict mode has already refused any invalid sentence
            for sentence in sentences:
                for violation in find_invalid(sentence.tags, scheme):
                    invalid += 1
                    at = min(violation.position, len(sentence.token_lines) - 1)
                    lines.add(sentence.token_lines[at] if at >= 0 else sentence.line)
        if invalid:
            notes.append(repair_note(str(path), invalid, sorted(lines)))
        return Corpus(str(path), fmt, scheme, examples, invalid, tuple(sorted(lines)), applied,
                      tuple(notes))
    return Corpus(str(path), fmt, None, list(FORMATS[fmt].read(path)))


def repair_note(path: str, count: int, lines: list[int], *, listed: int = 10) -> str:
    """``PATH: repaired N invalid tag transitions (lines ...), as conlleval does``."""
    shown = ", ".join(str(n) for n in lines[:listed])
    if len(lines) > listed:
        shown += f" and {len(lines) - listed} more"
    return (f"{path}: repaired {count} invalid tag transition{'s' if count != 1 else ''} "
            f"(line{'s' if len(lines) != 1 else ''} {shown}), as conlleval does")


# A format cner writes but does not read: a spaCy DocBin (binary; `cner.data.spacy_docbin`).
SPACY = "spacy"


def check_target(name: str) -> str:
    """A format `write_corpus`/`convert_corpus` can write: one of `FORMATS`, or ``spacy``."""
    if name == SPACY:
        return name
    if name not in FORMATS:
        raise InputError(f"unknown corpus format {name!r}; expected one of "
                         f"{', '.join([*FORMATS, SPACY])}")
    return name


def write_corpus(examples: Iterable[Example], handle: IO, *, format: str,
                 scheme: str = "bio") -> int | None:
    """Write ``examples`` to ``handle`` in ``format``. ``spacy`` writes a ``DocBin`` to a
    binary handle and returns the number of entities left out because they do not align to
    spaCy's tokens (`cner.data.spacy_docbin.examples_to_docbin`); the other formats return
    None."""
    if check_target(format) == SPACY:
        from cner.data.spacy_docbin import examples_to_docbin, require_spacy

        require_spacy("--to spacy")
        result = examples_to_docbin(examples)
        handle.write(result.docbin.to_bytes())
        return result.dropped
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
    notes: tuple[str, ...] = ()  # the source's, from read_corpus
    unaligned: int = 0  # --to spacy: entities left out, not aligned to spaCy's tokens


def convert_corpus(source: str | Path, target: str | Path | None, *, to: str,
                   scheme: str = "bio", source_format: str = "auto", source_scheme: str = "auto",
                   mode: str = "strict", out: IO[str] | None = None,
                   token_suffix: str = "auto") -> ConversionReport:
    """Convert ``source`` to format ``to`` (and tag ``scheme`` for column files).

    The output is written to ``target`` by `cner.fileio.open_output` (a file atomically, a
    device or FIFO as a stream, ``-`` to standard output), or to ``out`` when ``target`` is
    None; a ``target`` naming ``source`` is refused. Nested spans, which a column file cannot
    hold, keep the outermost entity and are counted in the report's ``dropped_nested``.

    ``to="spacy"`` writes a spaCy ``DocBin`` (binary, so to ``target`` only): one ``Doc`` per
    example, tokenized by ``spacy.blank("zh")`` (one token per character); entities that do
    not align to its tokens (one starting or ending on whitespace) are left out and counted in
    the report's ``unaligned``; nested ones are flattened as for column files.
    """
    if check_target(to) == SPACY:
        from cner.data.spacy_docbin import require_spacy

        require_spacy("--to spacy")
        if target is None:
            raise InputError("a spaCy DocBin is binary: write it to a file with --output "
                             "(-o NAME.spacy)")
    check_not_input(target, [source])
    corpus = read_corpus(source, format=source_format, scheme=source_scheme, mode=mode,
                         token_suffix=token_suffix)
    examples = corpus.examples
    dropped = 0
    if to == SPACY or FORMATS[check_format(to)].tagged:
        flat = []
        for ex in examples:
            kept, lost = flatten_spans(ex.spans)
            dropped += len(lost)
            flat.append(Example(ex.text, tuple(kept), ex.id, ex.source, ex.line))
        examples = flat
    unaligned = None
    if target is None:
        assert out is not None, "either target or out is needed"
        write_corpus(examples, out, format=to, scheme=scheme)
    else:
        with open_output(target, "wb" if to == SPACY else "w") as handle:
            unaligned = write_corpus(examples, handle, format=to, scheme=scheme)
    entities = sum(len(e.spans) for e in examples) - (unaligned or 0)  # those written
    return ConversionReport(len(examples), entities, dropped, corpus.notes, unaligned or 0)
