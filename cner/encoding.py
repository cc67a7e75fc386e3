"""Text -> character-level model inputs, and the map back to string offsets.

One model position per Python string character (code point), whatever it is: whitespace,
Latin letters, digits, full-width forms, emoji. So position ``i`` of a window that starts at
character ``s`` is ``text[s + i]`` and offsets need no alignment table. WordPiece would
merge ``2024`` into one piece and break that; here every character is looked up on its own.
Normalisation (full-width -> half-width, lower-casing) changes only the vocabulary look-up,
never the text or an offset.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cner.errors import ModelError
from cner.fileio import atomic_write
from cner.lexicon import lexicon_bits
from cner.schemes import Span, spans_to_tags, tags_to_spans

PAD, UNK, CLS, SEP, MASK, SPACE = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[SPACE]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK, SPACE)
# Hub vocabularies have no [SPACE]; an unused slot keeps whitespace distinct from [UNK].
SPACE_FALLBACKS = (SPACE, "[unused1]")


def normalize_char(char: str, *, lowercase: bool = False, halfwidth: bool = False) -> str:
    """The look-up form of one character; always exactly one character long."""
    code = ord(char)
    if halfwidth:
        if 0xFF01 <= code <= 0xFF5E:
            char = chr(code - 0xFEE0)
        elif code == 0x3000:
            char = " "
    if lowercase:
        lowered = char.lower()
        if len(lowered) == 1:  # 'İ'.lower() is two code points: keep the original
            char = lowered
    return char


@dataclass(frozen=True)
class CharVocab:
    """A WordPiece-style ``vocab.txt`` used one character at a time."""

    tokens: tuple[str, ...]
    lowercase: bool = False
    halfwidth: bool = False
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _cache: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {tok: i for i, tok in enumerate(self.tokens)}
        missing = [t for t in (PAD, UNK, CLS, SEP) if t not in index]
        if missing:
            raise ModelError(f"vocabulary lacks the special token(s) {', '.join(missing)}")
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_cache", {})

    @classmethod
    def load(cls, path: str | Path, *, lowercase: bool = False, halfwidth: bool = False) -> CharVocab:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"vocabulary file {path} not found")
        tokens = path.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls(tuple(tokens), lowercase=lowercase, halfwidth=halfwidth)

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None,
              lowercase: bool = False, halfwidth: bool = False) -> CharVocab:
        """A vocabulary of the characters in ``texts`` (after normalisation), most frequent first."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(normalize_char(c, lowercase=lowercase, halfwidth=halfwidth)
                          for c in text if not c.isspace())
        chars = [c for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                 if n >= min_count and c not in SPECIAL_TOKENS]
        if max_size is not None:
            chars = chars[:max(0, max_size - len(SPECIAL_TOKENS))]
        return cls(SPECIAL_TOKENS + tuple(chars), lowercase=lowercase, halfwidth=halfwidth)

    def save(self, path: str | Path) -> None:
        with atomic_write(path) as handle:
            handle.write("\n".join(self.tokens) + "\n")

    def __len__(self) -> int:
        return len(self.tokens)

    def token_id(self, token: str) -> int:
        return self._index[token]

    @property
    def pad_id(self) -> int:
        return self._index[PAD]

    @property
    def cls_id(self) -> int:
        return self._index[CLS]

    @property
    def sep_id(self) -> int:
        return self._index[SEP]

    @property
    def unk_id(self) -> int:
        return self._index[UNK]

    @property
    def mask_id(self) -> int:
        return self._index.get(MASK, self.unk_id)

    @property
    def space_id(self) -> int:
        for tok in SPACE_FALLBACKS:
            if tok in self._index:
                return self._index[tok]
        return self.unk_id

    def char_id(self, char: str) -> int:
        cached = self._cache.get(char)
        if cached is not None:
            return cached
        if char.isspace():
            value = self.space_id
        else:
            norm = normalize_char(char, lowercase=self.lowercase, halfwidth=self.halfwidth)
            value = self._index.get(norm, self._index.get(char, self.unk_id))
        self._cache[char] = value
        return value

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text`` (no special tokens): ``len(result) == len(text)``."""
        get = self._cache.get
        return [get(c) if c in self._cache else self.char_id(c) for c in text]


def char_encode(text: str, vocab: CharVocab) -> list[int]:
    """``[CLS] + one id per character + [SEP]``."""
    return [vocab.cls_id, *vocab.encode(text), vocab.sep_id]


def plan_windows(length: int, *, max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` of overlapping windows that cover ``length`` characters.

    A text that fits gives one window. A longer one gets the fewest windows of at most
    ``max_chars`` that can share at least ``overlap`` characters with their neighbours, all
    of one size and evenly spaced (steps differ by one at most): a 130-character text with
    ``max_chars=126`` becomes two windows of 81, not 126 + 126 sharing 122 characters.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    if not 0 <= overlap < max_chars:
        raise ValueError(f"overlap must be in [0, max_chars), got {overlap}")
    if length <= max_chars:
        return [(0, length)]
    count = -(-(length - overlap) // (max_chars - overlap))  # ceil: fewest windows that fit
    size = -(-(length + (count - 1) * overlap) // count)  # ceil: <= max_chars by choice of count
    # Starts spread (length - size) over count - 1 steps; each step is <= size - overlap.
    return [(k * (length - size) // (count - 1), k * (length - size) // (count - 1) + size)
            for k in range(count)]


def window_owners(windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each window, the character range whose predictions it owns when merging.

    Overlaps are cut at their midpoint, so every character is owned by exactly one window and
    always by one in which it has context on both sides.
    """
    owned = []
    for k, (start, end) in enumerate(windows):
        lo = start if k == 0 else (start + windows[k - 1][1]) // 2
        hi = end if k == len(windows) - 1 else (windows[k + 1][0] + end) // 2
        owned.append((lo, hi))
    return owned


