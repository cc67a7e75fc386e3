"""Corpus readers and writers on small hand-written files."""
from __future__ import annotations

import io
import json

import pytest

from cner.data.cluener import read_cluener, write_cluener
from cner.data.conll import read_conll, read_conll_sentences, split_columns, write_conll
from cner.data.example import Example
from cner.data.formats import convert_corpus, detect_format, read_corpus
from cner.data.spanjsonl import read_span_jsonl, write_span_jsonl
from cner.errors import InputError
from cner.schemes import SCHEMES, Span, spans_to_tags


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def texts_and_spans(examples):
    return [(ex.text, ex.spans) for ex in examples]


# The reference: two sentences, 中国人 (LOC 0:2) and 张三在北京 (PER 0:2, LOC 3:5)
EXPECTED = [("中国人", (Span(0, 2, "LOC"),)),
            ("张三在北京", (Span(0, 2, "PER"), Span(3, 5, "LOC")))]
ROWS = [[("中", "B-LOC"), ("国", "I-LOC"), ("人", "O")],
        [("张", "B-PER"), ("三", "I-PER"), ("在", "O"), ("北", "B-LOC"), ("京", "I-LOC")]]


def column_text(sep="\t", newline="\n", middle=None, trailing_newline=True, blank=""):
    sentences = []
    for rows in ROWS:
        lines = [sep.join([tok, *([middle] if middle else []), tag]) for tok, tag in rows]
        sentences.append(newline.join(lines))
    text = (newline + blank + newline).join(sentences)
    return text + (newline if trailing_newline else "")


# --------------------------------------------------------------------------------------
# CoNLL column files
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [
    dict(sep="\t"),
    dict(sep=" "),
    dict(sep="\t", middle="NR"),
    dict(sep=" ", middle="NR"),
    dict(sep="\t", newline="\r\n"),
    dict(sep=" ", newline="\r\n"),
    dict(sep="\t", trailing_newline=False),
    dict(sep=" ", trailing_newline=False),
    dict(sep="\t", blank="\n\n"),             # several blank lines between sentences
    dict(sep=" ", blank="  \t"),              # a whitespace-only separator line
], ids=lambda v: "-".join(f"{k}={v[k]!r}" for k in v))
def test_column_file_variants_read_the_same(tmp_path, variant):
    path = write(tmp_path, "c.conll", column_text(**variant))
    assert texts_and_spans(read_conll(path)) == EXPECTED
    assert detect_format(path) == "conll"


def test_column_file_with_bom_and_crlf(tmp_path):
    path = write(tmp_path, "c.conll", b"\xef\xbb\xbf" + column_text(newline="\r\n").encode("utf-8"))
    sentences = list(read_conll_sentences(path))
    assert sentences[0].tokens == ("中", "国", "人")  # no BOM glued to the first token
    assert texts_and_spans(read_conll(path)) == EXPECTED


def test_column_file_line_numbers(tmp_path):
    path = write(tmp_path, "c.conll", "\n\n" + column_text(blank="\n"))
    sentences = list(read_conll_sentences(path))
    assert [s.line for s in sentences] == [3, 8]
    assert sentences[1].token_lines == (8, 9, 10, 11, 12)
    assert [ex.line for ex in read_conll(path)] == [3, 8]
    assert all(ex.source == str(path) for ex in read_conll(path))


def test_docstart_lines_are_ignored(tmp_path):
    text = ("-DOCSTART- -X- O O\n\n" + column_text(sep=" ", trailing_newline=False)
            + "\n-DOCSTART- -X- O O\n甲 B-ORG\n")
    path = write(tmp_path, "c.conll", text)
    assert texts_and_spans(read_conll(path)) == EXPECTED + [("甲", (Span(0, 1, "ORG"),))]


def test_docstart_ends_a_sentence(tmp_path):
    path = write(tmp_path, "c.conll", "a\tB-PER\n-DOCSTART-\tO\nb\tI-PER\n")
    with pytest.raises(InputError):  # 'b I-PER' starts a new sentence, invalid in strict BIO
        read_conll(path, scheme="bio")
    assert [s.tokens for s in read_conll_sentences(path)] == [("a",), ("b",)]


