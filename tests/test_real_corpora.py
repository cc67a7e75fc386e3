"""The public corpora in ../shared/corpora, read as published.

Expected counts are copied from each corpus's README.md (msra_ner, peoples_daily_ner,
cluener2020); everything else is compared with the raw files, parsed independently here.
Each file is read once per module (MSRA train: 45,000 sentences, a few seconds).
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from cner.data.cluener import read_cluener
from cner.data.conll import read_conll_sentences, sentence_to_example
from cner.data.formats import convert_corpus, detect_format, read_corpus
from cner.data.spanjsonl import read_span_jsonl
from cner.schemes import SCHEMES, Span, detect_scheme, flatten_spans, spans_to_tags, tags_to_spans

pytestmark = pytest.mark.corpora

# From the READMEs: sentences, characters, entities per type.
COLUMN_CORPORA = {
    "msra_ner/msra_train_bio": dict(split="train", sentences=45_000, characters=2_171_573,
                                    PER=17_615, LOC=36_860, ORG=20_584),
    "msra_ner/msra_test_bio": dict(split="test", sentences=3_442, characters=172_601,
                                   PER=1_973, LOC=2_886, ORG=1_331),
    "peoples_daily_ner/example.dev": dict(split="dev", sentences=2_318, characters=109_870,
                                          PER=884, LOC=1_951, ORG=984),
    "peoples_daily_ner/example.test": dict(split="test", sentences=4_636, characters=219_197,
                                           PER=1_864, LOC=3_658, ORG=2_185),
}
MSRA_TRAIN_TAGS = {"B-PER": 17_615, "I-PER": 34_123, "B-LOC": 36_860, "I-LOC": 49_989,
                    "B-ORG": 20_584, "I-ORG": 82_677, "O": 1_929_725}

CLUENER = {
    "train": dict(rows=10_748, entities=23_971, per_type=dict(
        address=2_891, book=1_139, company=2_980, game=2_376, government=1_835, movie=1_123,
        name=3_755, organization=3_210, position=3_141, scene=1_521)),
    "dev": dict(rows=1_343, entities=3_072, per_type=dict(
        address=373, book=154, company=378, game=295, government=247, movie=151, name=465,
        organization=367, position=433, scene=209)),
}
CLUENER_TEST_ROWS = 1_345
CLUENER_NESTED_LINE = 1_507  # the one train line whose book span contains two company spans

# Every scheme once, ending where it started: BIO -> BIOES -> BMES -> IOB1 -> BILOU -> BIO.
CHAIN = ("bio", "bioes", "bmes", "iob1", "bilou", "bio")
assert set(CHAIN) == set(SCHEMES)


def chain_round_trip(spans, length, start_tags):
    """Re-tag through every scheme, decoding strictly at each step; each decode must give
    ``spans`` back and the chain must end on ``start_tags``."""
    tags = list(start_tags)
    for source, target in zip(CHAIN, CHAIN[1:]):
        decoded = tags_to_spans(tags, scheme=source)
        if decoded != spans:
            return f"{source} decode differs: {decoded} != {spans}"
        tags = spans_to_tags(decoded, length, scheme=target)
    return None if tags == list(start_tags) else f"chain ends on {tags}"


# --------------------------------------------------------------------------------------
# The conventions of conftest
# --------------------------------------------------------------------------------------

def test_missing_corpus_skips_but_fails_under_ci(corpus_file, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs ../shared/corpora"):
        corpus_file("no_such_corpus/file")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no_such_corpus"):
        corpus_file("no_such_corpus/file")


def readme_rows(text):
    """The cells of every markdown table row, stripped."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.lstrip().startswith("|")]


def test_expected_counts_are_the_readme_counts(corpus_file):
    """Guard the constants above against typos: each row is in the README's counts table."""
    def has_row(readme, split, *numbers):
        cells = [f"{n:,}" if isinstance(n, int) else n for n in numbers]
        return any(row[0] == split and row[1:1 + len(cells)] == cells for row in readme_rows(readme))

    msra = corpus_file("msra_ner/README.md").read_text(encoding="utf-8")
    pd = corpus_file("peoples_daily_ner/README.md").read_text(encoding="utf-8")
    for name, c in COLUMN_CORPORA.items():
        readme = msra if name.startswith("msra") else pd
        assert has_row(readme, c["split"], c["sentences"], c["characters"], c["PER"], c["LOC"],
                       c["ORG"]), name
    assert ", ".join(f"{t} {n:,}" for t, n in MSRA_TRAIN_TAGS.items()) in msra
    clue = corpus_file("cluener2020/README.md").read_text(encoding="utf-8")
    for split, c in CLUENER.items():
        assert has_row(clue, split, c["rows"], c["entities"]), split
        listed = ", ".join(f"{t} {n:,}" for t, n in c["per_type"].items())
        assert f"Entities per type in {split}: {listed}." in clue
    assert has_row(clue, "test", CLUENER_TEST_ROWS, "no labels")
    assert f"line {CLUENER_NESTED_LINE:,}" in clue


