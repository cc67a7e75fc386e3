"""A character vocabulary of a given size from raw text, for pre-training from scratch.

``[PAD] [UNK] [CLS] [SEP] [MASK] [SPACE]``, then the most frequent characters of the text
(look-up forms: `cner.encoding.vocab.normalize_char`; whitespace is ``[SPACE]``), then
``reserved`` slots ``[unused0]``, ``[unused1]``, ... that a later vocabulary can turn into new
characters without changing any other id (edit ``vocab.txt``; the embedding has their rows).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from cner.encoding.vocab import SPECIAL_TOKENS, CharVocab, normalize_char

RESERVED = "[unused{}]"


@dataclass(frozen=True)
class VocabStats:
    characters: int  # non-whitespace characters counted
    distinct: int  # distinct look-up forms among them
    kept: int  # characters in the vocabulary
    covered: int  # occurrences of the kept characters
    reserved: int
    size: int  # tokens in the vocabulary

    @property
    def coverage(self) -> float:
        return self.covered / self.characters if self.characters else 1.0

    def as_dict(self) -> dict:
        return {"characters": self.characters, "distinct": self.distinct, "kept": self.kept,
                "coverage": round(self.coverage, 6), "reserved": self.reserved,
                "size": self.size}


def count_characters(texts: Iterable[str], *, lowercase: bool, halfwidth: bool) -> Counter:
    """Occurrences of each look-up form in ``texts`` (whitespace left out)."""
    raw: Counter[str] = Counter()
    for text in texts:
        raw.update(text)
    counts: Counter[str] = Counter()
    for char, n in raw.items():
        if not char.isspace():
            counts[normalize_char(char, lowercase=lowercase, halfwidth=halfwidth)] += n
    return counts


def vocab_from_counts(counts: Counter, *, size: int, reserved: int = 100, min_count: int = 1,
                      lowercase: bool = True, halfwidth: bool = True
                      ) -> tuple[CharVocab, VocabStats]:
    """The vocabulary of at most ``size`` tokens (special tokens and ``reserved`` slots
    included): the most frequent characters seen at least ``min_count`` times, ties broken
    by the character."""
    room = size - len(SPECIAL_TOKENS) - reserved
    if room < 1 or reserved < 0:
        raise ValueError(f"a vocabulary of {size} tokens has no room for characters after "
                         f"{len(SPECIAL_TOKENS)} special tokens and {reserved} reserved slots")
    ranked = [c for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
              if n >= min_count and c not in SPECIAL_TOKENS]
    kept = ranked[:room]
    tokens = (*SPECIAL_TOKENS, *kept, *(RESERVED.format(i) for i in range(reserved)))
    vocab = CharVocab(tokens, lowercase=lowercase, halfwidth=halfwidth)
    stats = VocabStats(characters=sum(counts.values()), distinct=len(counts), kept=len(kept),
                       covered=sum(counts[c] for c in kept), reserved=reserved,
                       size=len(tokens))
    return vocab, stats
