"""Sentence-classification data: the task readers on the public corpora, the generic reader's
errors, and the classification / multi-label / regression metrics on hand-computed cases.

Expected counts are copied from each corpus's README.md in ../shared/corpora (folder named
per entry); quirks (BOMs, trailing spaces, quote characters) are also checked against the
raw files, parsed independently here.
"""
from __future__ import annotations

import math
from collections import Counter

import pytest

from cner.errors import CnerError, ConfigError, InputError
from cner.metrics import classification_scores, format_classification_scores, multilabel_scores, regression_scores
from cner.data.classification import ClassificationExample, iter_delimited_rows, read_classification_file
from cner.data.task_registry import KINDS, TASKS, get_task, load_split, seeded_split, task_scores

BOM = "\ufeff"

# (task, split) -> (rows, {label: count}); None for unlabelled splits. From the READMEs:
README_COUNTS = {
    # chnsenticorp/README.md, "Counts"
    ("chnsenticorp", "train"): (9_600, {"1": 4_799, "0": 4_801}),
    ("chnsenticorp", "dev"): (1_200, {"1": 593, "0": 607}),
    ("chnsenticorp", "test"): (1_200, None),
    # chnsenticorp_htl_all/README.md: 7,766 rows, 5,322 label 1, 2,444 label 0, and "One row
    # has an empty review" (label 0, line 6,376), which the reader drops: 7,765 / 2,443.
    ("chnsenticorp_htl", "all"): (7_766 - 1, {"1": 5_322, "0": 2_444 - 1}),
    # afqmc/README.md, "Counts"
    ("afqmc", "train"): (34_334, {"1": 10_573, "0": 23_761}),
    ("afqmc", "dev"): (4_316, {"1": 1_338, "0": 2_978}),
    ("afqmc", "test"): (3_861, None),
    # glue_sst2/README.md, "Counts"
    ("sst2", "train"): (67_349, {"1": 37_569, "0": 29_780}),
    ("sst2", "dev"): (872, {"1": 444, "0": 428}),
    ("sst2", "test"): (1_821, None),
    # glue_mrpc/README.md, "Counts": test labels are those of msr_paraphrase_test.txt
    ("mrpc", "train"): (3_668, {"1": 2_474, "0": 1_194}),
    ("mrpc", "dev"): (408, {"1": 279, "0": 129}),
    ("mrpc", "test"): (1_725, {"1": 1_147, "0": 578}),
}

_CACHE: dict[tuple[str, str], list[ClassificationExample]] = {}


@pytest.fixture(scope="module")
def load(corpora_dir, corpus_file):
    """``load(task, split)`` -> examples, each split read once per module."""

    def get(task: str, split: str) -> list[ClassificationExample]:
        corpus_file(TASKS[task].files[split])  # skip (fail under CI) when missing
        if (task, split) not in _CACHE:
            _CACHE[task, split] = load_split(task, split, root=corpora_dir)
        return _CACHE[task, split]

    return get


def raw_lines(path) -> list[str]:
    """The file's lines, decoded independently of cner (no BOM handling, LF only)."""
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("\n") and "\r" not in text
    return text[:-1].split("\n")


# --- the real corpora ----------------------------------------------------------------------

@pytest.mark.corpora
@pytest.mark.parametrize("task,split", list(README_COUNTS), ids="-".join)
def test_counts_match_readme(load, task, split):
    rows, label_counts = README_COUNTS[task, split]
    examples = load(task, split)
    assert len(examples) == rows
    if label_counts is None:
        assert all(e.label is None for e in examples)
    else:
        assert Counter(e.label for e in examples) == label_counts
    spec = TASKS[task]
    lines = [e.line for e in examples]
    assert lines == sorted(set(lines))
    for e in examples:
        assert e.text.strip(), f"{e.source}:{e.line}: empty text"
        assert BOM not in e.text, f"{e.source}:{e.line}: BOM left in text"
        if spec.kind == "pair":
            assert e.text_pair and e.text_pair.strip() and BOM not in e.text_pair
        else:
            assert e.text_pair is None
        assert e.source.endswith(spec.files[split])
        assert e.id is None or BOM not in e.id


@pytest.mark.corpora
def test_chnsenticorp_headers_differ(load, corpus_file):
    heads = {split: raw_lines(corpus_file(f"chnsenticorp/{split}.tsv"))[0]
             for split in ("train", "dev", "test")}
    assert heads == {"train": "label\ttext_a", "dev": "qid\tlabel\ttext_a", "test": "qid\ttext_a"}
    assert [e.id for e in load("chnsenticorp", "dev")[:3]] == ["0", "1", "2"]
    assert all(e.id is None for e in load("chnsenticorp", "train"))
    # texts are kept as written, ideographic spaces included (train line 3,017)
    assert load("chnsenticorp", "train")[3017 - 2].text.startswith("\u3000\u3000入住的时候")