@pytest.mark.parametrize("line, token", [("  O", " "), (" \tO", " "), ("\u3000\tO", "\u3000"),
                                         ("  NR O", " ")])
def test_space_token(tmp_path, line, token):
    sep = "\t" if "\t" in line else " "
    path = write(tmp_path, "c.conll", f"我{sep}B-PER\n{line}\n你{sep}B-PER\n")
    (ex,) = read_conll(path)
    assert ex.text == f"我{token}你"
    assert ex.spans == (Span(0, 1, "PER"), Span(2, 3, "PER"))


def test_split_columns():
    assert split_columns("a\tb\tO") == ["a", "b", "O"]
    assert split_columns("a O") == ["a", "O"]
    assert split_columns("  O") == [" ", "O"]
    assert split_columns("a O ") == ["a", "O"]        # a trailing space is not a column
    assert split_columns("a b O") == ["a", "b", "O"]


def test_trailing_spaces_after_the_tag_are_tolerated(tmp_path):
    path = write(tmp_path, "c.conll", "中 B-LOC \n国 I-LOC  \n\n北\tB-LOC \n")
    assert texts_and_spans(read_conll(path)) == [("中国", (Span(0, 2, "LOC"),)),
                                                 ("北", (Span(0, 1, "LOC"),))]


def test_multichar_tokens_map_to_character_offsets(tmp_path):
    path = write(tmp_path, "c.conll", "张三\tB-PER\n在\tO\n北京市\tB-LOC\n")
    (ex,) = read_conll(path)
    assert ex.text == "张三在北京市"
    assert ex.entity_texts() == ["张三", "北京市"]


@pytest.mark.parametrize("body, bad_line", [
    ("中\tO\n国\n", 2),            # token with no tag
    ("中\tO\n国\t\n", 2),          # empty tag column
    ("中 O\n\n国 O\n国\n", 4),
    ("中\tO\n\tO\n", 2),           # empty token
    ("中 O\n国 \n", 2),            # only a trailing space where the tag should be
])
def test_token_without_tag_names_file_and_line(tmp_path, body, bad_line):
    path = write(tmp_path, "c.conll", body)
    with pytest.raises(InputError) as info:
        read_conll(path)
    err = info.value
    assert (err.path, err.line) == (str(path), bad_line)
    assert str(err).startswith(f"{path}:{bad_line}: ")
    assert "tag" in str(err)


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_unknown_tag_names_the_line_of_the_token(tmp_path, mode):
    path = write(tmp_path, "c.conll", "甲\tO\n\n中\tB-LOC\n国\tI-LOC\n人\tX-PER\n")
    with pytest.raises(InputError) as info:
        read_corpus(path, mode=mode)
    assert info.value.line == 5
    assert "X-PER" in str(info.value)


def test_unknown_tag_after_a_repaired_transition_names_its_own_line(tmp_path):
    # lenient mode repairs line 2 ('O I-PER'); the error is the unknown tag on line 4
    path = write(tmp_path, "c.conll", "a O\nb I-PER\nc I-PER\nd Q-PER\n")
    with pytest.raises(InputError) as info:
        read_corpus(path, scheme="bio", mode="lenient")
    assert info.value.line == 4
    assert "Q-PER" in str(info.value)


def test_invalid_transition_names_the_line_in_strict_mode(tmp_path):
    path = write(tmp_path, "c.conll", "a O\nb O\n\nc O\nd O\ne I-PER\n")
    with pytest.raises(InputError) as info:
        read_corpus(path, scheme="bio")
    assert (info.value.path, info.value.line) == (str(path), 6)
    assert "O -> I-PER" in str(info.value)
    corpus = read_corpus(path, scheme="bio", mode="lenient")
    assert corpus.invalid_transitions == 1
    assert corpus.examples[1].spans == (Span(2, 3, "PER"),)


