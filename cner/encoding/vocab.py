"""The character vocabulary: one model position per character, and its look-up form.

One model position per Python string character (code point), whatever it is: whitespace,
Latin letters, digits, full-width forms, emoji. So position ``i`` of a window that starts at
character ``s`` is ``text[s + i]`` and offsets need no alignment table. WordPiece would
merge ``2024`` into one piece and break that; here every character is looked up on its own.
Normalisation (full-width -> half-width, lower-casing) changes only the vocabulary look-up,
never the text or an offset.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cner.errors import ModelError
from cner.fileio import atomic_write

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


def read_utf8(path: Path, name: str) -> str:
    """The text of a token-list file (``vocab.txt``, ``bigrams.txt``); a file that is not
    UTF-8 or cannot be read is a `ModelError` that calls it ``name``."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{name} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ModelError(f"cannot read {name}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class CharVocab:
    """A WordPiece-style ``vocab.txt`` used one character at a time."""

    tokens: tuple[str, ...]
    lowercase: bool = False
    halfwidth: bool = False
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _cache: dict[str, int] = field(init=False, repr=False, compare=False)
    _forms: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {tok: i for i, tok in enumerate(self.tokens)}
        missing = [t for t in (PAD, UNK, CLS, SEP) if t not in index]
        if missing:
            raise ModelError(f"vocabulary lacks the special token(s) {', '.join(missing)}")
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "_forms", {})

    @classmethod
    def load(cls, path: str | Path, *, lowercase: bool = False, halfwidth: bool = False) -> CharVocab:
        """One token per line (UTF-8; LF or CRLF line ends); a file that cannot be read or
        lacks a special token is a `ModelError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"vocabulary file {path} not found")
        text = read_utf8(path, f"vocabulary file {path}")
        if text.startswith("\ufeff"):
            text = text[1:]
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        if tokens and all(t.endswith("\r") for t in tokens):  # CRLF line ends
            tokens = [t[:-1] for t in tokens]
        try:
            return cls(tuple(tokens), lowercase=lowercase, halfwidth=halfwidth)
        except ModelError as exc:
            raise ModelError(f"vocabulary file {path}: {exc}") from None

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
        """Write one token per line, atomically (`cner.fileio.atomic_write`)."""
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

    def char_forms(self, text: str) -> list[str]:
        """Each character's look-up form (`normalize_char`; whitespace: a space), cached per
        character: features read it for every character of every text."""
        forms = self._forms
        return [forms[c] if c in forms else self._char_form(c) for c in text]

    def _char_form(self, char: str) -> str:
        form = " " if char.isspace() else normalize_char(char, lowercase=self.lowercase,
                                                         halfwidth=self.halfwidth)
        self._forms[char] = form
        return form

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text`` (no special tokens): ``len(result) == len(text)``."""
        get = self._cache.get
        return [get(c) if c in self._cache else self.char_id(c) for c in text]
