"""Tag schemes: spans <-> tags for BIO, IOB1, BIOES, BMES and BILOU."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cner.errors import SchemeError
from cner.schemes import (
    SCHEMES,
    Span,
    check_scheme,
    convert_tags,
    detect_scheme,
    find_invalid,
    flatten_spans,
    label_set,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)

# --------------------------------------------------------------------------------------
# Hand-made cases, each written out in every scheme
# --------------------------------------------------------------------------------------

# (spans, length, {scheme: tags})
CASES = [
    pytest.param(
        [Span(0, 2, "PER"), Span(3, 4, "LOC")], 5,
        {"bio": "B-PER I-PER O B-LOC O",
         "iob1": "I-PER I-PER O I-LOC O",
         "bioes": "B-PER E-PER O S-LOC O",
         "bmes": "B-PER E-PER O S-LOC O",
         "bilou": "B-PER L-PER O U-LOC O"},
        id="two-char-and-single"),
    pytest.param(
        [Span(0, 3, "ORG")], 3,
        {"bio": "B-ORG I-ORG I-ORG",
         "iob1": "I-ORG I-ORG I-ORG",
         "bioes": "B-ORG I-ORG E-ORG",
         "bmes": "B-ORG M-ORG E-ORG",
         "bilou": "B-ORG I-ORG L-ORG"},
        id="three-char-middle-tag"),
    pytest.param(
        # adjacent entities of the same type: IOB1 needs B for the second one
        [Span(0, 2, "PER"), Span(2, 3, "PER"), Span(3, 5, "PER")], 5,
        {"bio": "B-PER I-PER B-PER B-PER I-PER",
         "iob1": "I-PER I-PER B-PER B-PER I-PER",
         "bioes": "B-PER E-PER S-PER B-PER E-PER",
         "bmes": "B-PER E-PER S-PER B-PER E-PER",
         "bilou": "B-PER L-PER U-PER B-PER L-PER"},
        id="adjacent-same-type"),
    pytest.param(
        # adjacent entities of different types: IOB1 keeps I
        [Span(0, 1, "PER"), Span(1, 3, "LOC")], 3,
        {"bio": "B-PER B-LOC I-LOC",
         "iob1": "I-PER I-LOC I-LOC",
         "bioes": "S-PER B-LOC E-LOC",
         "bmes": "S-PER B-LOC E-LOC",
         "bilou": "U-PER B-LOC L-LOC"},
        id="adjacent-different-type"),
    pytest.param(
        [Span(0, 1, "PER"), Span(1, 2, "PER")], 2,
        {"bio": "B-PER B-PER",
         "iob1": "I-PER B-PER",
         "bioes": "S-PER S-PER",
         "bmes": "S-PER S-PER",
         "bilou": "U-PER U-PER"},
        id="single-chars-adjacent"),
    pytest.param(
        [Span(1, 3, "PER.NAM"), Span(3, 4, "PER.NOM")], 4,
        {"bio": "O B-PER.NAM I-PER.NAM B-PER.NOM",
         "iob1": "O I-PER.NAM I-PER.NAM I-PER.NOM",
         "bioes": "O B-PER.NAM E-PER.NAM S-PER.NOM",
         "bmes": "O B-PER.NAM E-PER.NAM S-PER.NOM",
         "bilou": "O B-PER.NAM L-PER.NAM U-PER.NOM"},
        id="dotted-suffix-labels"),
    pytest.param(
        [Span(0, 2, "ORG-GOV"), Span(2, 3, "ORG-GOV")], 3,
        {"bio": "B-ORG-GOV I-ORG-GOV B-ORG-GOV",
         "iob1": "I-ORG-GOV I-ORG-GOV B-ORG-GOV",
         "bioes": "B-ORG-GOV E-ORG-GOV S-ORG-GOV",
         "bmes": "B-ORG-GOV E-ORG-GOV S-ORG-GOV",
         "bilou": "B-ORG-GOV L-ORG-GOV U-ORG-GOV"},
        id="label-containing-hyphen"),
    pytest.param([], 3, {s: "O O O" for s in SCHEMES}, id="no-entities"),
    pytest.param([], 0, {s: "" for s in SCHEMES}, id="empty"),
]


@pytest.mark.parametrize("spans, length, by_scheme", CASES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_spans_to_tags_and_back(spans, length, by_scheme, scheme):
    expected = by_scheme[scheme].split()
    assert spans_to_tags(spans, length, scheme=scheme) == expected
    assert tags_to_spans(expected, scheme=scheme) == sorted(spans)
    assert tags_to_spans(expected, scheme=scheme, mode="lenient") == sorted(spans)
    assert find_invalid(expected, scheme) == []


@pytest.mark.parametrize("spans, length, by_scheme", CASES)
def test_convert_tags_between_every_pair(spans, length, by_scheme):
    for source, target in itertools.permutations(SCHEMES, 2):
        got = convert_tags(by_scheme[source].split(), source=source, target=target)
        assert got == by_scheme[target].split(), (source, target)


def test_spans_are_sorted_whatever_the_input_order():
    spans = [Span(4, 5, "LOC"), Span(0, 2, "PER")]
    tags = spans_to_tags(spans, 6, scheme="bio")
    assert tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert tags_to_spans(tags) == [Span(0, 2, "PER"), Span(4, 5, "LOC")]


def test_labels_are_kept_whole():
    assert split_tag("B-PER.NAM", "bio") == ("B", "PER.NAM")
    assert split_tag("I-ORG-GOV", "bio") == ("I", "ORG-GOV")
    assert split_tag("M-LOC", "bmes") == ("I", "LOC")
    assert split_tag("L-LOC", "bilou") == ("E", "LOC")
    assert split_tag("U-LOC", "bilou") == ("S", "LOC")
    assert split_tag("O", "bioes") == ("O", None)


def test_dotted_labels_of_different_suffix_do_not_continue():
    tags = ["B-PER.NAM", "I-PER.NOM"]
    with pytest.raises(SchemeError):
        tags_to_spans(tags, scheme="bio")
    assert tags_to_spans(tags, scheme="bio", mode="lenient") == [Span(0, 1, "PER.NAM"),
                                                                 Span(1, 2, "PER.NOM")]


# --------------------------------------------------------------------------------------
# Scheme names, unknown tags, bad spans
# --------------------------------------------------------------------------------------

def test_check_scheme_aliases_and_unknown():
    assert check_scheme("IOB2") == "bio"
    assert check_scheme("BIO") == "bio"
    assert check_scheme("iobes") == "bioes"
    assert check_scheme("BMESO") == "bmes"
    assert check_scheme("IOB1") == "iob1"
    with pytest.raises(SchemeError, match="unknown tag scheme"):
        check_scheme("bioul2")


@pytest.mark.parametrize("scheme, tag", [
    ("bio", "X-PER"),
    ("bio", "E-PER"),      # a BIOES prefix is unknown in BIO
    ("bio", "S-PER"),
    ("bioes", "M-PER"),
    ("bmes", "I-PER"),     # BMES has M, not I
    ("bilou", "E-PER"),    # BILOU has L, not E
    ("bio", "B"),          # no label
    ("bio", "B-"),         # empty label
    ("bio", "PER"),
    ("bio", "o"),
])
@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_unknown_tags_raise_in_both_modes(scheme, tag, mode):
    with pytest.raises(SchemeError, match="unknown tag"):
        tags_to_spans(["O", tag, "O"], scheme=scheme, mode=mode)


def test_bad_mode_is_a_value_error():
    with pytest.raises(ValueError):
        tags_to_spans(["O"], mode="repair")


@pytest.mark.parametrize("spans, length, problem", [
    ([Span(0, 2, "PER"), Span(1, 3, "LOC")], 4, "overlaps"),
    ([Span(0, 3, "PER"), Span(1, 2, "LOC")], 4, "overlaps"),   # nested
    ([Span(2, 5, "PER")], 4, "outside"),
    ([Span(-1, 1, "PER")], 4, "outside"),
    ([Span(2, 2, "PER")], 4, "empty"),
])
def test_spans_to_tags_refuses_bad_spans(spans, length, problem):
    for scheme in SCHEMES:
        with pytest.raises(SchemeError, match=problem):
            spans_to_tags(spans, length, scheme=scheme)


# --------------------------------------------------------------------------------------
# Strict validation and lenient (conlleval) repair
# --------------------------------------------------------------------------------------

def test_strict_mode_lists_every_invalid_transition():
    tags = ["O", "I-PER", "O", "B-LOC", "I-ORG"]
    with pytest.raises(SchemeError) as info:
        tags_to_spans(tags, scheme="bio")
    message = str(info.value)
    assert "2 invalid" in message
    assert "position 1: O -> I-PER" in message
    assert "position 4: B-LOC -> I-ORG" in message
    assert "\n" not in message


def test_strict_mode_summarises_long_lists():
    tags = ["O", "I-PER"] * 8  # 8 invalid transitions
    with pytest.raises(SchemeError) as info:
        tags_to_spans(tags, scheme="bio")
    assert "8 invalid" in str(info.value)
    assert "and 3 more" in str(info.value)


@pytest.mark.parametrize("scheme, tags, positions", [
    ("bio", ["O", "I-PER", "B-LOC", "I-LOC", "I-ORG"], [1, 4]),
    ("bio", ["I-PER"], [0]),
    ("bio", ["B-PER", "I-PER", "O"], []),
    ("iob1", ["I-PER", "I-PER", "B-PER"], []),
    ("iob1", ["B-PER"], [0]),                     # B only right after a same-type chunk
    ("iob1", ["I-PER", "B-LOC"], [1]),
    ("iob1", ["I-PER", "O", "B-PER"], [2]),
    ("bioes", ["B-PER"], [1]),                    # chunk still open at the end
    ("bioes", ["B-PER", "O"], [1]),
    ("bioes", ["I-PER"], [0, 1]),
    ("bioes", ["E-PER"], [0]),
    ("bioes", ["B-PER", "E-LOC"], [1]),
    ("bioes", ["B-PER", "S-PER"], [1]),
    ("bioes", ["S-PER", "E-PER"], [1]),
    ("bioes", ["B-PER", "I-PER", "E-PER", "S-LOC", "O"], []),
    ("bmes", ["B-PER", "M-PER"], [2]),
    ("bmes", ["M-PER", "E-PER"], [0]),
    ("bilou", ["B-PER", "I-PER", "U-PER"], [2]),
    ("bilou", ["L-PER"], [0]),
])
def test_find_invalid_positions(scheme, tags, positions):
    found = find_invalid(tags, scheme)
    assert [v.position for v in found] == positions
    for v in found:
        assert v.previous == (tags[v.position - 1] if v.position > 0 else None)
        assert v.tag == (tags[v.position] if v.position < len(tags) else None)
    if positions:
        with pytest.raises(SchemeError):
            tags_to_spans(tags, scheme=scheme)


def test_find_invalid_reports_unknown_tags_at_their_position():
    found = find_invalid(["O", "B-PER", "Q-PER", "O"], "bio")
    unknown = [v for v in found if "unknown tag" in v.reason]
    assert [v.position for v in unknown] == [2]
    assert unknown[0].tag == "Q-PER"
    assert "position 2" in str(unknown[0])


def test_violation_renders_sentence_edges():
    (v,) = find_invalid(["I-PER"], "bio")
    assert str(v).startswith("position 0: <start> -> I-PER")
    (v,) = find_invalid(["B-PER"], "bioes")
    assert "B-PER -> <end>" in str(v)


@pytest.mark.parametrize("scheme, tags, spans", [
    # conlleval: a continuation tag that cannot continue starts an entity
    ("bio", ["O", "I-PER", "I-PER", "O"], [Span(1, 3, "PER")]),
    ("bio", ["I-PER"], [Span(0, 1, "PER")]),
    ("bio", ["B-PER", "I-LOC", "I-LOC"], [Span(0, 1, "PER"), Span(1, 3, "LOC")]),
    ("bio", ["B-PER", "O", "I-PER"], [Span(0, 1, "PER"), Span(2, 3, "PER")]),
    ("iob1", ["B-PER", "I-PER"], [Span(0, 2, "PER")]),
    ("iob1", ["O", "B-PER"], [Span(1, 2, "PER")]),
    ("bioes", ["B-PER", "O"], [Span(0, 1, "PER")]),
    ("bioes", ["B-PER"], [Span(0, 1, "PER")]),
    ("bioes", ["I-PER", "E-PER"], [Span(0, 2, "PER")]),
    ("bioes", ["E-PER"], [Span(0, 1, "PER")]),
    ("bioes", ["B-PER", "B-PER", "E-PER"], [Span(0, 1, "PER"), Span(1, 3, "PER")]),
    ("bioes", ["B-PER", "I-PER", "S-PER"], [Span(0, 2, "PER"), Span(2, 3, "PER")]),
    ("bioes", ["B-PER", "E-LOC"], [Span(0, 1, "PER"), Span(1, 2, "LOC")]),
    ("bioes", ["S-PER", "I-PER", "E-PER"], [Span(0, 1, "PER"), Span(1, 3, "PER")]),
    ("bmes", ["O", "M-LOC", "E-LOC"], [Span(1, 3, "LOC")]),
    ("bilou", ["B-ORG", "I-ORG", "O", "L-ORG"], [Span(0, 2, "ORG"), Span(3, 4, "ORG")]),
])
def test_lenient_mode_repairs_like_conlleval(scheme, tags, spans):
    assert find_invalid(tags, scheme) != []
    with pytest.raises(SchemeError):
        tags_to_spans(tags, scheme=scheme)
    assert tags_to_spans(tags, scheme=scheme, mode="lenient") == spans


# --------------------------------------------------------------------------------------
# detect_scheme, flatten_spans, label_set
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sequences, scheme", [
    ([["B-PER", "I-PER", "O"], ["O", "B-LOC"]], "bio"),
    ([["O", "O"]], "bio"),
    ([], "bio"),
    ([["I-PER", "I-PER", "O", "I-LOC"], ["O", "I-ORG", "B-ORG"]], "iob1"),
    ([["I-PER", "O"]], "iob1"),
    ([["B-PER", "E-PER", "S-LOC"]], "bioes"),
    ([["B-PER", "I-PER", "E-PER"]], "bioes"),
    ([["B-PER", "M-PER", "E-PER"], ["S-LOC"]], "bmes"),
    ([["B-PER", "L-PER", "U-LOC"]], "bilou"),
    ([["U-LOC", "O"]], "bilou"),
])
def test_detect_scheme(sequences, scheme):
    assert detect_scheme(sequences) == scheme


def test_detect_scheme_keeps_bio_when_iob1_is_also_invalid():
    # 'O I-PER' rules out BIO, 'O B-PER' rules out IOB1: the corpus is broken BIO
    assert detect_scheme([["O", "I-PER"], ["O", "B-PER"]]) == "bio"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_detect_scheme_on_generated_tags(scheme):
    spans = [Span(0, 3, "PER"), Span(3, 4, "PER"), Span(5, 7, "LOC")]
    tags = spans_to_tags(spans, 8, scheme=scheme)
    assert detect_scheme([tags, ["O"] * 3]) == scheme


def test_flatten_spans_keeps_the_outer_entity():
    book = Span(15, 35, "book")
    inner = [Span(16, 20, "company"), Span(23, 27, "company")]
    other = Span(0, 2, "name")
    kept, dropped = flatten_spans([inner[1], book, other, inner[0]])
    assert kept == [other, book]
    assert dropped == inner


def test_flatten_spans_crossing_spans_keep_longer_then_earlier():
    kept, dropped = flatten_spans([Span(2, 5, "B"), Span(0, 3, "A")])
    assert kept == [Span(0, 3, "A")] and dropped == [Span(2, 5, "B")]
    kept, dropped = flatten_spans([Span(0, 3, "A"), Span(2, 7, "B")])
    assert kept == [Span(2, 7, "B")] and dropped == [Span(0, 3, "A")]


def test_flatten_spans_leaves_flat_sets_alone():
    spans = [Span(0, 2, "A"), Span(2, 4, "A"), Span(5, 6, "B")]
    assert flatten_spans(spans) == (spans, [])


def test_label_set_has_every_prefix_of_the_scheme():
    assert label_set(["PER", "LOC", "PER"], "bio") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    tags = label_set(["PER"], "bmes")
    assert tags[0] == "O" and sorted(tags[1:]) == ["B-PER", "E-PER", "M-PER", "S-PER"]
    for scheme in SCHEMES:
        for tag in label_set(["A.x", "B-y"], scheme):
            split_tag(tag, scheme)  # every listed tag is a known tag


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

LABELS = ["PER", "LOC", "ORG", "PER.NAM", "ORG-GOV"]


@st.composite
def span_sets(draw, max_spans: int = 8):
    """Non-overlapping spans (adjacent ones included) and a text length that holds them."""
    pieces = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5), st.sampled_from(LABELS)),
                           max_size=max_spans))
    spans, pos = [], 0
    for gap, width, label in pieces:
        pos += gap
        spans.append(Span(pos, pos + width, label))
        pos += width
    return spans, pos + draw(st.integers(0, 3))


@settings(max_examples=300, deadline=None)
@given(span_sets())
def test_property_spans_tags_spans_is_identity(data):
    spans, length = data
    encoded = {}
    for scheme in SCHEMES:
        tags = spans_to_tags(spans, length, scheme=scheme)
        encoded[scheme] = tags
        assert len(tags) == length
        assert find_invalid(tags, scheme) == []
        assert tags_to_spans(tags, scheme=scheme) == spans
        assert tags_to_spans(tags, scheme=scheme, mode="lenient") == spans
        assert set(tags) <= set(label_set(LABELS, scheme))
        # the tags mark exactly the characters inside entities
        inside = {i for s in spans for i in range(s.start, s.end)}
        assert {i for i, t in enumerate(tags) if t != "O"} == inside
    for source, target in itertools.permutations(SCHEMES, 2):
        assert convert_tags(encoded[source], source=source, target=target) == encoded[target]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCHEMES), st.data())
def test_property_lenient_repair_gives_valid_spans(scheme, data):
    vocab = label_set(["PER", "LOC"], scheme)
    tags = data.draw(st.lists(st.sampled_from(vocab), max_size=25))
    spans = tags_to_spans(tags, scheme=scheme, mode="lenient")
    # sorted, non-overlapping, inside the sequence, and covering every non-O tag of its label
    assert spans == sorted(spans)
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    covered = {}
    for s in spans:
        assert 0 <= s.start < s.end <= len(tags)
        for i in range(s.start, s.end):
            covered[i] = s.label
    assert covered == {i: split_tag(t, scheme)[1] for i, t in enumerate(tags) if t != "O"}
    # repair is idempotent: re-encoding gives a valid sequence with the same spans
    fixed = spans_to_tags(spans, len(tags), scheme=scheme)
    assert find_invalid(fixed, scheme) == []
    assert tags_to_spans(fixed, scheme=scheme) == spans
    if not find_invalid(tags, scheme):
        assert fixed == tags
