"""Character-level encoding: one id per code point, windows, and the map back to offsets."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cner.config import load_config
from cner.data.example import Example
from cner.encoding.features import Featurizer
from cner.encoding.vocab import CLS, PAD, SEP, SPACE, SPECIAL_TOKENS, UNK, CharVocab, normalize_char
from cner.encoding.windows import merge_windows, plan_windows, window_owners
from cner.errors import ModelError
from cner.schemes import SCHEMES, Span, label_set, spans_to_tags, tags_to_spans
from cner.tasks.ner import encode_corpus

# Arbitrary Unicode: astral-plane characters, whitespace runs, control characters, combining
# marks; hypothesis's text() already covers all planes, the sampled pieces make runs likely.
PIECES = st.sampled_from(["  ", "\t\n", "\u3000\u3000", "\r\n", "\x00", "\x1c", "\u2028", "😀",
                          "𠀀", "Ａｂ", "e\u0301", "İ", "中文", "2024"])
TEXTS = st.lists(st.one_of(st.text(max_size=8), PIECES), max_size=8).map("".join)

LABELS = ["PER", "LOC", "ORG.NAM"]


@st.composite
def text_with_spans(draw, max_len: int = 60):
    text = draw(TEXTS.filter(lambda t: len(t) <= max_len) | st.text(max_size=max_len))
    spans, pos = [], 0
    while pos < len(text):
        pos += draw(st.integers(0, 4))
        width = draw(st.integers(1, 6))
        if pos + width > len(text) or not draw(st.booleans()):
            break
        spans.append(Span(pos, pos + width, draw(st.sampled_from(LABELS))))
        pos += width
    return text, spans


# --------------------------------------------------------------------------------------
# CharVocab
# --------------------------------------------------------------------------------------

def test_vocab_needs_special_tokens():
    with pytest.raises(ModelError, match=r"\[UNK\]"):
        CharVocab((PAD, CLS, SEP, "a"))


def test_build_counts_characters_most_frequent_first():
    vocab = CharVocab.build(["abca", "b a\n"], min_count=2)
    assert vocab.tokens[:len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert vocab.tokens[len(SPECIAL_TOKENS):] == ("a", "b")  # 'c' is too rare, ' ' never counted
    small = CharVocab.build(["aaabbc"], max_size=len(SPECIAL_TOKENS) + 1)
    assert small.tokens[len(SPECIAL_TOKENS):] == ("a",)


def test_whitespace_maps_to_space_and_unknown_to_unk():
    vocab = CharVocab.build(["中文abc"])
    ids = vocab.encode("中 x\t文\u3000😀\n")
    assert ids == [vocab.token_id("中"), vocab.space_id, vocab.unk_id, vocab.space_id,
                   vocab.token_id("文"), vocab.space_id, vocab.unk_id, vocab.space_id]
    assert vocab.space_id == vocab.token_id(SPACE) != vocab.unk_id
    assert vocab.unk_id == vocab.token_id(UNK)


def test_space_falls_back_to_unused1_then_unk():
    hub = CharVocab((PAD, "[unused1]", UNK, CLS, SEP, "中"))
    assert hub.encode(" 中") == [1, 5]
    bare = CharVocab((PAD, UNK, CLS, SEP))
    assert bare.encode(" ") == [bare.unk_id]


def test_normalisation_changes_the_id_not_the_length():
    vocab = CharVocab.build(["abc!1 "], lowercase=True, halfwidth=True)
    text = "ＡBｃ！１\u3000"  # full-width A, upper B, full-width c, ！, １, ideographic space
    ids = vocab.encode(text)
    assert len(ids) == len(text)
    assert ids == [vocab.token_id(c) for c in "abc!1"] + [vocab.space_id]
    plain = CharVocab.build(["abc!1 "])
    assert plain.encode("Ａ") == [plain.unk_id]
    assert plain.encode("a") == [plain.token_id("a")]


def test_normalize_char_is_always_one_character():
    assert normalize_char("Ａ", lowercase=True, halfwidth=True) == "a"
    assert normalize_char("Ａ", halfwidth=True) == "A"
    assert normalize_char("\u3000", halfwidth=True) == " "
    assert normalize_char("İ", lowercase=True) == "İ"   # lower() would give two code points
    assert normalize_char("中", lowercase=True, halfwidth=True) == "中"


@given(TEXTS)
def test_cached_char_forms_equal_normalize_char_every_time(text):
    """`CharVocab.char_forms` (the bigram feature's input) caches each character's form; the
    forms stay those `normalize_char` gives (whitespace: a space), however the cache was
    filled, and one per character."""
    for lowercase, halfwidth in ((True, True), (False, True), (True, False)):
        vocab = CharVocab.build(["Ａa"], lowercase=lowercase, halfwidth=halfwidth)
        expected = [" " if c.isspace() else normalize_char(c, lowercase=lowercase,
                                                           halfwidth=halfwidth) for c in text]
        assert vocab.char_forms(text) == expected
        assert vocab.char_forms(text[::-1]) == expected[::-1]  # now from the cache


def test_build_with_normalisation_merges_forms():
    vocab = CharVocab.build(["ＡａA"], lowercase=True, halfwidth=True)
    assert vocab.tokens[len(SPECIAL_TOKENS):] == ("a",)


def test_save_load_round_trip(tmp_path):
    vocab = CharVocab.build(["中文 abc😀\x1f\u2028é"], lowercase=True)
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    loaded = CharVocab.load(path, lowercase=True)
    assert loaded == vocab
    assert loaded.encode("中A😀 x") == vocab.encode("中A😀 x")
    with pytest.raises(ModelError, match="not found"):
        CharVocab.load(tmp_path / "missing.txt")


@settings(max_examples=150, deadline=None)
@given(TEXTS)
def test_property_save_load_round_trip(tmp_path_factory, text):
    vocab = CharVocab.build([text])
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.save(path)
    assert CharVocab.load(path).tokens == vocab.tokens


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.booleans(), st.booleans())
def test_property_one_id_per_character(text, lowercase, halfwidth):
    vocab = CharVocab.build([text[: len(text) // 2]], lowercase=lowercase, halfwidth=halfwidth)
    ids = vocab.encode(text)
    assert len(ids) == len(text)
    for char, i in zip(text, ids):
        if char.isspace():
            assert i == vocab.space_id
        else:
            norm = normalize_char(char, lowercase=lowercase, halfwidth=halfwidth)
            assert len(norm) == 1
            expected = norm if norm in vocab.tokens else char if char in vocab.tokens else UNK
            assert vocab.tokens[i] == expected
    # a vocabulary built from the text itself knows every non-space character of it
    own = CharVocab.build([text], lowercase=lowercase, halfwidth=halfwidth)
    assert all(i != own.unk_id for c, i in zip(text, own.encode(text)) if not c.isspace())
    window = Featurizer(own).window(Featurizer(own).features(text), 0, len(text))
    assert window["input_ids"] == [own.cls_id, *own.encode(text), own.sep_id]


# --------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------

def test_plan_windows_examples():
    assert plan_windows(0, max_chars=4, overlap=1) == [(0, 0)]
    assert plan_windows(4, max_chars=4, overlap=1) == [(0, 4)]
    assert plan_windows(10, max_chars=4, overlap=1) == [(0, 4), (3, 7), (6, 10)]
    assert plan_windows(9, max_chars=4, overlap=0) == [(0, 3), (3, 6), (6, 9)]
    # Just over the limit: two windows of half the text plus the overlap, not two full ones.
    assert plan_windows(130, max_chars=126, overlap=32) == [(0, 81), (49, 130)]
    with pytest.raises(ValueError):
        plan_windows(10, max_chars=4, overlap=4)
    with pytest.raises(ValueError):
        plan_windows(10, max_chars=0, overlap=0)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 300), st.integers(1, 40), st.data())
def test_property_windows_cover_and_owners_partition(length, max_chars, data):
    overlap = data.draw(st.integers(0, max_chars - 1))
    windows = plan_windows(length, max_chars=max_chars, overlap=overlap)
    assert windows[0][0] == 0 and windows[-1][1] == length
    for start, end in windows:
        assert 0 <= start <= end <= length and end - start <= max_chars
    for (s1, e1), (s2, e2) in zip(windows, windows[1:]):
        assert s1 < s2 and e1 < e2
        assert e1 - s2 >= overlap                 # at least the stated overlap...
    if length > max_chars:
        sizes = {e - s for s, e in windows}
        steps = {s2 - s1 for (s1, _), (s2, _) in zip(windows, windows[1:])}
        assert len(sizes) == 1 and max(steps) - min(steps) <= 1  # one size, evenly spaced
        # The fewest windows: one fewer could not cover the text with the overlap.
        count = len(windows)
        assert (count - 1) * max_chars < length + (count - 2) * overlap
    owners = window_owners(windows)
    assert owners[0][0] == 0 and owners[-1][1] == length
    for (lo1, hi1), (lo2, _) in zip(owners, owners[1:]):
        assert hi1 == lo2
    for (start, end), (lo, hi) in zip(windows, owners):
        assert start <= lo <= hi <= end


@settings(max_examples=300, deadline=None)
@given(text_with_spans(), st.integers(6, 20), st.sampled_from(SCHEMES), st.data())
def test_property_windows_round_trip_spans(data_text, max_length, scheme, data):
    """The code that runs: training windows (`encode_corpus`), then the inference merge
    (`merge_windows`) and lenient decoding (`tags_to_spans`, as `Predictor.entities`)."""
    text, spans = data_text
    overlap = data.draw(st.integers(0, max_length - 3))
    cfg = load_config(None, [f"data.max_length={max_length}", f"data.overlap={overlap}",
                             f"model.tag_scheme={scheme}"])
    featurizer = Featurizer(CharVocab.build([text]))
    tags = label_set(LABELS, scheme)
    windows = encode_corpus([Example(text, tuple(spans))], featurizer, tags, cfg)
    if not text:
        assert windows == []
        return
    planned = plan_windows(len(text), max_chars=max_length - 2, overlap=overlap)
    assert len(windows) == len(planned)
    ids = featurizer.vocab.encode(text)
    gold = spans_to_tags(spans, len(text), scheme=scheme)
    covered = set()
    for (inputs, labels), (start, end) in zip(windows, planned):
        assert len(inputs["input_ids"]) == end - start + 2 <= max_length
        assert inputs["input_ids"] == [featurizer.vocab.cls_id, *ids[start:end],
                                       featurizer.vocab.sep_id]
        assert [tags[i] for i in labels] == gold[start:end]  # one label per character
        # spans decoded inside one window lie within a gold span (a window may cut an
        # entity); every gold span inside the window comes back whole
        local = [Span(x.start + start, x.end + start, x.label) for x in
                 tags_to_spans([tags[i] for i in labels], scheme=scheme, mode="lenient")]
        for x in local:
            assert any(g.start <= x.start and x.end <= g.end and g.label == x.label
                       for g in spans)
        assert {g for g in spans if start <= g.start and g.end <= end} <= set(local)
        covered.update(range(start, end))
    assert covered == set(range(len(text)))
    merged = merge_windows(planned, [[tags[i] for i in labels] for _, labels in windows])
    assert merged == gold
    decoded = tags_to_spans(merged, scheme=scheme, mode="lenient")
    assert decoded == spans and spans == sorted(spans, key=lambda x: x.start)
    assert [text[x.start:x.end] for x in decoded] == [text[g.start:g.end] for g in spans]


def test_merge_uses_the_owning_window():
    windows = [(0, 4), (2, 6)]  # owners: [0, 3) and [3, 6)
    merged = merge_windows(windows, [["a0", "a1", "a2", "a3"], ["b2", "b3", "b4", "b5"]])
    assert merged == ["a0", "a1", "a2", "b3", "b4", "b5"]


def test_astral_characters_are_one_position():
    featurizer = Featurizer(CharVocab.build(["𠀀😀"]))
    text = "😀𠀀a"
    cfg = load_config(None, ["data.max_length=16", "data.overlap=2"])
    ((inputs, labels),) = encode_corpus([Example(text, (Span(1, 2, "X"),))], featurizer,
                                        ["O", "B-X", "I-X"], cfg)
    assert len(inputs["input_ids"]) == 5 and labels == [0, 1, 0]