def merge_window_tags(windows: Sequence[tuple[int, int]], window_tags: Sequence[Sequence[str]]
                      ) -> list[str]:
    """Stitch per-window tag sequences into one sequence for the whole text."""
    merged: list[str] = []
    for (start, _), (lo, hi), tags in zip(windows, window_owners(windows), window_tags):
        merged.extend(tags[lo - start:hi - start])
    return merged


@dataclass(frozen=True)
class EncodedWindow:
    """Model inputs for ``text[start:end]``: ``input_ids[1 + i]`` is character ``start + i``."""

    start: int
    end: int
    input_ids: list[int]
    label_ids: list[int] | None = None  # one per character (no entries for [CLS]/[SEP])


def encode_example(text: str, vocab: CharVocab, *, spans: Sequence[Span] | None = None,
                   tag_to_id: dict[str, int] | None = None, scheme: str = "bio",
                   max_length: int = 512, overlap: int = 64) -> list[EncodedWindow]:
    """Split ``text`` into windows of at most ``max_length`` positions (specials included)
    and encode each; with ``spans`` and ``tag_to_id``, attach per-character label ids."""
    ids = vocab.encode(text)
    labels = None
    if spans is not None:
        if tag_to_id is None:
            raise ValueError("tag_to_id is needed with spans")
        labels = [tag_to_id[t] for t in spans_to_tags(spans, len(text), scheme=scheme)]
    out = []
    for start, end in plan_windows(len(text), max_chars=max_length - 2, overlap=overlap):
        window_ids = [vocab.cls_id, *ids[start:end], vocab.sep_id]
        out.append(EncodedWindow(start, end, window_ids,
                                 None if labels is None else labels[start:end]))
    return out


def decode_spans(tags: Sequence[str], *, scheme: str = "bio", offset: int = 0) -> list[Span]:
    """Per-character tags (positions after [CLS]) -> spans in string offsets, repairing leniently."""
    return [Span(s.start + offset, s.end + offset, s.label)
            for s in tags_to_spans(tags, scheme=scheme, mode="lenient")]


# --- Extra character features for models trained from scratch --------------------------
# A randomly initialised encoder learns word-level cues slowly; character bigrams and jieba's
# word boundaries hand it those cues directly. Id 0 is padding (also at [CLS]/[SEP]).

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
    norm = [" " if c.isspace() else normalize_char(c, lowercase=vocab.lowercase,
                                                   halfwidth=vocab.halfwidth) for c in text]
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