def test_invalid_utf8_names_line_and_byte(tmp_path):
    data = "中\tO\n".encode("utf-8") + b"\xff\tO\n"
    path = write(tmp_path, "c.conll", data)
    with pytest.raises(InputError) as info:
        read_conll(path)
    assert info.value.line == 2
    assert "byte 6" in str(info.value)  # '中\tO\n' is 6 bytes
    assert "UTF-8" in str(info.value)


def test_binary_file_is_refused(tmp_path):
    path = write(tmp_path, "c.conll", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputError, match="binary"):
        read_conll(path)
    with pytest.raises(InputError, match="binary"):
        read_corpus(path)


def test_read_corpus_detects_bioes(tmp_path):
    path = write(tmp_path, "c.bioes", "张 B-PER\n三 E-PER\n去 O\n京 S-LOC\n")
    corpus = read_corpus(path)
    assert (corpus.format, corpus.scheme) == ("conll", "bioes")
    assert corpus.examples[0].spans == (Span(0, 2, "PER"), Span(3, 4, "LOC"))
    assert corpus.labels() == ["LOC", "PER"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("delimiter", ["\t", " "])
def test_write_conll_then_read(tmp_path, scheme, delimiter):
    examples = [Example(t, s) for t, s in EXPECTED] + [
        Example("甲乙丙丁", (Span(0, 1, "PER"), Span(1, 2, "PER"), Span(2, 4, "PER")))]
    path = tmp_path / "out.conll"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        write_conll(examples, handle, scheme=scheme, delimiter=delimiter)
    raw = [s.tags for s in read_conll_sentences(path)]
    assert raw[2] == tuple(spans_to_tags(examples[2].spans, 4, scheme=scheme))
    got = read_conll(path, scheme=scheme)
    assert texts_and_spans(got) == texts_and_spans(examples)


def test_write_conll_refuses_line_breaks_and_the_delimiter(tmp_path):
    for bad in ("a\tb", "a\nb", "a\rb"):
        handle = io.StringIO()
        with pytest.raises(InputError, match="cannot hold") as info:
            write_conll([Example(bad, (), source="in.jsonl", line=7)], handle)
        assert str(info.value).startswith("in.jsonl:7: ")


def test_write_conll_keeps_spaces_as_tokens(tmp_path):
    ex = Example("张 伟\u3000在", (Span(0, 3, "PER"),))
    path = tmp_path / "sp.conll"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        write_conll([ex], handle)
    [back] = read_conll(path, scheme="bio")
    assert back.text == ex.text and back.spans == ex.spans


# --------------------------------------------------------------------------------------
# CLUENER
# --------------------------------------------------------------------------------------

def cluener_line(text, label=None, **extra):
    obj = {**extra, "text": text}
    if label is not None:
        obj["label"] = label
    return json.dumps(obj, ensure_ascii=False)


def test_cluener_reads_inclusive_ends_and_repeated_mentions(tmp_path):
    lines = [
        cluener_line("张三和张三去了北京", {"name": {"张三": [[0, 1], [3, 4]]},
                                         "address": {"北京": [[7, 8]]}}),
        "",
        cluener_line("没有实体", {}),
    ]
    path = write(tmp_path, "c.json", "\n".join(lines) + "\n")
    examples = list(read_cluener(path))
    assert [ex.line for ex in examples] == [1, 3]
    assert examples[0].spans == (Span(0, 2, "name"), Span(3, 5, "name"), Span(7, 9, "address"))
    assert examples[0].entity_texts() == ["张三", "张三", "北京"]
    assert examples[1].spans == ()
    assert detect_format(path) == "cluener"


def test_cluener_test_split_has_ids_and_no_spans(tmp_path):
    path = write(tmp_path, "test.json", cluener_line("甲乙", id=0) + "\n" + cluener_line("丙", id=17))
    examples = list(read_cluener(path))
    assert [(ex.id, ex.text, ex.spans) for ex in examples] == [("0", "甲乙", ()), ("17", "丙", ())]
    assert detect_format(path) == "cluener"


@pytest.mark.parametrize("bad, problem", [
    (cluener_line("张三", {"name": {"张三": [[0, 2]]}}), "outside"),
    (cluener_line("张三", {"name": {"张三": [[-1, 1]]}}), "outside"),
    (cluener_line("张三", {"name": {"张三": [[1, 0]]}}), "outside"),
    (cluener_line("张三在", {"name": {"张三": [[1, 2]]}}), "not the mention"),
    (cluener_line("张三在", {"name": {"张三": [[0, 2]]}}), "not the mention"),  # exclusive end
    (cluener_line("张三", {"name": {"张三": [[0]]}}), "[start, end]"),
    (cluener_line("张三", {"name": {"张三": [0, 1]}}), "[start, end]"),
    (cluener_line("张三", {"name": ["张三"]}), "label 'name'"),
    (cluener_line("张三", {"name": {"张三": 5}}), "list"),
    (cluener_line("张三", ["name"]), "'label'"),
    ('{"text": "张三", "label": ', "invalid JSON"),
    ('["张三"]', "JSON object"),
    ('{"label": {}}', "'text'"),
])
def test_cluener_errors_name_the_line(tmp_path, bad, problem):
    good = cluener_line("好", {})
    path = write(tmp_path, "c.json", f"{good}\n\n{bad}\n{good}\n")
    with pytest.raises(InputError) as info:
        list(read_cluener(path))
    assert (info.value.path, info.value.line) == (str(path), 3)
    assert problem in str(info.value)


def test_cluener_write_then_read(tmp_path):
    examples = [Example("张三和张三去了北京", (Span(0, 2, "name"), Span(3, 5, "name"),
                                              Span(7, 9, "address")), id="a"),
                Example("甲", ())]
    path = tmp_path / "out.json"
    with open(path, "w", encoding="utf-8") as handle:
        write_cluener(examples, handle)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["label"]["name"] == {"张三": [[0, 1], [3, 4]]}  # inclusive ends on disk
    got = list(read_cluener(path))
    assert [(e.text, e.spans, e.id) for e in got] == [(e.text, e.spans, e.id) for e in examples]


# --------------------------------------------------------------------------------------
# cner span JSONL
# --------------------------------------------------------------------------------------

def jsonl_line(text, entities, **extra):
    return json.dumps({**extra, "text": text, "entities": entities}, ensure_ascii=False)


def test_span_jsonl_reads_end_exclusive_offsets(tmp_path):
    path = write(tmp_path, "s.jsonl", "\n".join([
        jsonl_line("去北京见张三", [{"start": 4, "end": 6, "label": "PER", "text": "张三"},
                                   {"start": 1, "end": 3, "label": "LOC", "score": 0.5}], id="x"),
        jsonl_line("无", []),
    ]))
    examples = list(read_span_jsonl(path))
    assert examples[0].spans == (Span(1, 3, "LOC"), Span(4, 6, "PER"))
    assert examples[0].id == "x" and examples[1].id is None
    assert detect_format(path) == "jsonl"


@pytest.mark.parametrize("entities, problem", [
    ([{"start": 0, "end": 2, "label": "PER", "text": "北京"}], "not '北京'"),
    ([{"start": 0, "end": 9, "label": "PER"}], "outside"),
    ([{"start": 1, "end": 1, "label": "PER"}], "empty"),
    ([{"start": 0, "label": "PER"}], "needs integer"),
    ([{"start": "a", "end": 1, "label": "PER"}], "needs integer"),
    (["PER"], "needs integer"),
    ({"start": 0, "end": 1, "label": "PER"}, "must be a list"),
    (5, "must be a list"),
])
def test_span_jsonl_errors_name_the_line(tmp_path, entities, problem):
    path = write(tmp_path, "s.jsonl", jsonl_line("好", []) + "\n" + jsonl_line("张三来了", entities) + "\n")
    with pytest.raises(InputError) as info:
        list(read_span_jsonl(path))
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert problem in str(info.value)


def test_span_jsonl_write_then_read(tmp_path):
    examples = [Example("去北京见张三", (Span(1, 3, "LOC"), Span(4, 6, "PER")), id="doc-1"),
                Example("a b\tc\u3000d 😀", (Span(5, 6, "X"),))]
    path = tmp_path / "o.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        write_span_jsonl(examples, handle)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["doc-1", "2"]
    assert rows[0]["entities"][1] == {"start": 4, "end": 6, "label": "PER", "text": "张三"}
    got = list(read_span_jsonl(path))
    assert [(e.text, e.spans) for e in got] == [(e.text, e.spans) for e in examples]


# --------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, fmt", [
    ("中\tO\n", "conll"),
    ("中 O\n", "conll"),
    ("\n\n  \n中 B-LOC\n", "conll"),
    ("-DOCSTART- -X- O O\n\n中 O\n", "conll"),
    ("{\tO\n中\tO\n", "conll"),        # a column file whose first token is '{'
    ("{ B-PER.NAM\n", "conll"),
    ('{"text": "中", "label": {}}\n', "cluener"),
    ('\n{"id": 3, "text": "中"}\n', "cluener"),
    ('{"id": "a", "text": "中", "entities": []}\n', "jsonl"),
    ("", "conll"),
])
def test_detect_format(tmp_path, content, fmt):
    assert detect_format(write(tmp_path, "f.txt", content)) == fmt