# --------------------------------------------------------------------------------------
# MSRA and People's Daily: character-per-line BIO files
# --------------------------------------------------------------------------------------

class ColumnCorpus:
    def __init__(self, path):
        self.path = path
        self.sentences = list(read_conll_sentences(path))
        self.scheme = detect_scheme([s.tags for s in self.sentences])
        self.examples = [sentence_to_example(s, scheme="bio") for s in self.sentences]


@pytest.fixture(scope="module", params=list(COLUMN_CORPORA))
def column(request, corpus_file):
    return request.param, ColumnCorpus(corpus_file(request.param))


def test_column_counts_match_readme(column):
    name, corpus = column
    expected = COLUMN_CORPORA[name]
    labels = Counter(s.label for ex in corpus.examples for s in ex.spans)
    assert len(corpus.examples) == expected["sentences"]
    assert sum(len(ex.text) for ex in corpus.examples) == expected["characters"]
    assert dict(labels) == {k: expected[k] for k in ("PER", "LOC", "ORG")}


def test_column_files_are_bio_with_one_character_per_line(column):
    name, corpus = column
    assert corpus.scheme == "bio"
    assert detect_format(corpus.path) == "conll"
    assert all(len(tok) == 1 and not tok.isspace() for s in corpus.sentences for tok in s.tokens)
    lines = [n for s in corpus.sentences for n in s.token_lines]
    assert lines == sorted(set(lines))  # every line read once, in order


def test_spans_reproduce_every_original_tag(column):
    name, corpus = column
    for sentence, ex in zip(corpus.sentences, corpus.examples):
        assert ex.text == "".join(sentence.tokens)
        tags = spans_to_tags(ex.spans, len(ex.text), scheme="bio")
        assert tags == list(sentence.tags), f"{name}:{sentence.line}"


def test_scheme_round_trips_are_the_identity(column):
    name, corpus = column
    for sentence, ex in zip(corpus.sentences, corpus.examples):
        problem = chain_round_trip(list(ex.spans), len(ex.text), sentence.tags)
        assert problem is None, f"{name}:{sentence.line}: {problem}"


def test_span_lengths_match_tag_counts(column):
    """Raw tag counts (MSRA train: from the README) tie the reader to the spans: the
    characters inside entities of a type are its B- plus I- tags."""
    name, corpus = column
    tags = Counter(t for s in corpus.sentences for t in s.tags)
    if name == "msra_ner/msra_train_bio":
        assert dict(tags) == MSRA_TRAIN_TAGS
    for label in ("PER", "LOC", "ORG"):
        covered = sum(s.end - s.start for ex in corpus.examples for s in ex.spans if s.label == label)
        assert covered == tags[f"B-{label}"] + tags[f"I-{label}"]


def test_msra_test_slice_converts_through_files(corpus_file, tmp_path):
    source = corpus_file("msra_ner/msra_test_bio")
    lines = source.read_text(encoding="utf-8").split("\n")
    blanks = [i for i, line in enumerate(lines) if line == ""]
    piece = tmp_path / "msra_test_head.bio"
    piece.write_text("\n".join(lines[:blanks[399] + 1]) + "\n", encoding="utf-8")  # 400 sentences
    original = read_corpus(piece).examples
    assert len(original) == 400
    for scheme in SCHEMES:
        tagged = tmp_path / f"head.{scheme}"
        report = convert_corpus(piece, tagged, to="conll", scheme=scheme)
        assert (report.examples, report.dropped_nested) == (400, 0)
        assert read_corpus(tagged).scheme == scheme  # detected from the tags written
        back = tmp_path / f"head.{scheme}.jsonl"
        convert_corpus(tagged, back, to="jsonl", source_scheme=scheme)
        got = list(read_span_jsonl(back))
        assert [(e.text, e.spans) for e in got] == [(e.text, e.spans) for e in original]


# --------------------------------------------------------------------------------------
# CLUENER2020: JSON lines with inclusive ends
# --------------------------------------------------------------------------------------

class JsonCorpus:
    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as handle:
            self.objects = [(number, json.loads(line)) for number, line in enumerate(handle, 1)
                            if line.strip()]
        self.examples = list(read_cluener(path))


@pytest.fixture(scope="module", params=list(CLUENER))
def cluener(request, corpus_file):
    return request.param, JsonCorpus(corpus_file(f"cluener2020/{request.param}.json"))


def source_spans(obj):
    """(start, exclusive end, label, mention) for every span of a source object."""
    return [(start, end + 1, label, mention)
            for label, mentions in obj.get("label", {}).items()
            for mention, pairs in mentions.items()
            for start, end in pairs]


