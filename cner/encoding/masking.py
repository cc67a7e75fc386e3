"""Masked-language-model targets: which positions to predict and what the model sees there.

As in BERT: ``ratio`` (15%) of a sequence's maskable positions are selected; of those,
``mask_prob`` (80%) show ``[MASK]``, ``random_prob`` (10%) a random character and the rest
(10%) the character itself; the loss is taken on the selected positions only. Three ways of
selecting:

* ``wwm`` (whole-word masking, the default): words, as jieba segments the text, are selected
  whole, in random order, until the budget of ``ratio * maskable`` positions is reached (a word
  that would overshoot it is skipped), as Chinese BERT-wwm does. The 80/10/10 choice is made
  per character. The budget is rounded up or down at random (`Masker.budget`), so that 15% is
  the share selected on average, in short sequences too.
* ``char``: single characters, exactly the budget of them.
* ``span`` (SpanBERT): spans of whole words whose length in words follows a geometric
  distribution (``span_p``, at most ``span_max`` words), started at random words until the
  budget is reached; the 80/10/10 choice is made per span, as SpanBERT does.

Never selected: special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``,
``[SPACE]``), padding, and in ``wwm``/``span`` every word that contains one of them, so a word
is always selected whole. A random replacement is a character of the vocabulary, never a
special or reserved ``[unusedN]`` token.

Masks are drawn from a NumPy generator the caller seeds, so the same seed gives the same masks:
`cner.encoding.packing` seeds one per ``(seed, epoch, batch)``, which makes masking dynamic
(a new mask each epoch) and a resumed run's masks those of an uninterrupted one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cner.encoding.vocab import SPECIAL_TOKENS, CharVocab

STRATEGIES = ("wwm", "char", "span")
IGNORE = -100  # label of a position without a target (torch's cross-entropy ignore_index)
_RESERVED = re.compile(r"\[unused\d+\]")


@dataclass(frozen=True)
class MaskingSpec:
    strategy: str = "wwm"
    ratio: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1
    span_p: float = 0.2
    span_max: int = 10

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"masking must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0 < self.ratio < 1 or not 0 <= self.mask_prob + self.random_prob <= 1:
            raise ValueError("need 0 < ratio < 1 and mask_prob + random_prob <= 1")


def special_ids(vocab: CharVocab) -> np.ndarray:
    """Ids never selected: the special tokens the vocabulary has, and reserved slots."""
    return np.array(sorted(i for i, tok in enumerate(vocab.tokens)
                           if tok in SPECIAL_TOKENS or _RESERVED.fullmatch(tok)), dtype=np.int64)


def replacement_ids(vocab: CharVocab) -> np.ndarray:
    """Ids a random replacement draws from: every token that is one character (not a special
    token or reserved slot, nor a hub vocabulary's word piece such as ``##的`` or ``the``,
    which cner's one-id-per-character input never holds)."""
    specials = set(special_ids(vocab).tolist())
    ids = np.array([i for i, tok in enumerate(vocab.tokens) if i not in specials
                    and len(tok) == 1], dtype=np.int64)
    if not len(ids):
        raise ValueError("the vocabulary has no characters to draw random replacements from")
    return ids


def word_starts(text: str) -> np.ndarray:
    """``True`` at the first character of each jieba word of ``text`` (one per character)."""
    import jieba

    jieba.setLogLevel(60)
    starts = np.zeros(len(text), dtype=bool)
    at = 0
    for word in jieba.cut(text, HMM=True):
        if at < len(text):
            starts[at] = True
        at += len(word)
    if at != len(text):  # jieba keeps every character; never trust offsets blindly
        starts[:] = True
    return starts


class Masker:
    """Draws the masked-LM inputs and labels of one sequence (`mask`)."""

    def __init__(self, spec: MaskingSpec, vocab: CharVocab) -> None:
        self.spec = spec
        self.mask_id = vocab.mask_id
        self.never = special_ids(vocab)
        self.random_ids = replacement_ids(vocab)

    def budget(self, maskable: int, rng: np.random.Generator) -> int:
        """Positions to select among ``maskable`` ones: ``ratio * maskable`` rounded up or
        down at random (up with the probability of its fractional part), so that the share
        selected is ``ratio`` on average whatever the sequences' lengths."""
        if maskable <= 0:
            return 0
        exact = self.spec.ratio * maskable
        whole = int(exact)
        return whole + int(rng.random() < exact - whole)

    def mask(self, ids: np.ndarray, starts: np.ndarray | None, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, labels)`` for one unpadded sequence ``ids`` (int, special tokens
        included); ``starts``: True at each word's first position (``None``, or ``char``
        masking: every position its own word). ``labels`` holds the original id at the
        selected positions and `IGNORE` elsewhere."""
        ids = np.asarray(ids, dtype=np.int64)
        maskable = ~np.isin(ids, self.never)
        inputs, labels = ids.copy(), np.full(len(ids), IGNORE, dtype=np.int64)
        budget = self.budget(int(maskable.sum()), rng)
        if budget == 0:
            return inputs, labels
        strategy = self.spec.strategy
        if strategy == "char":
            chosen = rng.choice(np.flatnonzero(maskable), size=budget, replace=False)
            self._replace_each(inputs, labels, ids, np.sort(chosen), rng)
            return inputs, labels
        if starts is None:
            starts = np.ones(len(ids), dtype=bool)
        first, length, whole = _words(starts, maskable)
        if strategy == "wwm":
            chosen = _whole_words(first, length, whole, budget, rng)
            self._replace_each(inputs, labels, ids, chosen, rng)
        else:
            for positions in _spans(first, length, whole, budget, rng, self.spec):
                self._replace_span(inputs, labels, ids, positions, rng)
        return inputs, labels

    def _replace_each(self, inputs: np.ndarray, labels: np.ndarray, ids: np.ndarray,
                      positions: np.ndarray, rng: np.random.Generator) -> None:
        """80/10/10 per position."""
        labels[positions] = ids[positions]
        draw = rng.random(len(positions))
        masked = positions[draw < self.spec.mask_prob]
        inputs[masked] = self.mask_id
        random = positions[(draw >= self.spec.mask_prob)
                           & (draw < self.spec.mask_prob + self.spec.random_prob)]
        if len(random):
            inputs[random] = rng.choice(self.random_ids, size=len(random))

    def _replace_span(self, inputs: np.ndarray, labels: np.ndarray, ids: np.ndarray,
                      positions: np.ndarray, rng: np.random.Generator) -> None:
        """80/10/10 for a whole span (SpanBERT)."""
        labels[positions] = ids[positions]
        draw = rng.random()
        if draw < self.spec.mask_prob:
            inputs[positions] = self.mask_id
        elif draw < self.spec.mask_prob + self.spec.random_prob:
            inputs[positions] = rng.choice(self.random_ids, size=len(positions))


def _words(starts: np.ndarray, maskable: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each word's first position and length, and whether all of it is maskable. A special
    token is a word of its own, whatever ``starts`` says."""
    starts = np.asarray(starts, dtype=bool) | ~maskable
    starts[0] = True
    if len(starts) > 1:
        starts[1:] |= ~maskable[:-1]  # the position after a special token starts a word
    first = np.flatnonzero(starts)
    length = np.diff(np.append(first, len(starts)))
    unmaskable = np.add.reduceat((~maskable).astype(np.int64), first) > 0
    return first, length, ~unmaskable


