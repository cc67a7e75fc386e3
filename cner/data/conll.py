"""CoNLL-style column files: ``token<sep>...<sep>tag`` per line, blank line between sentences.

Reading (`read_conll_sentences`) only splits lines into tokens and raw tags; conversion to
spans (`sentences_to_examples`) validates the tags against a scheme. Tolerated: tab or single
space separators, extra middle columns (the tag is the last column), ``-DOCSTART-`` lines,
CRLF line ends and a leading BOM.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from cner.data.example import Example, TaggedSentence
from cner.errors import InputError, SchemeError
from cner.fileio import iter_lines
from cner.schemes import check_scheme, detect_scheme, find_invalid, spans_to_tags, tags_to_spans


def split_columns(line: str) -> list[str]:
    """Split one token line into columns: on tabs if it has any, else on single spaces.

    A space-separated line whose token is itself a space (``"  O"``) keeps that token.
    """
    if "\t" in line:
        return line.split("\t")
    fields = line.rstrip(" ").split(" ")  # trailing spaces are not an empty tag column
    if len(fields) >= 3 and fields[0] == "" and fields[1] == "":
        return [" "] + fields[2:]
    return fields


def read_conll_sentences(path: str | Path) -> Iterator[TaggedSentence]:
    """Yield the sentences of a column file, each with its source path and first line."""
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> Iterator[TaggedSentence]:
        if tokens:
            yield TaggedSentence(tuple(tokens), tuple(tags), str(path), lines[0], tuple(lines))
            tokens.clear(), tags.clear(), lines.clear()

    for number, line in iter_lines(path):
        if not line.strip():
            yield from flush()
            continue
        if line.startswith("-DOCSTART-"):
            yield from flush()
            continue
        fields = split_columns(line)
        if len(fields) < 2 or fields[-1] == "" or fields[0] == "":
            raise InputError(f"expected 'token<TAB>tag' or 'token tag', found {line[:40]!r}",
                             path=path, line=number, hint="every token line needs a tag column")
        tokens.append(fields[0])
        tags.append(fields[-1].strip())
        lines.append(number)
    yield from flush()


def sentence_to_example(sentence: TaggedSentence, *, scheme: str, mode: str = "strict") -> Example:
    """Join the tokens into a text and turn the tags into character spans."""
    try:
        token_spans = tags_to_spans(sentence.tags, scheme=scheme, mode=mode)
    except SchemeError as exc:
        line, problem = sentence.line, str(exc)
        bad = find_invalid(sentence.tags, scheme)
        if mode == "lenient":  # transitions were repaired: only an unknown tag can be at fault
            unknown = [v for v in bad if v.reason != "invalid transition"]
            if unknown:  # the first in the file, with its own message (tags_to_spans
                bad, problem = unknown, unknown[0].reason  # names any one of the unknown tags)
        if bad and sentence.token_lines:
            line = sentence.token_lines[min(bad[0].position, len(sentence.token_lines) - 1)]
        hint = ("fix the tags" if mode == "lenient" else  # lenient cannot repair an unknown tag
                "fix the tags, or read with mode='lenient' (--lenient) to repair them the "
                "conlleval way")
        raise InputError(problem, path=sentence.source, line=line, hint=hint) from None
    starts = [0]
    for token in sentence.tokens:
        starts.append(starts[-1] + len(token))
    spans = tuple(type(s)(starts[s.start], starts[s.end], s.label) for s in token_spans)
    return Example("".join(sentence.tokens), spans, None, sentence.source, sentence.line)


def read_conll(path: str | Path, *, scheme: str = "auto", mode: str = "strict") -> list[Example]:
    """Read a column file into examples; ``scheme="auto"`` detects it from the tags."""
    sentences = list(read_conll_sentences(path))
    if scheme == "auto":
        scheme = detect_scheme([s.tags for s in sentences])
    scheme = check_scheme(scheme)
    return [sentence_to_example(s, scheme=scheme, mode=mode) for s in sentences]


# A line break ends the token line, a carriage return reads as CRLF, a tab is the separator.
UNWRITABLE = frozenset("\n\r\t")


def write_conll(examples: Iterable[Example], handle: IO[str], *, scheme: str = "bio",
                delimiter: str = "\t") -> None:
    """Write one character per line with its tag. A space is written as a token (``" \tO"``,
    read back by `split_columns`); line breaks, carriage returns and the delimiter itself
    cannot be tokens and raise `InputError`."""
    for ex in examples:
        tags = spans_to_tags(ex.spans, len(ex.text), scheme=scheme)
        for i, (char, tag) in enumerate(zip(ex.text, tags)):
            if char in UNWRITABLE or char == delimiter:
                raise InputError(f"character {i} is {char!r}, which a column file cannot hold as "
                                 "a token", path=ex.source, line=ex.line,
                                 hint="convert to jsonl instead")
            handle.write(f"{char}{delimiter}{tag}\n")
        handle.write("\n")