@pytest.mark.corpora
def test_afqmc_stray_bom_removed(load, corpus_file):
    raw = raw_lines(corpus_file("afqmc/train.txt"))
    assert not raw[0].startswith(BOM)  # README: the file itself has no BOM ...
    assert [i + 1 for i, line in enumerate(raw) if BOM in line] == [12_078]  # ... but line 12,078
    example = next(e for e in load("afqmc", "train") if e.line == 12_078)
    assert example.text == raw[12_077].split("\t")[0][1:] == "怎么更改花呗手机号码"
    assert example.label == "1"


@pytest.mark.corpora
def test_sst2_trailing_space_stripped(load, corpus_file):
    for split in ("train", "dev"):
        raw = raw_lines(corpus_file(f"glue_sst2/{split}.tsv"))[1:]
        sentences = [line.split("\t")[0] for line in raw]
        assert all(s.endswith(" ") and not s.endswith("  ") for s in sentences)  # README quirk
        examples = load("sst2", split)
        assert [e.text for e in examples] == [s[:-1] for s in sentences]
    assert load("sst2", "train")[0].text == "hide new secretions from the parental units"
    raw_test = raw_lines(corpus_file("glue_sst2/test.tsv"))[1:]
    test = load("sst2", "test")
    assert [e.text for e in test] == [line.split("\t")[1] for line in raw_test]  # unchanged
    assert [e.id for e in test] == [str(i) for i in range(1_821)]


@pytest.mark.corpora
def test_mrpc_quotes_and_bom(load, corpus_file, corpora_dir):
    for split in ("train", "dev", "test"):
        raw = raw_lines(corpus_file(f"glue_mrpc/{split}.tsv"))
        assert raw[0].startswith(BOM) == (split != "test")  # README: BOM on train/dev only
        with_quotes = sum('"' in line for line in raw[1:])
        examples = load("mrpc", split)
        assert with_quotes > 0
        assert sum('"' in e.text + e.text_pair for e in examples) == with_quotes
        fields = [line.split("\t") for line in raw[1:]]
        assert [(e.text, e.text_pair) for e in examples] == [(f[3], f[4]) for f in fields]
        assert [e.id for e in examples] == [f"{f[1]}-{f[2]}" for f in fields]
    dev = load("mrpc", "dev")[0]
    assert dev.text_pair == '"The foodservice pie business does not fit our long-term growth strategy.'
    # csv quoting would swallow those quotes; the reader refuses instead of merging lines
    with pytest.raises(InputError) as info:
        read_classification_file(corpora_dir / "glue_mrpc/dev.tsv", text_column="#1 String",
                                 text_pair_column="#2 String")
    assert info.value.line == 2 and "quoting=False" in str(info.value)


@pytest.mark.corpora
def test_mrpc_test_labels_follow_msr_release(load, corpus_file):
    raw = raw_lines(corpus_file("glue_mrpc/msr_paraphrase_test.txt"))[1:]
    assert [e.label for e in load("mrpc", "test")] == [line.split("\t")[0] for line in raw]


@pytest.mark.corpora
def test_htl_seeded_split(load, corpus_file):
    everything = load("chnsenticorp_htl", "all")
    assert 6_376 not in {e.line for e in everything}  # the empty review
    parts = {split: load("chnsenticorp_htl", split) for split in ("train", "dev", "test")}
    assert {k: len(v) for k, v in parts.items()} == {"train": 6_213, "dev": 776, "test": 776}
    lines = {k: {e.line for e in v} for k, v in parts.items()}
    assert not (lines["train"] & lines["dev"] or lines["train"] & lines["test"]
                or lines["dev"] & lines["test"])
    assert lines["train"] | lines["dev"] | lines["test"] == {e.line for e in everything}
    again = seeded_split(everything)
    assert again == parts  # same seed, same split
    assert seeded_split(everything, seed=14)["test"] != parts["test"]
    for split in ("dev", "test"):  # stratified: the label ratio of the whole set
        assert Counter(e.label for e in parts[split]) == {"1": 532, "0": 244}
    assert "seed=13" in TASKS["chnsenticorp_htl"].description