def _whole_words(first: np.ndarray, length: np.ndarray, whole: np.ndarray, budget: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Positions of words taken in random order while they fit the budget."""
    candidates = np.flatnonzero(whole)
    total, chosen = 0, []
    for word in rng.permutation(candidates):
        n = int(length[word])
        if total + n > budget:
            continue
        chosen.append(word)
        total += n
        if total == budget:
            break
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate([np.arange(first[w], first[w] + length[w]) for w in chosen]))


def _spans(first: np.ndarray, length: np.ndarray, whole: np.ndarray, budget: int,
           rng: np.random.Generator, spec: MaskingSpec, attempts: int = 50) -> list[np.ndarray]:
    """SpanBERT spans of whole, maskable words (positions per span) within the budget."""
    n_words = len(first)
    taken = ~whole.copy()  # words that may not be (or already are) part of a span
    total, spans, failures = 0, [], 0
    while total < budget and failures < attempts:
        words = min(int(rng.geometric(spec.span_p)), spec.span_max)
        start = int(rng.integers(n_words))
        end = min(n_words, start + words)
        span = []
        size = 0
        for word in range(start, end):
            if taken[word] or total + size + length[word] > budget:
                break
            span.append(word)
            size += int(length[word])
        if not span:
            failures += 1
            continue
        taken[span] = True
        total += size
        spans.append(np.concatenate([np.arange(first[w], first[w] + length[w]) for w in span]))
    return spans
