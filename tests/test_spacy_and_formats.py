"""spaCy interop (DocBin corpora, the ``cner_ner`` component) and outputs that do what their
suffix says (TSV, JSON, Parquet; an unknown suffix is an error), Parquet and compressed inputs.

The spaCy tests skip when spaCy is not installed (``pip install "cner[spacy]"``; the ``dev``
extra has it), the Parquet ones when pyarrow is not (``cner[parquet]``).
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cner.cli import main
from cner.data.formats import convert_corpus, read_corpus
from cner.errors import CnerError, ConfigError, InputError
from cner.inference.annotate import annotate_files
from cner.inference.predictor import Entity
from cner.inference.tagger import Tagger
from cner.inference.writers import output_format
from stub_tagger import stub_tagger

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"


try:
    import spacy
except ImportError:
    spacy = None
needs_spacy = pytest.mark.skipif(spacy is None,
                                 reason='needs spaCy: pip install "cner[spacy]" (in the dev extra)')
try:
    import pyarrow  # noqa: F401
    HAVE_PYARROW = True
except ImportError:
    HAVE_PYARROW = False
needs_pyarrow = pytest.mark.skipif(not HAVE_PYARROW,
                                   reason='needs pyarrow: pip install "cner[parquet]" (in dev)')


# -- helpers -----------------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def failing_after(tagger: Tagger, calls: int) -> Tagger:
    wrapped, seen = Tagger(tagger.predictor, tagger.meta), []

    def pipe(texts, **kwargs):
        seen.append(1)
        if len(seen) > calls:
            raise Interrupted
        return tagger.pipe(texts, **kwargs)

    wrapped.pipe = pipe
    return wrapped


DOCS = "张伟明在北京工作。\n\n他叫张伟，住在北京\n没有人名\n"


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def cli(args: list[str], cwd: Path) -> tuple[int, str]:
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args)
    finally:
        os.chdir(before)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def one_line_error(code: int, output: str, pattern: str) -> None:
    import re

    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert re.search(pattern, lines[0]), output


# -- output formats: the suffix says the format ------------------------------------------------

def test_output_format_follows_the_suffix_or_refuses_it():
    assert [output_format(f"out{s}") for s in (".csv", ".tsv", ".json", ".jsonl", ".ndjson",
                                               ".parquet", ".CSV")] == [
        "csv", "tsv", "json", "jsonl", "jsonl", "parquet", "csv"]
    assert output_format(None) == output_format("-") == output_format("/dev/stdout") == "csv"
    for bad in ("out.txt", "out.csv.gz", "out.xlsx"):
        with pytest.raises(InputError, match="names no format"):
            output_format(bad)
    assert output_format("out.txt", "jsonl") == "jsonl"  # an explicit format wins
    with pytest.raises(ConfigError, match="format must be one of"):
        output_format("out.csv", "xml")
    with pytest.raises(InputError, match="names no format"):
        output_format("out.parquet", formats=("csv", "jsonl"))


def test_annotate_tsv_is_tab_separated_with_the_csv_columns(tmp_path):
    src = write(tmp_path / "docs.txt", DOCS + "张伟\t明\n")
    annotate_files([src], stub_tagger(), output=tmp_path / "out.csv", progress=False)
    annotate_files([src], stub_tagger(), output=tmp_path / "out.tsv", progress=False)
    text = (tmp_path / "out.tsv").read_text("utf-8")
    assert text.splitlines()[0] == "doc_id\tstart\tend\tlabel\ttext\tscore"
    tsv = list(csv.reader(io.StringIO(text), delimiter="\t"))
    assert tsv == list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text("utf-8"))))
    assert len(tsv) == 5


@pytest.mark.parametrize("name", ["out.txt", "out.csv.gz", "out.xlsx"])
def test_annotate_unknown_output_suffix_is_one_line_and_writes_nothing(tmp_path, tiny_model,
                                                                      name):
    write(tmp_path / "a.txt", DOCS)
    code, output = cli(["annotate", "a.txt", "-m", str(tiny_model), "-o", name], tmp_path)
    one_line_error(code, output, r"names no format")
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_annotate_output_naming_its_input_is_still_refused_first(tmp_path, tiny_model):
    write(tmp_path / "a.txt", DOCS)
    code, output = cli(["annotate", "a.txt", "-m", str(tiny_model), "-o", "a.txt"], tmp_path)
    one_line_error(code, output, r"a\.txt.* input")


@needs_pyarrow
def test_annotate_parquet_output_has_the_csv_rows_typed(tmp_path, tiny_model):
    write(tmp_path / "a.txt", (SAMPLE / "news.txt").read_text("utf-8"))
    code, output = cli(["annotate", "a.txt", "-m", str(tiny_model), "-o", "out.parquet"], tmp_path)
    assert code == 0, output
    assert (tmp_path / "out.parquet").read_bytes()[:4] == b"PAR1"
    code, output = cli(["annotate", "a.txt", "-m", str(tiny_model), "-o", "out.csv"], tmp_path)
    frame, reference = pd.read_parquet(tmp_path / "out.parquet"), pd.read_csv(tmp_path / "out.csv")
    assert list(frame.columns) == ["doc_id", "start", "end", "label", "text", "score"]
    assert str(frame.doc_id.dtype) == "int64" and str(frame.score.dtype) == "float64"
    assert len(frame) == len(reference)
    pd.testing.assert_frame_equal(frame.astype({"label": object, "text": object}),
                                  reference.astype({"label": object, "text": object}),
                                  check_dtype=False)
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "out.csv", "out.parquet"]


@needs_pyarrow
def test_annotate_parquet_ids_are_strings_when_any_is(tmp_path):
    write(tmp_path / "in.jsonl", '{"id": "x", "text": "张伟"}\n{"text": "张伟明"}\n'
                                 '{"id": [1, 2], "text": "张伟"}\n')
    annotate_files([tmp_path / "in.jsonl"], stub_tagger(), output=tmp_path / "o.parquet",
                   progress=False)
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert frame.doc_id.tolist() == ["x", "2", "[1, 2]"]


@needs_pyarrow
def test_annotate_parquet_with_no_entities_is_an_empty_table(tmp_path):
    write(tmp_path / "a.txt", "没有人名\n")
    annotate_files([tmp_path / "a.txt"], stub_tagger(), output=tmp_path / "o.parquet",
                   progress=False)
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert len(frame) == 0 and list(frame.columns)[0] == "doc_id"


@needs_pyarrow
def test_annotate_parquet_resume_gives_the_same_file(tmp_path):
    src = write(tmp_path / "a.txt", "张伟明在北京\n" * 30 + "张伟\n" * 30)
    reference = tmp_path / "reference.parquet"
    annotate_files([src], stub_tagger(), output=reference, batch_size=2, progress=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(Interrupted):
        annotate_files([src], failing_after(stub_tagger(), 2), output=out, batch_size=2,
                       progress=False)
    assert not out.exists() and Path(f"{out}.partial").exists()
    report = annotate_files([src], stub_tagger(), output=out, batch_size=2, resume=True,
                            progress=False)
    assert report.resumed == 32 and report.documents == 60
    assert out.read_bytes()[:4] == b"PAR1" and out.read_bytes() == reference.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "out.parquet", "reference.parquet"]


@needs_pyarrow
def test_parquet_output_to_a_stream_is_refused(tmp_path, capsys):
    with pytest.raises(InputError, match="needs a file"):
        annotate_files([write(tmp_path / "a.txt", DOCS)], stub_tagger(), format="parquet",
                       progress=False)
    assert capsys.readouterr().out == ""
    os.mkfifo(tmp_path / "pipe.parquet")
    with pytest.raises(InputError, match="needs a file"):
        annotate_files([tmp_path / "a.txt"], stub_tagger(), output=tmp_path / "pipe.parquet",
                       progress=False)
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "pipe.parquet"]


@needs_pyarrow
def test_annotate_reads_parquet_input(tmp_path):
    pd.DataFrame({"id": ["a", None, "c"], "body": ["张伟明在北京", "他叫张伟", None]}).to_parquet(
        tmp_path / "docs.parquet")
    annotate_files([tmp_path / "docs.parquet"], stub_tagger(), output=tmp_path / "out.jsonl",
                   text_column="body", progress=False)
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [(r["id"], r["text"], [e["text"] for e in r["entities"]]) for r in records] == [
        ("a", "张伟明在北京", ["张伟明"]), (2, "他叫张伟", ["张伟"]), ("c", "", [])]
    with pytest.raises(InputError, match=r"no column 'text'; the columns are: id, body"):
        annotate_files([tmp_path / "docs.parquet"], stub_tagger(), output=tmp_path / "x.csv",
                       progress=False)
    write(tmp_path / "fake.parquet", "not parquet\n")
    with pytest.raises(InputError, match=r"fake\.parquet: is not a Parquet file"):
        annotate_files([tmp_path / "fake.parquet"], stub_tagger(), output=tmp_path / "x.csv",
                       progress=False)


@needs_pyarrow
def test_cli_parquet_in_parquet_out(tmp_path, tiny_model):
    pd.DataFrame({"text": (SAMPLE / "news.txt").read_text("utf-8").splitlines()[:5]}).to_parquet(
        tmp_path / "docs.parquet")
    code, output = cli(["annotate", "docs.parquet", "-m", str(tiny_model), "-o", "ents.parquet"],
                       tmp_path)
    assert code == 0, output
    assert set(pd.read_parquet(tmp_path / "ents.parquet").doc_id) <= {1, 2, 3, 4, 5}
    assert "annotated 5 documents" in output


def test_missing_pyarrow_is_one_line_with_the_install_hint(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    write(tmp_path / "a.txt", DOCS)
    write(tmp_path / "docs.parquet", b"PAR1")
    for argv in (["annotate", "a.txt", "-m", str(tiny_model), "-o", "out.parquet"],
                 ["annotate", "docs.parquet", "-m", str(tiny_model), "-o", "out.csv"]):
        code, output = cli(argv, tmp_path)
        one_line_error(code, output, r'needs pyarrow, which is not installed: '
                                     r'pip install "cner\[parquet\]"')
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "docs.parquet"]


# -- compressed inputs -------------------------------------------------------------------------

COMPRESSORS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_annotate_reads_compressed_inputs(tmp_path, suffix):
    plain = write(tmp_path / "docs.txt", DOCS)
    packed = write(tmp_path / f"docs.txt.{suffix}", COMPRESSORS[suffix](DOCS.encode()))
    annotate_files([plain], stub_tagger(), output=tmp_path / "plain.jsonl", progress=False)
    annotate_files([packed], stub_tagger(), output=tmp_path / "packed.jsonl", progress=False)
    assert ((tmp_path / "packed.jsonl").read_text("utf-8")
            == (tmp_path / "plain.jsonl").read_text("utf-8"))


def test_compressed_jsonl_and_csv_keep_their_kind(tmp_path):
    write(tmp_path / "d.jsonl.gz", gzip.compress('{"id": "k", "text": "张伟"}\n'.encode()))
    write(tmp_path / "d.csv.xz", lzma.compress("id,text\nq,张伟明\n".encode()))
    annotate_files([tmp_path / "d.jsonl.gz", tmp_path / "d.csv.xz"], stub_tagger(),
                   output=tmp_path / "o.jsonl", progress=False)
    records = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    assert [r["id"].rsplit(":", 1)[1] for r in records] == ["k", "q"]


def test_compressed_input_errors_are_one_line(tmp_path, tiny_model):
    write(tmp_path / "bad.txt.gz", "plain text, not gzip\n")
    write(tmp_path / "cut.txt.gz", gzip.compress(DOCS.encode() * 50)[:-30])
    write(tmp_path / "bad.txt.xz", b"\xfd7zXZ\x00garbage")
    write(tmp_path / "utf.txt.bz2", bz2.compress("张伟\n".encode() + b"ab\xffcd\n"))
    for name, pattern in (("bad.txt.gz", r"bad\.txt\.gz: is not valid gzip data"),
                          ("cut.txt.gz", r"cut\.txt\.gz: ends before its gzip data does"),
                          ("bad.txt.xz", r"bad\.txt\.xz: is not valid xz data"),
                          ("utf.txt.bz2", r"utf\.txt\.bz2:2: invalid UTF-8 at byte 9 of the "
                                          r"decompressed \(bzip2\) file")):
        code, output = cli(["annotate", name, "-m", str(tiny_model), "-o", "o.csv"], tmp_path)
        one_line_error(code, output, pattern)
        assert not (tmp_path / "o.csv").exists()


def test_corpora_read_compressed_files(tmp_path):
    conll = (SAMPLE / "dev.conll").read_bytes()
    write(tmp_path / "dev.conll.gz", gzip.compress(conll))
    assert ([(ex.text, ex.spans, ex.line) for ex in read_corpus(tmp_path / "dev.conll.gz").examples]
            == [(ex.text, ex.spans, ex.line) for ex in read_corpus(SAMPLE / "dev.conll").examples])
    code, output = cli(["corpora", "convert", "dev.conll.gz", "--to", "jsonl", "-o", "dev.jsonl"],
                       tmp_path)
    assert code == 0, output
    assert len((tmp_path / "dev.jsonl").read_text("utf-8").splitlines()) == len(
        read_corpus(SAMPLE / "dev.conll").examples)
    code, output = cli(["corpora", "stats", "dev.conll.gz"], tmp_path)
    assert code == 0, output


# -- predict_file: JSON, TSV, Parquet; unknown suffixes refused -------------------------------

@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    from cner.config import load_config
    from cner.tasks.classification import train_classifier

    tmp = tmp_path_factory.mktemp("senti")
    rows = [("酒店很干净服务好", "pos"), ("房间脏价格贵", "neg")] * 5
    train = write(tmp / "train.tsv", "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"data.train={train}", f"data.dev={train}", "data.test=null", "data.max_length=32",
        "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "training.precision=fp32", "training.threads=1",
        "training.epochs=1", "training.batch_size=5"])
    run_dir, _ = train_classifier(cfg, output=tmp / "run", progress=False)
    return run_dir / "model", train


def _predict(tmp_path, classifier_dir, name, *extra):
    model, train = classifier_dir
    return cli(["sentiment", "predict", "-m", str(model), "--input", str(train), "-o", name,
                *extra], tmp_path)


def test_predict_json_is_a_json_list(tmp_path, classifier_dir):
    code, output = _predict(tmp_path, classifier_dir, "pred.json")
    assert code == 0, output
    rows = json.loads((tmp_path / "pred.json").read_text("utf-8"))
    assert isinstance(rows, list) and len(rows) == 10
    assert set(rows[0]) == {"id", "label", "probabilities"}
    code, output = _predict(tmp_path, classifier_dir, "pred.jsonl")
    assert [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text("utf-8").splitlines()] \
        == rows


def test_predict_tsv_is_tab_separated(tmp_path, classifier_dir):
    code, output = _predict(tmp_path, classifier_dir, "pred.tsv")
    assert code == 0, output
    lines = (tmp_path / "pred.tsv").read_text("utf-8").splitlines()
    assert lines[0] == "id\tlabel\tprob_neg\tprob_pos" and len(lines) == 11


@needs_pyarrow
def test_predict_parquet(tmp_path, classifier_dir):
    code, output = _predict(tmp_path, classifier_dir, "pred.parquet")
    assert code == 0, output
    frame = pd.read_parquet(tmp_path / "pred.parquet")
    assert list(frame.columns) == ["id", "label", "prob_neg", "prob_pos"] and len(frame) == 10
    assert ((frame.prob_neg + frame.prob_pos - 1).abs() < 1e-4).all()
    code, output = _predict(tmp_path, classifier_dir, "pred.csv")
    reference = pd.read_csv(tmp_path / "pred.csv", dtype={"id": str})
    assert frame.label.tolist() == reference.label.tolist()


@pytest.mark.parametrize("name", ["pred.txt", "pred.csv.gz"])
def test_predict_unknown_suffix_is_one_line_and_writes_nothing(tmp_path, classifier_dir, name):
    code, output = _predict(tmp_path, classifier_dir, name)
    one_line_error(code, output, "names no format")
    assert os.listdir(tmp_path) == []


def test_predict_frame_reads_a_missing_text_as_empty(classifier_dir):
    from cner.inference.classifier import Classifier

    clf = Classifier.load(classifier_dir[0])
    frame = clf.predict_frame(pd.DataFrame({"text": ["", None, float("nan"), "房间脏"]}))
    assert frame.prob_pos.iloc[0] == frame.prob_pos.iloc[1] == frame.prob_pos.iloc[2]


# -- spaCy: DocBin corpora ---------------------------------------------------------------------

@needs_spacy
def test_convert_to_spacy_writes_a_docbin(tmp_path):
    from cner.data.spacy_docbin import docbin_docs

    report = convert_corpus(SAMPLE / "dev.conll", tmp_path / "dev.spacy", to="spacy")
    expected = read_corpus(SAMPLE / "dev.conll").examples
    docs = docbin_docs(str(tmp_path / "dev.spacy"))
    assert report.examples == len(docs) == len(expected) and report.unaligned == 0
    assert report.entities == sum(len(ex.spans) for ex in expected)
    for doc, ex in zip(docs, expected):
        assert doc.text == ex.text
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
            (s.start, s.end, s.label) for s in ex.spans]


@needs_spacy
def test_convert_to_spacy_counts_what_does_not_align_and_flattens_nested(tmp_path):
    from cner.data.spacy_docbin import docbin_docs

    write(tmp_path / "c.jsonl", json.dumps({"id": "d1", "text": "张 伟在北京大学", "entities": [
        {"start": 1, "end": 3, "label": "PER"},  # starts on a space: no token starts there
        {"start": 4, "end": 8, "label": "ORG"}, {"start": 4, "end": 6, "label": "LOC"}]},
        ensure_ascii=False) + "\n")
    report = convert_corpus(tmp_path / "c.jsonl", tmp_path / "c.spacy", to="spacy")
    assert (report.examples, report.entities, report.unaligned, report.dropped_nested) == (
        1, 1, 1, 1)
    (doc,) = docbin_docs(str(tmp_path / "c.spacy"))
    assert [(e.text, e.label_) for e in doc.ents] == [("北京大学", "ORG")]
    assert doc.user_data["id"] == "d1"


@needs_spacy
def test_convert_to_spacy_needs_a_file(tmp_path):
    with pytest.raises(InputError, match="binary"):
        convert_corpus(SAMPLE / "dev.conll", None, to="spacy", out=io.StringIO())


@needs_spacy
def test_cli_convert_to_spacy(tmp_path):
    import click

    convert = main.get_command(click.Context(main), "corpora").get_command(
        click.Context(main), "convert")
    choices = next(p.type.choices for p in convert.params if p.name == "to")
    if "spacy" not in choices:
        pytest.skip("cner/cli/__init__.py's corpora convert --to does not list spacy yet")
    code, output = cli(["corpora", "convert", str(SAMPLE / "dev.conll"), "--to", "spacy",
                        "-o", "dev.spacy"], tmp_path)
    assert code == 0, output
    assert (tmp_path / "dev.spacy").stat().st_size > 0


def test_convert_to_spacy_without_spacy_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(ConfigError, match=r'needs spaCy, which is not installed: '
                                          r'pip install "cner\[spacy\]"'):
        convert_corpus(SAMPLE / "dev.conll", tmp_path / "dev.spacy", to="spacy")
    assert not (tmp_path / "dev.spacy").exists()


# -- spaCy: the cner_ner component -------------------------------------------------------------

class FixedTagger:
    """Returns the entities given per text; records the chunks `pipe` was given."""

    def __init__(self, entities: dict[str, list[tuple[int, int, str]]]) -> None:
        self.entities, self.chunks = entities, []

    def _found(self, text):
        return [Entity(s, e, label, text[s:e], 0.75) for s, e, label in self.entities.get(text, [])]

    def __call__(self, text):
        return self._found(text)

    def pipe(self, texts, *, chunk_size=None, batch_size=None):
        texts = list(texts)
        self.chunks.append(len(texts))
        return iter([self._found(t) for t in texts])


@needs_spacy
def test_component_sets_ents_from_the_tagger(tiny_model):
    import cner.integrations.spacy  # noqa: F401  (registers the factory)

    tagger = Tagger.load(tiny_model)
    nlp = spacy.blank("zh")
    component = nlp.add_pipe("cner_ner", config={"model": str(tiny_model)})
    texts = (SAMPLE / "news.txt").read_text("utf-8").splitlines()[:6]
    expected = [[(e.start, e.end, e.label) for e in tagger(t)] for t in texts]
    assert any(expected), "the tiny model found no entity: nothing is tested"
    docs = [nlp(t) for t in texts]
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == expected
    piped = list(nlp.pipe(texts, batch_size=4))
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in piped] == expected
    scores = [e._.cner_score for d in piped for e in d.ents]
    assert all(0 <= s <= 1 for s in scores)
    assert all(d.user_data["cner_unaligned"] == 0 for d in docs)
    assert component.unaligned == 0


@needs_spacy
def test_component_batches_through_tagger_pipe_and_counts_unaligned():
    from cner.integrations.spacy import CnerNer

    texts = ["张伟在北京大学工作", "上海", "张伟明", "北京", "张伟"]
    tagger = FixedTagger({"张伟在北京大学工作": [(0, 2, "PER"), (3, 5, "LOC")],
                          "张伟明": [(0, 3, "PER")]})
    nlp = spacy.blank("xx")  # word tokens: "张伟在北京大学工作" is one token
    component = CnerNer(tagger)
    with pytest.warns(UserWarning, match="not spaCy token boundaries"):
        docs = list(component.pipe((nlp.make_doc(t) for t in texts), batch_size=2))
    assert tagger.chunks == [2, 2, 1]
    first = docs[0]
    # expand: PER grows to the whole token; LOC then overlaps it and is left out
    assert [(e.text, e.label_) for e in first.ents] == [("张伟在北京大学工作", "PER")]
    assert (first.user_data["cner_unaligned"], first.user_data["cner_dropped"]) == (2, 1)
    assert [(e.text, e.label_) for e in docs[2].ents] == [("张伟明", "PER")]
    assert (component.unaligned, component.dropped) == (2, 1)

    strict = CnerNer(tagger, alignment_mode="strict")
    with pytest.warns(UserWarning):
        doc = strict(nlp.make_doc(texts[0]))
    assert list(doc.ents) == [] and doc.user_data["cner_dropped"] == 2
    with pytest.raises(ConfigError, match="alignment_mode"):
        CnerNer(tagger, alignment_mode="loose")


@needs_spacy
def test_component_needs_a_model():
    import cner.integrations.spacy  # noqa: F401

    with pytest.raises(CnerError, match="needs a cner model directory"):
        spacy.blank("zh").add_pipe("cner_ner")


@needs_spacy
def test_spacy_finds_the_factory_through_the_entry_point(tmp_path):
    """A fresh interpreter that never imports cner: spaCy loads the factory from the
    ``spacy_factories`` entry point of the installed package."""
    code = ("import sys, spacy; nlp = spacy.blank('zh'); "
            "from spacy.util import registry; "
            "print('cner_ner' in registry.factories.get_all(), "
            "'cner.integrations.spacy' in sys.modules, 'cner.inference.tagger' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    # registered, and loading it did not load cner's tagger: that waits for add_pipe
    assert proc.stdout.split() == ["True", "True", "False"], proc.stdout