def test_seeded_split_small():
    examples = [ClassificationExample(f"t{i}", None, str(i % 3 == 0), None, "x", i + 1)
                for i in range(50)]
    parts = seeded_split(examples, seed=1, dev=0.2, test=0.2)
    assert sorted(e.line for p in parts.values() for e in p) == list(range(1, 51))
    assert parts == seeded_split(list(examples), seed=1, dev=0.2, test=0.2)
    for part in parts.values():  # file order kept
        assert [e.line for e in part] == sorted(e.line for e in part)
    assert seeded_split(examples, dev=0, test=0)["train"] == examples
    with pytest.raises(ValueError):
        seeded_split(examples, dev=0.6, test=0.6)


# --- registry ------------------------------------------------------------------------------

def test_registry_declarations():
    assert set(TASKS) == {"chnsenticorp", "chnsenticorp_htl", "afqmc", "sst2", "mrpc"}
    for name, spec in TASKS.items():
        assert spec.name == name and spec.kind in KINDS
        assert {"train", "dev", "test"} <= set(spec.files)
        assert spec.labels == ("0", "1")
        assert spec.metrics[:2] == ("accuracy", "macro_f1")
        assert spec.description and spec.source
    assert TASKS["mrpc"].metrics == ("accuracy", "macro_f1", "f1")
    assert TASKS["mrpc"].positive == "1"
    assert {n for n, s in TASKS.items() if s.kind == "pair"} == {"afqmc", "mrpc"}
    scores = task_scores("mrpc", ["1", "1", "0"], ["1", "0", "0"])
    assert set(TASKS["mrpc"].metrics) <= set(scores)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_unknown_task_and_split(tmp_path):
    with pytest.raises(ConfigError) as info:
        get_task("cola")
    assert isinstance(info.value, CnerError)
    assert "afqmc" in str(info.value) and "mrpc" in str(info.value) and "'cola'" in str(info.value)
    with pytest.raises(ConfigError, match="its splits: train, dev, test"):
        load_split("sst2", "validation", root=tmp_path)
    with pytest.raises(InputError, match="file not found"):
        load_split("sst2", "dev", root=tmp_path)


