"""CoNLL-style column files: ``token<sep>...<sep>tag`` per line, blank line between sentences.

Reading (`read_conll_sentences`) only splits lines into tokens and raw tags; conversion to
spans (`sentences_to_examples`) validates the tags against a scheme. Tolerated: tab or single
space separators, extra middle columns (the tag is the last column), ``-DOCSTART-`` lines,
CRLF line ends and a leading BOM.

Tokens (`read_tokens`): cner reads text one character per token. ``token_suffix`` says what
follows the character: ``"auto"`` (the default of `cner.data.formats.read_corpus`) reads the
word-position convention of Weibo NER (``科0``, ``技1``, ``p10``: the character, then its
position in its word) when nearly every token follows it, and otherwise refuses a token of
several characters, naming its file and line; ``"position"`` declares the convention;
``"none"`` reads every token as written: a token of several characters is a word whose tag
covers all of its characters (the default of `read_conll`).
"""
from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
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


# --- tokens: one character each, or a character and its word position --------------------------

TOKEN_SUFFIXES = ("auto", "position", "none")
# token_suffix="auto" reads positions when this share of the first tokens follows the convention.
DETECT_TOKENS = 1000
DETECT_SHARE = 0.99
_DIGITS = "0123456789"


def check_token_suffix(name: str) -> str:
    if name not in TOKEN_SUFFIXES:
        raise InputError(f"unknown token suffix {name!r}; expected one of "
                         f"{', '.join(TOKEN_SUFFIXES)}")
    return name


def _joins(char: str) -> bool:
    """A code point that belongs to the character before it: a combining mark, a variation
    selector, an emoji skin-tone modifier or an emoji tag."""
    code = ord(char)
    return (unicodedata.category(char) in ("Mn", "Mc", "Me") or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F)


def is_one_character(token: str) -> bool:
    r"""Whether ``token`` is one character as a reader sees it: one code point, or one with
    combining marks, variation selectors or zero-width-joined parts after it (``e\u0301``,
    ``👍🏽``, ``👨\u200d👩\u200d👧``), or a flag (two regional indicators)."""
    if len(token) <= 1:
        return len(token) == 1
    if len(token) == 2 and all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in token):
        return True
    after_joiner = False
    for char in token[1:]:
        if after_joiner:
            after_joiner = False
        elif char == "\u200d":
            after_joiner = True
        elif not _joins(char):
            return False
    return not after_joiner


def split_position(token: str) -> str | None:
    """The character of a token written as a character and its word position (``科0`` ->
    ``科``, ``p10`` -> ``p``, ``110`` -> ``1``); None for any other token."""
    head = token.rstrip(_DIGITS) or token[:1]  # a digit character: the first digit is it
    if len(head) == len(token) or not is_one_character(head):
        return None
    return head


def detect_token_suffix(sentences: Sequence[TaggedSentence]) -> str:
    """``"position"`` when at least `DETECT_SHARE` of the first `DETECT_TOKENS` tokens are a
    character followed by digits, else ``"none"``."""
    seen = matching = 0
    for sentence in sentences:
        for token in sentence.tokens:
            seen += 1
            matching += split_position(token) is not None
            if seen == DETECT_TOKENS:
                break
        if seen == DETECT_TOKENS:
            break
    return "position" if seen and matching >= DETECT_SHARE * seen else "none"


def _several_characters(sentence: TaggedSentence, k: int, token: str, *, hint: str) -> InputError:
    line = sentence.token_lines[k] if k < len(sentence.token_lines) else sentence.line
    return InputError(f"token {token!r} is {len(token)} characters; cner reads one character per "
                      "token", path=sentence.source, line=line, hint=hint)


POSITION_HINT = ("if every token is a character followed by its word position, as in Weibo NER "
                 "(科0), pass --token-suffix position (data.token_suffix: position)")
WORDS_HINT = ("write one character per line, or pass --token-suffix none (data.token_suffix: "
              "none) to read each token as a word whose tag covers all of its characters")


def read_tokens(sentences: list[TaggedSentence], *, token_suffix: str = "auto"
                ) -> tuple[list[TaggedSentence], str]:
    """Check and normalise the tokens of ``sentences`` (see the module docstring); returns
    the sentences and the convention applied, ``"position"`` or ``"none"``.

    Raises `InputError` naming the file and line of a token of several characters (unless
    ``token_suffix="none"``) or, with positions, of a token that is not a character and digits.
    """
    token_suffix = check_token_suffix(token_suffix)
    if token_suffix == "auto":
        applied = detect_token_suffix(sentences)
    else:
        applied = token_suffix
    if applied == "none":
        if token_suffix == "auto":  # one character per token: check it
            for sentence in sentences:
                if len("".join(sentence.tokens)) == len(sentence.tokens):
                    continue  # all single code points (the fast path)
                for k, token in enumerate(sentence.tokens):
                    if not is_one_character(token):
                        hint = POSITION_HINT if split_position(token) else WORDS_HINT
                        raise _several_characters(sentence, k, token, hint=hint)
        return sentences, applied
    stripped = []
    for sentence in sentences:
        tokens = list(sentence.tokens)
        for k, token in enumerate(tokens):
            if len(token) == 1:
                continue  # a character without a position: kept as it is
            char = split_position(token)
            if char is None:
                if is_one_character(token):
                    continue
                raise _several_characters(
                    sentence, k, token, hint="with --token-suffix position every token is one "
                    "character followed by its word position (科0); fix this token")
            tokens[k] = char
        stripped.append(dataclasses.replace(sentence, tokens=tuple(tokens)))
    return stripped, applied


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
                "fix the tags, or pass --lenient (data.lenient: true; mode='lenient' in Python) "
                "to repair them the conlleval way")
        raise InputError(problem, path=sentence.source, line=line, hint=hint) from None
    starts = [0]
    for token in sentence.tokens:
        starts.append(starts[-1] + len(token))
    spans = tuple(type(s)(starts[s.start], starts[s.end], s.label) for s in token_spans)
    return Example("".join(sentence.tokens), spans, None, sentence.source, sentence.line)


def read_conll(path: str | Path, *, scheme: str = "auto", mode: str = "strict",
               token_suffix: str = "none") -> list[Example]:
    """Read a column file into examples; ``scheme="auto"`` detects it from the tags.

    Tokens are read as written by default (``token_suffix="none"``: a token of several
    characters is a word); `cner.data.formats.read_corpus` reads one character per token.
    """
    sentences, _ = read_tokens(list(read_conll_sentences(path)), token_suffix=token_suffix)
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