def test_detect_format_broken_json_names_the_line(tmp_path):
    path = write(tmp_path, "f.json", '\n{"text": "中", "label": {}\n')
    with pytest.raises(InputError) as info:
        detect_format(path)
    assert info.value.line == 2
    assert "--format" in str(info.value)


def test_read_corpus_dispatches_on_the_detected_format(tmp_path):
    conll = write(tmp_path, "a.conll", column_text())
    cluener = write(tmp_path, "a.json", cluener_line("中国人", {"LOC": {"中国": [[0, 1]]}}))
    jsonl = write(tmp_path, "a.jsonl", jsonl_line("中国人", [{"start": 0, "end": 2, "label": "LOC"}]))
    for path, fmt, scheme in [(conll, "conll", "bio"), (cluener, "cluener", None),
                              (jsonl, "jsonl", None)]:
        corpus = read_corpus(path)
        assert (corpus.format, corpus.scheme) == (fmt, scheme)
        assert texts_and_spans(corpus.examples)[0] == EXPECTED[0]
    with pytest.raises(InputError, match="unknown corpus format"):
        read_corpus(conll, format="xml")


# --------------------------------------------------------------------------------------
# Whole-corpus conversion through files (the shipped synthetic sample)
# --------------------------------------------------------------------------------------

def test_convert_corpus_keeps_every_character_and_span(tmp_path, sample_dir):
    source = sample_dir / "train.conll"
    original = [(e.text, e.spans) for e in read_corpus(source).examples]
    assert len(original) > 100 and sum(len(s) for _, s in original) > 100
    for scheme in SCHEMES:
        tagged = tmp_path / f"train.{scheme}"
        report = convert_corpus(source, tagged, to="conll", scheme=scheme)
        assert (report.examples, report.entities, report.dropped_nested) == (
            len(original), sum(len(s) for _, s in original), 0)
        assert read_corpus(tagged).scheme == scheme
        back = tmp_path / f"train.{scheme}.jsonl"
        convert_corpus(tagged, back, to="jsonl", source_scheme=scheme)
        assert [(e.text, e.spans) for e in read_span_jsonl(back)] == original
    as_cluener = tmp_path / "train.json"
    convert_corpus(source, as_cluener, to="cluener")
    assert [(e.text, e.spans) for e in read_corpus(as_cluener).examples] == original
    out = io.StringIO()
    convert_corpus(as_cluener, None, to="conll", scheme="bio", out=out)
    # back to the original file, byte for byte (the sample is written by write_conll too)
    assert out.getvalue() == source.read_text(encoding="utf-8")


def test_convert_corpus_failure_leaves_no_output(tmp_path):
    source = write(tmp_path, "in.jsonl", jsonl_line("甲乙", []) + "\n" + jsonl_line("丙\t丁", []) + "\n")
    target = tmp_path / "out" / "o.conll"
    with pytest.raises(InputError, match="cannot hold"):
        convert_corpus(source, target, to="conll")
    assert not target.exists() and list(target.parent.iterdir()) == []