def test_load_split_rejects_unknown_label(tmp_path):
    (tmp_path / "glue_sst2").mkdir()
    (tmp_path / "glue_sst2" / "dev.tsv").write_text("sentence\tlabel\ngood \t1\nbad \t2\n",
                                                    encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_split("sst2", "dev", root=tmp_path)
    assert info.value.line == 3 and "'2'" in str(info.value)


# --- the generic reader --------------------------------------------------------------------

def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_reader_tsv_with_header_bom_and_crlf(tmp_path):
    path = write(tmp_path, "a.tsv", BOM + "id\ttext\tlabel\r\n7\tsays \"hi\" \t1\r\n\r\n"
                 "8\t" + BOM + "second\t 0 \r\n")
    examples = read_classification_file(path, text_column="text", label_column="label",
                                        id_column="id", quoting=False)
    assert examples == [
        ClassificationExample('says "hi" ', None, "1", "7", str(path), 2),
        ClassificationExample("second", None, "0", "8", str(path), 4),
    ]
    stripped = read_classification_file(path, text_column=1, quoting=False, rstrip_text=True)
    assert stripped[0].text == 'says "hi"'


def test_reader_csv_quoting_and_line_numbers(tmp_path):
    path = write(tmp_path, "b.csv", 'label,review\n1,"a, ""quoted"" one"\n0,"two\nlines"\n1,plain\n')
    examples = read_classification_file(path, text_column="review", label_column="label")
    assert [(e.text, e.label, e.line) for e in examples] == [
        ('a, "quoted" one', "1", 2), ("two\nlines", "0", 3), ("plain", "1", 5)]
    bad = write(tmp_path, "c.csv", 'label,review\n1,ok\n0,"broken" here\n')
    with pytest.raises(InputError) as info:
        read_classification_file(bad, text_column="review")
    assert (info.value.path, info.value.line) == (str(bad), 3)


def test_reader_headerless_pair_and_jsonl(tmp_path):
    path = write(tmp_path, "p.txt", "q1\tq2\t1\n" + BOM + "r1\tr2\t0\n")
    examples = read_classification_file(path, text_column=0, text_pair_column=1, label_column=2,
                                        header=False)
    assert [(e.text, e.text_pair, e.label) for e in examples] == [("q1", "q2", "1"),
                                                                  ("r1", "r2", "0")]
    jsonl = write(tmp_path, "p.jsonl", '{"sentence1": "a", "sentence2": "b", "label": 1, "id": 3}\n'
                  '\n{"sentence1": "c", "sentence2": "d", "label": "0", "id": 4}\n')
    examples = read_classification_file(jsonl, text_column="sentence1",
                                        text_pair_column="sentence2", label_column="label",
                                        id_column="id")
    assert [(e.text, e.text_pair, e.label, e.id, e.line) for e in examples] == [
        ("a", "b", "1", "3", 1), ("c", "d", "0", "4", 3)]
    with pytest.raises(ValueError):  # names need a header
        read_classification_file(path, text_column="text", header=False)


def test_reader_label_kinds(tmp_path):
    path = write(tmp_path, "r.tsv", "s\tscore\ttags\na\t4.5\tx,y\nb\t0\t\n")
    reg = read_classification_file(path, text_column="s", label_column="score",
                                   label_kind="regression")
    assert [e.label for e in reg] == [4.5, 0.0]
    multi = read_classification_file(path, text_column="s", label_column="tags",
                                     label_kind="multilabel")
    assert [e.label for e in multi] == [("x", "y"), ()]
    bad = write(tmp_path, "r2.tsv", "s\tscore\na\thigh\n")
    with pytest.raises(InputError, match="expected a number") as info:
        read_classification_file(bad, text_column="s", label_column="score",
                                 label_kind="regression")
    assert info.value.line == 2
    with pytest.raises(InputError, match="empty label") as info:
        read_classification_file(path, text_column="s", label_column="tags")
    assert info.value.line == 3


def test_error_missing_column_lists_columns(tmp_path):
    path = write(tmp_path, "m.tsv", "sentence\tlabel\nfine\t1\n")
    with pytest.raises(InputError) as info:
        read_classification_file(path, text_column="text", label_column="label")
    err = info.value
    assert (err.path, err.line) == (str(path), 1)
    assert "'text'" in str(err) and "'sentence', 'label'" in str(err)
    assert str(err).startswith(f"{path}:1: ")
    headerless = write(tmp_path, "m.txt", "a\tb\n")
    with pytest.raises(InputError, match="out of range") as info:
        read_classification_file(headerless, text_column=0, label_column=2, header=False)
    assert info.value.line == 1
    jsonl = write(tmp_path, "m.jsonl", '{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n')
    with pytest.raises(InputError, match="'txt', 'label'") as info:
        read_classification_file(jsonl, text_column="text", label_column="label")
    assert info.value.line == 2


def test_error_empty_text(tmp_path):
    path = write(tmp_path, "e.csv", "label,review\n1,good\n0,\n1,  \n")
    with pytest.raises(InputError, match="empty text") as info:
        read_classification_file(path, text_column="review", label_column="label")
    assert (info.value.path, info.value.line) == (str(path), 3)
    kept = read_classification_file(path, text_column="review", empty_text="skip")
    assert [e.line for e in kept] == [2]
    pair = write(tmp_path, "e.tsv", "a\tb\nx\t\n")
    with pytest.raises(InputError, match="empty text in column 'b'") as info:
        read_classification_file(pair, text_column="a", text_pair_column="b")
    assert info.value.line == 2


def test_error_wrong_field_count(tmp_path):
    path = write(tmp_path, "w.tsv", "sentence\tlabel\nok\t1\nwith\ttab\t0\nshort\n")
    with pytest.raises(InputError, match="expected 2 tab-separated fields .*found 3") as info:
        read_classification_file(path, text_column="sentence", quoting=False)
    assert (info.value.path, info.value.line) == (str(path), 3)
    path = write(tmp_path, "w2.tsv", "sentence\tlabel\nok\t1\nshort\n")
    with pytest.raises(InputError, match="found 1") as info:
        read_classification_file(path, text_column="sentence", quoting=False)
    assert info.value.line == 3
    path = write(tmp_path, "w.txt", "a\tb\t1\nc\td\n")  # headerless: the first row sets it
    with pytest.raises(InputError, match="expected 3") as info:
        read_classification_file(path, text_column=0, header=False)
    assert info.value.line == 2


def test_error_pair_row_with_one_column(tmp_path):
    path = write(tmp_path, "q.tsv", "s1\ts2\tlabel\na\tb\t1\nonly one column\n")
    with pytest.raises(InputError, match="sentence-pair task needs two texts") as info:
        read_classification_file(path, text_column="s1", text_pair_column="s2",
                                 label_column="label")
    assert (info.value.path, info.value.line) == (str(path), 3)
    headerless = write(tmp_path, "q.txt", "just one\n")
    with pytest.raises(InputError, match="sentence-pair") as info:
        read_classification_file(headerless, text_column=0, text_pair_column=1, header=False)
    assert info.value.line == 1
    jsonl = write(tmp_path, "q.jsonl", '{"sentence1": "a"}\n')
    with pytest.raises(InputError, match="sentence-pair") as info:
        read_classification_file(jsonl, text_column="sentence1", text_pair_column="sentence2")
    assert info.value.line == 1


def test_error_format_and_encoding(tmp_path):
    with pytest.raises(InputError, match="suffix"):
        read_classification_file(write(tmp_path, "x.dat", "a\n"), text_column=0)
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"text\nok\n\xff\xfe\n")
    with pytest.raises(InputError, match="invalid UTF-8") as info:
        read_classification_file(bad, text_column="text")
    assert info.value.line == 3
    with pytest.raises(InputError, match="empty file"):
        read_classification_file(write(tmp_path, "empty.tsv", ""), text_column="text")
    assert list(iter_delimited_rows(write(tmp_path, "y.tsv", BOM + "a\t" + BOM + "b\n"))) == [
        (1, ["a", "b"])]