def test_cluener_source_spans_match_their_mentions(cluener):
    split, corpus = cluener
    for number, obj in corpus.objects:
        for start, end, _, mention in source_spans(obj):
            assert obj["text"][start:end] == mention, f"{split}.json:{number}"


def test_cluener_reader_keeps_every_span(cluener):
    split, corpus = cluener
    assert len(corpus.examples) == len(corpus.objects)
    for (number, obj), ex in zip(corpus.objects, corpus.examples):
        assert (ex.line, ex.text) == (number, obj["text"])
        expected = sorted(Span(s, e, label) for s, e, label, _ in source_spans(obj))
        assert list(ex.spans) == expected
        mentions = {(s, e, label): m for s, e, label, m in source_spans(obj)}
        for span in ex.spans:
            assert ex.text[span.start:span.end] == mentions[(span.start, span.end, span.label)]


def test_cluener_counts_match_readme(cluener):
    split, corpus = cluener
    expected = CLUENER[split]
    per_type = Counter(s.label for ex in corpus.examples for s in ex.spans)
    assert len(corpus.examples) == expected["rows"]
    assert sum(per_type.values()) == expected["entities"]
    assert dict(per_type) == expected["per_type"]
    assert max(len(ex.text) for ex in corpus.examples) <= 50


def test_cluener_only_the_nested_spans_are_dropped(cluener):
    split, corpus = cluener
    dropped = {ex.line: flatten_spans(ex.spans)[1] for ex in corpus.examples}
    dropped = {line: spans for line, spans in dropped.items() if spans}
    if split == "dev":
        assert dropped == {}
        return
    assert list(dropped) == [CLUENER_NESTED_LINE]
    (ex,) = [e for e in corpus.examples if e.line == CLUENER_NESTED_LINE]
    (book,) = [s for s in ex.spans if s.label == "book"]
    lost = dropped[CLUENER_NESTED_LINE]
    assert len(lost) == 2 and {s.label for s in lost} == {"company"}
    assert all(book.start <= s.start and s.end <= book.end for s in lost)
    assert sum(len(v) for v in dropped.values()) == 2


def test_cluener_scheme_round_trips_are_the_identity(cluener):
    split, corpus = cluener
    for ex in corpus.examples:
        kept, _ = flatten_spans(ex.spans)
        bio = spans_to_tags(kept, len(ex.text), scheme="bio")
        problem = chain_round_trip(kept, len(ex.text), bio)
        assert problem is None, f"{split}.json:{ex.line}: {problem}"


def test_cluener_test_split_reads_unlabelled_with_ids(corpus_file):
    path = corpus_file("cluener2020/test.json")
    examples = list(read_cluener(path))
    with open(path, encoding="utf-8") as handle:
        objects = [json.loads(line) for line in handle if line.strip()]
    assert len(examples) == CLUENER_TEST_ROWS == len(objects)
    assert all(ex.spans == () for ex in examples)
    assert [ex.id for ex in examples] == [str(obj["id"]) for obj in objects]
    assert len({ex.id for ex in examples}) == CLUENER_TEST_ROWS
    assert [ex.text for ex in examples] == [obj["text"] for obj in objects]
    assert detect_format(path) == "cluener"


def test_cluener_train_slice_converts_through_files(corpus_file, tmp_path):
    source = corpus_file("cluener2020/train.json")
    with open(source, encoding="utf-8") as handle:
        head = [next(handle) for _ in range(1_600)]  # includes the nested line 1,507
    piece = tmp_path / "train_head.json"
    piece.write_text("".join(head), encoding="utf-8")
    original = list(read_cluener(piece))
    flat = [(ex.text, tuple(flatten_spans(ex.spans)[0])) for ex in original]
    for scheme in SCHEMES:
        tagged = tmp_path / f"train_head.{scheme}"
        report = convert_corpus(piece, tagged, to="conll", scheme=scheme)
        assert report.examples == 1_600 and report.dropped_nested == 2
        assert report.entities == sum(len(s) for _, s in flat)
        back = tmp_path / f"train_head.{scheme}.jsonl"
        convert_corpus(tagged, back, to="jsonl", source_scheme=scheme)
        assert [(e.text, e.spans) for e in read_span_jsonl(back)] == flat
    # cluener -> jsonl -> cluener keeps the nested spans too
    jsonl = tmp_path / "train_head.jsonl"
    again = tmp_path / "train_head_again.json"
    assert convert_corpus(piece, jsonl, to="jsonl").dropped_nested == 0
    convert_corpus(jsonl, again, to="cluener")
    assert [(e.text, e.spans) for e in read_cluener(again)] == [(e.text, e.spans) for e in original]
