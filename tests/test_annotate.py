"""`cner annotate`, `annotate_files`, the readers and writers, and the windowed `Predictor`.

One tiny model is trained once for the module; window merging and very long lines are also
checked exactly with a deterministic stub model.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.inference.annotate import Document, annotate_files, read_documents  # noqa: E402
from cner.cli import main  # noqa: E402
from cner.config import load_config  # noqa: E402
from cner.data.formats import read_corpus  # noqa: E402
from cner.encoding.windows import plan_windows, window_owners  # noqa: E402
from cner.errors import CnerError, InputError  # noqa: E402
from cner.inference.predictor import Entity, Predictor  # noqa: E402
from cner.inference.tagger import Tagger  # noqa: E402
from cner.tasks.ner import train_ner  # noqa: E402
from cner.inference.writers import HEADER, write_annotations  # noqa: E402
from stub_tagger import stub_tagger  # noqa: E402
from hardware import needs_bf16  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
NEWS = (SAMPLE / "news.txt").read_text("utf-8").splitlines()
SENTENCE = "袁浩然获得中原医科大学硕士学位后，加入万象传媒集团从事数据分析工作。"


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared CPU run fastest on one thread (no spinning OpenMP workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, one_thread) -> Path:
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"data.train={SAMPLE / 'train.conll'}", f"data.dev={SAMPLE / 'dev.conll'}",
        "data.test=null", "training.epochs=3", "training.max_steps=40", "training.eval_every=40",
        "training.precision=fp32", "training.device=cpu", "training.threads=1"])
    run_dir, _ = train_ner(cfg, output=tmp_path_factory.mktemp("annotate") / "run", progress=False)
    return run_dir / "model"


@pytest.fixture(scope="module")
def tagger(model_dir) -> Tagger:
    # fp32: these tests compare results across batchings exactly; bf16 is tested on its own.
    return Tagger.load(model_dir, precision="fp32")


def predictor_like(tagger: Tagger, **changes) -> Predictor:
    p = tagger.predictor
    kwargs = {"max_length": p.max_chars + 2, "overlap": p.overlap, "batch_size": p.batch_size}
    return Predictor(p.engine, p.featurizer, **{**kwargs, **changes})


def spans(entities):
    return [(e.start, e.end, e.label, e.text) for e in entities]


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# -- offsets, batching, windows ----------------------------------------------------------------

PIECES = st.one_of(
    st.text(max_size=6),  # any code point but surrogates: astral, controls, combining marks
    st.sampled_from(["\x00", "\u200b", "\u200d", "\ufeff", "\U0001F600", "\U00020000", " ",
                     "   ", "\t", "\r", "\n", "\u3000", "\u2028", "\x85", "Ａ", "2024", "İ"]),
    st.sampled_from(["袁浩然", "中原医科大学", "万象传媒集团", "北京", "贵阳", "江城联足球俱乐部"]),
    st.text(alphabet="获得加入从事工作在的，。", max_size=4))
TEXTS = st.lists(st.lists(PIECES, max_size=25).map("".join), min_size=1, max_size=4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=TEXTS)
@example(texts=[SENTENCE, NEWS[0][:60], NEWS[1]])  # always one run that finds entities
def test_offsets_are_valid_and_batch_size_does_not_matter(tagger, texts):
    small = predictor_like(tagger, max_length=24, overlap=6, batch_size=1).entities(texts)
    large = predictor_like(tagger, max_length=24, overlap=6, batch_size=64).entities(texts)
    for text, found in zip(texts, small):
        for e in found:
            assert 0 <= e.start < e.end <= len(text)
            assert text[e.start:e.end] == e.text
            assert 0.0 <= e.score <= 1.0
    assert [spans(f) for f in small] == [spans(f) for f in large]
    if SENTENCE in texts:  # the explicit example: the comparison is not between empty lists
        assert any(small)
    for a, b in zip(small, large):  # batch composition moves scores by float rounding only
        assert [e.score for e in a] == pytest.approx([e.score for e in b], abs=1e-4)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=TEXTS.map(lambda ts: [t[:120] for t in ts]))
@example(texts=[SENTENCE, NEWS[1][:120]])  # always one run that finds entities
def test_short_texts_do_not_depend_on_the_window_size(tagger, texts):
    found = predictor_like(tagger, max_length=128).entities(texts)
    assert found == predictor_like(tagger, max_length=300).entities(texts)
    if SENTENCE in texts:  # the explicit example: the comparison is not between empty lists
        assert any(found)


def test_stub_entity_straddling_a_window_edge_is_found_once():
    text = "我在北京工作的人张伟明伟明说在北京工作。"
    windows = plan_windows(len(text), max_chars=10, overlap=4)
    cuts = [lo for lo, _ in window_owners(windows)[1:]]
    assert any(8 < cut < 13 for cut in cuts), (windows, cuts)  # the name crosses an owner cut
    windowed = stub_tagger(max_length=12, overlap=4)(text)
    assert spans(windowed) == [(8, 13, "PER", "张伟明伟明")] == spans(stub_tagger()(text))
    assert windowed[0].score == pytest.approx(0.9)


def test_real_entity_straddling_a_window_edge_is_found_once(tagger):
    start = SENTENCE.index("中原医科大学")
    whole = predictor_like(tagger, max_length=128).entities([SENTENCE])[0]
    assert (start, start + 6, "ORG", "中原医科大学") in spans(whole)
    # max_length 12, overlap 4: windows (0,10), (6,16)...; owner cut at 8 splits 5..11
    windowed = predictor_like(tagger, max_length=12, overlap=4).entities([SENTENCE])[0]
    crossing = [e for e in windowed if e.start < 8 < e.end]
    assert spans(crossing) == [(start, start + 6, "ORG", "中原医科大学")]


def test_100000_character_line_is_windowed_with_exact_offsets(tmp_path):
    unit = "在北京工作的张伟明说" * 3 + "。"  # 31 characters, three names
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    out = tmp_path / "long.jsonl"
    annotate_files([write(tmp_path / "long.txt", text + "\n")], stub_tagger(max_length=128),
                   output=out, progress=False)
    [record] = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    expected = [(i, i + 3) for i in range(len(text) - 2) if text[i:i + 3] == "张伟明"]
    assert len(expected) > 9000
    assert [(e["start"], e["end"]) for e in record["entities"]] == expected
    assert all(text[e["start"]:e["end"]] == e["text"] for e in record["entities"])


def test_real_model_on_a_100000_character_line(tagger, tmp_path):
    text = ("".join(NEWS) * 50)[:100_000]
    out = tmp_path / "long.csv"
    annotate_files([write(tmp_path / "long.txt", text)], tagger, output=out, progress=False)
    frame = pd.read_csv(out, dtype={"text": str}, keep_default_na=False)
    assert len(frame) > 1000 and frame.end.max() > 99_000
    assert all(0 <= r.start < r.end <= len(text) and text[r.start:r.end] == r.text
               for r in frame.itertuples())


# -- readers -----------------------------------------------------------------------------------

def test_txt_numbers_lines_and_skips_empty_ones(tmp_path):
    path = write(tmp_path / "a.txt", "\ufeff第一行\n\n第三行\r\n\n\n第六\x00行\n")
    assert list(read_documents(path)) == [Document(1, "第一行", 1), Document(3, "第三行", 3),
                                          Document(6, "第六\x00行", 6)]


def test_jsonl_passes_ids_through(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"id": "doc-7", "text": "张伟"}\n\n{"text": "北京"}\n'
                                       '{"id": 42, "body": "x", "text": "在"}\n')
    assert [(d.doc_id, d.text, d.line) for d in read_documents(path)] == [
        ("doc-7", "张伟", 1), (3, "北京", 3), (42, "在", 4)]
    alt = write(tmp_path / "b.jsonl", '{"key": "k1", "body": "张伟"}\n')
    assert list(read_documents(alt, text_column="body", id_column="key")) == [
        Document("k1", "张伟", 1)]


def test_bad_json_line_is_named(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"text": "ok"}\n{"text": "broken"\n')
    with pytest.raises(InputError, match=r"a\.jsonl:2: invalid JSON"):
        list(read_documents(path))
    with pytest.raises(InputError, match=r":1: no key 'text'; the keys are: body"):
        list(read_documents(write(tmp_path / "b.jsonl", '{"body": "x"}\n')))


def test_csv_and_tsv_columns(tmp_path):
    path = write(tmp_path / "a.csv", 'id,text,other\nd1,"张伟, 北京",x\nd2,"两\n行",y\n,空,z\n')
    assert list(read_documents(path)) == [Document("d1", "张伟, 北京", 2),
                                          Document("d2", "两\n行", 3), Document(3, "空", 5)]
    tsv = write(tmp_path / "a.tsv", "body\tkey\n张伟\tk1\n")
    assert list(read_documents(tsv, text_column="body", id_column="key")) == [
        Document("k1", "张伟", 2)]


def test_csv_missing_column_lists_the_columns(tmp_path):
    path = write(tmp_path / "a.csv", "id,body\n1,张伟\n")
    with pytest.raises(InputError, match=r"a\.csv:1: no column 'text'; the columns are: id, body"):
        list(read_documents(path))
    frame = pd.DataFrame({"id": [1], "body": ["张伟"]})
    with pytest.raises(InputError, match="the columns are: id, body"):
        Tagger(stub_tagger().predictor, None).annotate_frame(frame)


def test_invalid_utf8_names_line_and_byte(tmp_path):
    path = write(tmp_path / "a.txt", "张伟\n".encode() + b"ab\xffcd\n")
    with pytest.raises(InputError, match=r"a\.txt:2: invalid UTF-8 at byte 9 of the file"):
        list(read_documents(path))
    assert list(read_documents(path, errors="replace"))[1] == Document(2, "ab\ufffdcd", 2)


def test_errors_replace_annotates_with_valid_offsets(tmp_path):
    path = write(tmp_path / "a.txt", b"\xff\xfe" + "张伟明\n".encode())
    out = tmp_path / "out.jsonl"
    annotate_files([path], stub_tagger(), output=out, errors="replace", progress=False)
    [record] = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert record["text"] == "\ufffd\ufffd张伟明"
    assert [(e["start"], e["end"], e["text"]) for e in record["entities"]] == [(2, 5, "张伟明")]


# -- writers and annotate_files ----------------------------------------------------------------

def test_writers_quote_and_round_trip(tmp_path):
    tricky = Entity(0, 9, "ORG", 'a,"b"\nc\rd', 0.123456)
    docs = [("d,1", 'a,"b"\nc\rd + more', [tricky, Entity(10, 11, "PER", "+", 1.0)]),
            (2, "无实体", [])]
    for fmt in ("csv", "json", "jsonl"):
        write_annotations(tmp_path / f"o.{fmt}", docs)
    frame = pd.read_csv(tmp_path / "o.csv", dtype={"doc_id": str, "text": str},
                        keep_default_na=False)
    assert list(frame.columns) == list(HEADER)
    assert frame.values.tolist() == [["d,1", 0, 9, "ORG", tricky.text, 0.1235],
                                     ["d,1", 10, 11, "PER", "+", 1.0]]
    records = json.loads((tmp_path / "o.json").read_text("utf-8"))
    assert records == [json.loads(line) for line in
                       (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    assert records[0]["entities"][0] == {"start": 0, "end": 9, "label": "ORG",
                                         "text": tricky.text, "score": 0.1235}
    assert records[1] == {"id": 2, "text": "无实体", "entities": []}


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_outputs_reproduce_the_entities(tagger, tmp_path, fmt):
    src = write(tmp_path / "news.txt", "\n".join(NEWS[:8]) + "\n")
    out = tmp_path / f"out.{fmt}"
    report = annotate_files([src], tagger, output=out, progress=False)
    expected = [(i + 1, e) for i, ents in enumerate(tagger.pipe(NEWS[:8])) for e in ents]
    assert report.documents == 8 and report.entities == len(expected) > 0
    if fmt == "csv":
        frame = pd.read_csv(out, dtype={"text": str}, keep_default_na=False)
        got = [(r.doc_id, r.start, r.end, r.label, r.text, r.score) for r in frame.itertuples()]
    else:
        text = out.read_text("utf-8")
        records = json.loads(text) if fmt == "json" else [json.loads(x) for x in text.splitlines()]
        assert [r["id"] for r in records] == list(range(1, 9))
        assert [r["text"] for r in records] == NEWS[:8]
        got = [(r["id"], e["start"], e["end"], e["label"], e["text"], e["score"])
               for r in records for e in r["entities"]]
    assert got == [(i, e.start, e.end, e.label, e.text, round(e.score, 4)) for i, e in expected]


def test_annotate_frame(tagger):
    frame = pd.DataFrame({"key": ["a", "b", "c"], "text": [NEWS[0], None, SENTENCE]})
    long = tagger.annotate_frame(frame, id_column="key", empty="drop")
    assert list(long.columns) == list(HEADER)
    assert set(long.doc_id) <= {"a", "c"}
    expected = spans(tagger(NEWS[0]) + tagger(SENTENCE))
    assert expected and spans(long.itertuples()) == expected
    assert tagger.annotate_frame(frame.iloc[1:2], empty="drop").empty


@pytest.mark.parametrize("fmt,expected", [("csv", ",".join(HEADER) + "\n"), ("json", "[]\n"),
                                          ("jsonl", "")])
def test_empty_input_gives_valid_empty_output(tmp_path, fmt, expected):
    out = tmp_path / f"out.{fmt}"
    report = annotate_files([write(tmp_path / "e.txt", "")], stub_tagger(), output=out,
                            progress=False)
    assert report.documents == 0 and out.read_text("utf-8") == expected


def test_several_inputs_prefix_ids(tmp_path):
    a = write(tmp_path / "a.txt", "张伟明\n\n张伟\n")
    b = write(tmp_path / "b.jsonl", '{"id": "x", "text": "张明"}\n')
    out = tmp_path / "out.csv"
    annotate_files([a, b], stub_tagger(), output=out, progress=False)
    frame = pd.read_csv(out, dtype=str)
    assert frame.doc_id.tolist() == [f"{a}:1", f"{a}:3", f"{b}:x"]


# -- resume and atomicity ----------------------------------------------------------------------

class Interrupted(Exception):
    pass


def failing_after(tagger: Tagger, calls: int) -> Tagger:
    """A tagger whose ``pipe`` raises on chunk number ``calls + 1``."""
    wrapped, seen = Tagger(tagger.predictor, tagger.meta), []

    def pipe(texts, **kwargs):
        seen.append(len(texts))
        if len(seen) > calls:
            raise Interrupted
        return tagger.pipe(texts, **kwargs)

    wrapped.pipe = pipe
    return wrapped


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_resume_gives_byte_identical_output(tagger, tmp_path, fmt):
    src = write(tmp_path / "news.txt", "\n".join(NEWS) + "\n")  # chunks of 16 documents
    reference = tmp_path / f"reference.{fmt}"
    annotate_files([src], tagger, output=reference, batch_size=2, progress=False)
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(Interrupted):
        annotate_files([src], failing_after(tagger, 1), output=out, batch_size=2, progress=False)
    partial, state = Path(f"{out}.partial"), Path(f"{out}.partial.json")
    assert not out.exists() and partial.is_file()
    assert json.loads(state.read_text("utf-8"))["documents"] == 16
    with open(partial, "a", encoding="utf-8") as handle:  # rows after the last saved chunk
        handle.write("garbage that a crash left behind\n")
    counting = failing_after(tagger, 99)
    report = annotate_files([src], counting, output=out, batch_size=2, resume=True,
                            progress=False)
    assert out.read_bytes() == reference.read_bytes()
    assert report.documents == len([t for t in NEWS if t]) > 16 and report.resumed == 16
    assert not partial.exists() and not state.exists()


def test_resume_refuses_a_different_job(tmp_path):
    src = write(tmp_path / "a.txt", "张伟明\n" * 40)
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupted):
        annotate_files([src], failing_after(stub_tagger(batch_size=1), 1), output=out,
                       batch_size=1, progress=False)
    with pytest.raises(InputError, match="different job"):
        annotate_files([src], stub_tagger(), output=out, format="jsonl", resume=True,
                       progress=False)
    write(src, "张伟明\n" * 41)
    with pytest.raises(InputError, match=r"different job \(the input files differ\)"):
        annotate_files([src], stub_tagger(), output=out, resume=True, progress=False)
    # without --resume the stale partial is overwritten
    annotate_files([src], stub_tagger(), output=out, progress=False)
    assert len(pd.read_csv(out)) == 41 and not Path(f"{out}.partial").exists()


def test_failure_midway_leaves_no_output(tmp_path):
    src = write(tmp_path / "a.txt", "张伟明\n" * 40)
    out = tmp_path / "out.jsonl"
    with pytest.raises(Interrupted):
        annotate_files([src], failing_after(stub_tagger(), 0), output=out, batch_size=1,
                       progress=False)
    assert not out.exists()
    out.write_text("old output\n", "utf-8")
    write(tmp_path / "bad.jsonl", '{"text": "张伟"}\n' * 20 + "{oops\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:21: invalid JSON"):
        annotate_files([tmp_path / "bad.jsonl"], stub_tagger(batch_size=1), output=out,
                       progress=False)
    assert out.read_text("utf-8") == "old output\n"


# -- command line ------------------------------------------------------------------------------

@pytest.fixture
def runner():
    return CliRunner()


def test_cli_writes_the_format_of_the_output_suffix(runner, model_dir, tmp_path):
    src = write(tmp_path / "news.txt", "\n".join(NEWS[:3]) + "\n")
    out = tmp_path / "out.json"
    result = runner.invoke(main, ["annotate", str(src), "--model", str(model_dir), "-o", str(out)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(out.read_text("utf-8"))] == [1, 2, 3]
    assert "annotated 3 documents" in result.stderr


def test_cli_reads_stdin_and_writes_stdout(runner, model_dir):
    result = runner.invoke(main, ["annotate", "-", "--model", str(model_dir), "--format",
                                  "jsonl"], input="\n".join(NEWS[:2]).encode() + b"\n")
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["text"] for r in records] == NEWS[:2]


def test_cli_invalid_utf8_exits_2_with_one_line(runner, model_dir, tmp_path):
    src = write(tmp_path / "a.txt", "张伟\n".encode() + b"ab\xffcd\n")
    result = runner.invoke(main, ["annotate", str(src), "--model", str(model_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {src}:2: invalid UTF-8 at byte 9 of the file "
        "(re-encode it as UTF-8, or pass --decode-errors replace)"]
    assert result.stdout == ""  # nothing was written before the error


def test_cli_missing_csv_column_and_resume_without_output(runner, model_dir, tmp_path):
    src = write(tmp_path / "a.csv", "id,body\n1,张伟\n")
    result = runner.invoke(main, ["annotate", str(src), "--model", str(model_dir)])
    assert result.exit_code == 2 and "the columns are: id, body" in result.stderr
    result = runner.invoke(main, ["annotate", str(src), "-m", str(model_dir), "--resume"])
    assert result.exit_code == 2 and "--resume needs --output" in result.stderr


def test_cli_help_has_an_example(runner):
    result = runner.invoke(main, ["annotate", "--help"])
    assert result.exit_code == 0 and "Example" in result.output and "--resume" in result.output


def test_library_errors_are_cner_errors(tmp_path):
    with pytest.raises(CnerError, match="file not found"):
        annotate_files([tmp_path / "missing.txt"], stub_tagger(), progress=False)
    with pytest.raises(CnerError, match="read only once"):
        annotate_files(["-", "-"], stub_tagger(), progress=False)


def test_stdout_output_of_the_library(tmp_path, capsys):
    annotate_files([write(tmp_path / "a.txt", "张伟明\n")], stub_tagger(), progress=False)
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert frame.values.tolist() == [[1, 0, 3, "PER", "张伟明", 0.9]]


def test_cli_stdin_errors_name_stdin_and_replace_works(runner, model_dir):
    data = "张伟\n".encode() + b"x\xffy\n"
    result = runner.invoke(main, ["annotate", "-", "--model", str(model_dir)], input=data)
    assert result.exit_code == 2
    assert "error: <stdin>:2: invalid UTF-8 at byte 8 of standard input" in result.stderr
    result = runner.invoke(main, ["annotate", "-", "-m", str(model_dir), "--format", "jsonl",
                                  "--decode-errors", "replace"], input=data)
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["text"] for x in result.stdout.splitlines()] == ["张伟", "x\ufffdy"]


@needs_bf16
def test_bf16_annotation_agrees_with_fp32(model_dir):
    texts = [ex.text for ex in read_corpus(SAMPLE / "test.conll").examples]
    fp32 = Tagger.load(model_dir, precision="fp32")
    bf16 = Tagger.load(model_dir, precision="bf16")
    assert bf16.predictor.model.encoder.dtype == torch.bfloat16
    a = [spans(f) for f in fp32.pipe(texts)]
    b = [spans(f) for f in bf16.pipe(texts)]
    assert sum(map(len, a)) > 0  # the comparison is not between two empty lists
    same = sum(x == y for x, y in zip(a, b))
    assert same >= 0.97 * len(texts), f"only {same}/{len(texts)} texts annotated identically"