# --- metrics, against hand-computed values -------------------------------------------------

def test_classification_scores_multiclass():
    # gold a a a b b c / predicted a a b b c c
    # a: tp 2 fp 0 fn 1 -> P 1, R 2/3, F1 0.8;  b: tp 1 fp 1 fn 1 -> 0.5;  c: P 1/2 R 1 F1 2/3
    # MCC (Gorodkin): (c*s - sum p_k t_k) / sqrt((s^2 - sum p^2)(s^2 - sum t^2))
    #   = (4*6 - (2*3 + 2*2 + 2*1)) / sqrt((36 - 12)(36 - 14)) = 12 / sqrt(528)
    s = classification_scores(list("aaabbc"), list("aabbcc"), labels=["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                                 "support": 3})
    assert s["per_label"]["b"]["f1"] == pytest.approx(0.5)
    assert s["per_label"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3,
                                                 "support": 1})
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["matthews_corrcoef"] == pytest.approx(12 / math.sqrt(528))
    assert s["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert "f1" not in s


def test_classification_scores_binary_positive():
    # gold 1 1 1 0 0 / predicted 1 1 0 0 1: tp 2 fn 1 fp 1 tn 1
    s = classification_scores(list("11100"), list("11001"), labels=["0", "1"], positive="1")
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert s["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    # phi = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3*3*2*2)
    assert s["matthews_corrcoef"] == pytest.approx(1 / 6)
    # a label never gold nor predicted scores 0 and still counts in the macro average
    s = classification_scores(["x", "x"], ["x", "x"], labels=["x", "y"])
    assert (s["accuracy"], s["macro_f1"], s["matthews_corrcoef"]) == (1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="'z'"):
        classification_scores(["x"], ["z"], labels=["x", "y"])
    with pytest.raises(ValueError):
        classification_scores(["x"], [], labels=["x"])
    table = format_classification_scores(
        classification_scores(list("11100"), list("11001"), labels=["0", "1"], positive="1"))
    assert "macro avg" in table and "accuracy" in table and "matthews" in table
    assert len({len(line) for line in table.splitlines()}) == 1  # fixed width


def test_multilabel_scores():
    # a: tp 2 -> F1 1;  b: fn 1 -> F1 0;  c: tp 1 fp 1 -> P 1/2 R 1 F1 2/3
    # micro: tp 3 fp 1 fn 1 -> 0.75; exact match 1 of 3
    s = multilabel_scores([{"a", "b"}, {"a"}, {"c"}], [{"a"}, {"a", "c"}, {"c"}],
                          labels=["a", "b", "c"])
    assert (s["micro_precision"], s["micro_recall"], s["micro_f1"]) == pytest.approx(
        (0.75, 0.75, 0.75))
    assert s["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert s["exact_match"] == pytest.approx(1 / 3)
    assert "micro avg" in format_classification_scores(s)


def test_regression_scores():
    # x 1 2 3 4, y 2 4 5 9: Sxy 11, Sxx 5, Syy 26 -> r = 11 / sqrt(130); MSE (1+4+4+25)/4
    s = regression_scores([1, 2, 3, 4], [2, 4, 5, 9])
    assert s["pearson"] == pytest.approx(11 / math.sqrt(130))
    assert s["spearman"] == pytest.approx(1.0)
    assert s["mse"] == pytest.approx(8.5)
    # ties: ranks of 1 2 2 3 are 1 2.5 2.5 4; of 1 3 2 4 are 1 3 2 4 -> rho = 4.5 / sqrt(4.5*5)
    s = regression_scores([1, 2, 2, 3], [1, 3, 2, 4])
    assert s["spearman"] == pytest.approx(3 / math.sqrt(10))
    assert regression_scores([1, 1, 1], [1, 2, 3])["pearson"] == 0.0  # undefined -> 0
    assert "spearman" in format_classification_scores(s)
