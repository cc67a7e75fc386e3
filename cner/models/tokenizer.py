"""``tokenizer.json`` and ``tokenizer_config.json``: cner's encoding for transformers.

This module owns building them: a `tokenizers` WordLevel model over ``vocab.txt`` that gives
the ids of `CharVocab.encode`, one token per character (normalised for look-up exactly as cner
normalises, whitespace kept as the vocabulary's space token), and the config that makes
``AutoTokenizer.from_pretrained(DIR)`` load it as a ``PreTrainedTokenizerFast``. The model
directory (`cner.models.modeldir`) decides where they are written.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from cner.encoding.vocab import CLS, MASK, PAD, SEP, UNK, CharVocab, normalize_char
from cner.fileio import atomic_write


@functools.lru_cache(maxsize=1)
def _whitespace() -> tuple[str, ...]:
    """Every character `str.isspace` accepts (all below U+3001)."""
    return tuple(chr(c) for c in range(0x3001) if chr(c).isspace())


@functools.lru_cache(maxsize=4)
def _changed_by(lowercase: bool, halfwidth: bool) -> tuple[tuple[str, str], ...]:
    """``(char, look-up form)`` for every non-space character `normalize_char` changes, when
    the form is a fixed point (so one replacement step gives cner's look-up form)."""
    candidates: set[str] = set()
    if lowercase:
        candidates.update(c for c in map(chr, range(0x110000)) if c.lower() != c)
    if halfwidth:
        candidates.update(map(chr, range(0xFF01, 0xFF5F)))
    out = []
    for char in sorted(candidates):
        norm = normalize_char(char, lowercase=lowercase, halfwidth=halfwidth)
        if norm != char and not char.isspace() and normalize_char(
                norm, lowercase=lowercase, halfwidth=halfwidth) == norm:
            out.append((char, norm))
    return tuple(out)


def _char_class(chars) -> str:
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"


def _normalizer(vocab: CharVocab, index: dict[str, int], space: str):
    """Whitespace -> the space token, then each character -> its look-up form where the
    vocabulary has that form (`build_tokenizer`)."""
    from tokenizers import Regex, normalizers

    if vocab.space_id != vocab.unk_id:
        steps = [normalizers.Replace(Regex(_char_class(_whitespace())), space)]
    else:  # a character the vocabulary lacks reads as [UNK]
        absent = next(c for c in map(chr, range(0xE000, 0xF900)) if c not in index)
        steps = [normalizers.Replace(Regex(_char_class(_whitespace())), absent)]
    targets: dict[str, list[str]] = {}
    for char, norm in _changed_by(vocab.lowercase, vocab.halfwidth):
        if norm in index:
            targets.setdefault(norm, []).append(char)
    for norm, chars in sorted(targets.items()):
        steps.append(normalizers.Replace(Regex(_char_class(chars)), norm))
    return normalizers.Sequence(steps)


def build_tokenizer(vocab: CharVocab):
    """A `tokenizers.Tokenizer` that gives `CharVocab.encode`'s ids, one token per character.

    A WordLevel model over the vocabulary; the normaliser replaces each character by cner's
    look-up form where that form is in the vocabulary (full-width -> half-width and lower-case
    only if the model was trained so; a character whose look-up form is not in the vocabulary
    is looked up as it is, as cner does), and every whitespace character by the vocabulary's
    space token (``[SPACE]``, or ``[unused1]`` in hub vocabularies; ``[UNK]`` when it has
    neither). The pre-tokeniser splits every character; the post-processor adds
    ``[CLS] ... [SEP]`` (a pair: ``[CLS] a [SEP] b [SEP]``, type ids 0 then 1).

    How it differs from cner, which reads every character of the text as text: the special
    tokens written literally in a text (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``
    and the space token) are read as that one token, as every BERT tokenizer does; cner reads
    them character by character. Whitespace is never dropped: a space is one token, like any
    other character, so token ``i + 1`` is character ``i`` of the text.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers import processors

    tokens = list(vocab.tokens)
    index = {tok: i for i, tok in enumerate(tokens)}
    if len(index) != len(tokens):
        # a duplicated line: cner looks up its last occurrence, so must the tokenizer
        tokens = [tok if index[tok] == i else f"[cner-duplicate-{i}]" for i, tok in
                  enumerate(tokens)]
    tokenizer = Tokenizer(models.WordLevel({tok: i for i, tok in enumerate(tokens)},
                                           unk_token=UNK))
    space = tokens[vocab.space_id]
    tokenizer.normalizer = _normalizer(vocab, index, space)
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    specials = [tok for tok in (PAD, UNK, CLS, SEP, MASK) if tok in index]
    tokenizer.add_special_tokens([AddedToken(tok, special=True, normalized=False)
                                  for tok in specials])
    if vocab.space_id != vocab.unk_id:
        tokenizer.add_tokens([AddedToken(space, special=False, normalized=True)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, vocab.cls_id), (SEP, vocab.sep_id)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace(space, " "), decoders.Fuse()])
    return tokenizer


def tokenizer_config(vocab: CharVocab, max_length: int) -> dict:
    """``tokenizer_config.json``: a fast tokenizer with BERT's special tokens, no clean-up of
    spaces on decoding (a space is a character like any other here)."""
    values = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
              "padding_side": "right", "clean_up_tokenization_spaces": False}
    for key, tok in (("pad_token", PAD), ("unk_token", UNK), ("cls_token", CLS),
                     ("sep_token", SEP), ("mask_token", MASK)):
        if tok in vocab.tokens:
            values[key] = tok
    return values


def save_tokenizer(vocab: CharVocab, max_length: int, *, tokenizer: Path, config: Path
                   ) -> None:
    """Write ``tokenizer.json`` to ``tokenizer`` and ``tokenizer_config.json`` to ``config``."""
    with atomic_write(tokenizer) as handle:
        handle.write(build_tokenizer(vocab).to_str(pretty=False))
    with atomic_write(config) as handle:
        handle.write(json.dumps(tokenizer_config(vocab, max_length), ensure_ascii=False,
                                indent=1))
