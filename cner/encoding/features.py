"""Per-character model inputs: character ids plus the optional bigram, jieba word-boundary and
lexicon features of models trained from scratch.

A randomly initialised encoder learns word-level cues slowly; character bigrams and jieba's
word boundaries hand it those cues directly. Id 0 is padding (also at [CLS]/[SEP]).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from cner.encoding.lexicon import lexicon_bits
from cner.encoding.vocab import CharVocab

BOUNDARY_IDS = {"B": 1, "M": 2, "E": 3, "S": 4}
BIGRAM_SPECIALS = ("<pad>", "<unk>")


def word_boundary_ids(text: str) -> list[int]:
    """The B/M/E/S position of each character in jieba's segmentation (1..4), one per char."""
    import jieba

    jieba.setLogLevel(60)
    ids: list[int] = []
    for word in jieba.cut(text, HMM=True):
        n = len(word)
        ids.extend([BOUNDARY_IDS["S"]] if n == 1 else
                   [BOUNDARY_IDS["B"]] + [BOUNDARY_IDS["M"]] * (n - 2) + [BOUNDARY_IDS["E"]])
    if len(ids) != len(text):  # jieba keeps every character; never trust offsets blindly
        return [BOUNDARY_IDS["S"]] * len(text)
    return ids


def char_bigrams(text: str, vocab: CharVocab) -> list[str]:
    """The (normalised) bigram starting at each character; the last one pairs with the end."""
    norm = vocab.char_forms(text)
    return [a + b for a, b in zip(norm, norm[1:] + [""])]


class Featurizer:
    """Character ids plus the optional bigram, word-boundary and lexicon ids, one of each per
    character."""

    def __init__(self, vocab: CharVocab, *, bigrams: Sequence[str] | None = None,
                 boundaries: bool = False, lexicon: bool = False) -> None:
        self.vocab = vocab
        self.bigrams = tuple(bigrams) if bigrams is not None else None
        self._bigram_index = {b: i for i, b in enumerate(self.bigrams or ())}
        self.boundaries = boundaries
        self.lexicon = lexicon

    @staticmethod
    def build_bigrams(texts: Iterable[str], vocab: CharVocab, *, min_count: int = 2) -> list[str]:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(char_bigrams(text, vocab))
        kept = sorted((b for b, n in counts.items() if n >= min_count), key=lambda b: (-counts[b], b))
        return [*BIGRAM_SPECIALS, *kept]

    @property
    def keys(self) -> tuple[str, ...]:
        return ("input_ids",) + (("bigram_ids",) if self.bigrams else ()) + \
            (("boundary_ids",) if self.boundaries else ()) + \
            (("lexicon_ids",) if self.lexicon else ())

    def features(self, text: str) -> dict[str, list[int]]:
        feats = {"input_ids": self.vocab.encode(text)}
        if self.bigrams:
            index = self._bigram_index
            feats["bigram_ids"] = [index.get(b, 1) for b in char_bigrams(text, self.vocab)]
        if self.boundaries:
            feats["boundary_ids"] = word_boundary_ids(text)
        if self.lexicon:
            feats["lexicon_ids"] = lexicon_bits(text)
        return feats

    def window(self, feats: dict[str, list[int]], start: int, end: int) -> dict[str, list[int]]:
        """Model inputs for characters ``[start, end)``: ``[CLS] ... [SEP]`` (0 for extras)."""
        out = {"input_ids": [self.vocab.cls_id, *feats["input_ids"][start:end], self.vocab.sep_id]}
        for key in self.keys[1:]:
            out[key] = [0, *feats[key][start:end], 0]
        return out

    def pad_id(self, key: str) -> int:
        return self.vocab.pad_id if key == "input_ids" else 0
