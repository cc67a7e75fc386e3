"""Reliability catalogue: malformed or unusual inputs fail with FILE:LINE, or are read right.

Each case is one thing a careless user gives `cner` (see `catalogue.Case`): a CSV with an
unbalanced quote, a JSON Lines id JSON output cannot hold, span offsets that are not
integers, unknown tags read leniently, and inputs that are devices or pipes rather than files.
The plain tests below the table cover the Python API (the classification readers, the
writers) and what a table cannot express (a pipe's descriptor).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reliability_catalogue import MODEL, Case, check_case, run_cner
from cner.data.classification import read_classification_file
from cner.data.delimited import MAX_QUOTED_LINES
from cner.errors import InputError, ModelError
from cner.inference.documents import all_documents, read_documents
from cner.inference.predictor import Entity
from cner.inference.writers import write_annotations

NEWS = "张伟在北京大学工作。"
LONG = MAX_QUOTED_LINES + 50  # lines swallowed by a quote that closes too late
SWALLOWED = "".join(f"{n},李娜去了上海。\n" for n in range(3, 3 + LONG))
CONLL = "张\tB-PER\n伟\tI-PER\n在\tO\n北\tB-LOC\n京\tI-LOC\n\n"
# Unknown tags on lines 2-13, each different: the error must name line 2 and its tag, Q0-PER.
UNKNOWN_TAGS = "甲\tO\n" + "".join(f"乙\tQ{n}-PER\n" for n in range(12))
ANNOTATE = ["annotate", "-m", MODEL]


def span_line(entity: str) -> str:
    return '{"id": "1", "text": "张伟在北京", "entities": [' + entity + "]}\n"


CASES = [
    # -- an unbalanced quote in a CSV/TSV input must not swallow the rows after it ----------
    Case("csv quote left open to the end of the file",
         {"a.csv": f'id,text\n1,{NEWS}\n2,"{NEWS}\n3,{NEWS}\n4,{NEWS}\n'},
         [*ANNOTATE, "a.csv", "-o", "out.csv"], 2,
         r"a\.csv:3: a quoted field opened on this line is not closed before the end of the "
         r"file", absent=("out.csv",)),
    Case("csv quote closed by a stray quote inside a later row",
         {"a.csv": f'id,text\n1,"{NEWS}\n2,李娜"去了上海\n3,{NEWS}\n'},
         [*ANNOTATE, "a.csv", "-o", "out.csv"], 2, r"a\.csv:2: malformed CSV",
         absent=("out.csv",)),
    Case("csv quote closed at a field boundary after more than the line limit",
         {"a.csv": f'id,text\n1,{NEWS}\n2,"{NEWS}\n{SWALLOWED}9,end"\n'},
         [*ANNOTATE, "a.csv", "-o", "out.csv"], 2,
         rf"a\.csv:3: a quoted field opened on this line runs past {MAX_QUOTED_LINES:,} lines",
         absent=("out.csv",)),
    Case("tsv quote left open, opened on the second line of a multi-line row",
         {"a.tsv": f'id\ttext\tnote\n1\t"两\n行"\t"x\n2\t{NEWS}\ty\n'},
         [*ANNOTATE, "a.tsv", "--format", "jsonl"], 2, r"a\.tsv:3: a quoted field opened"),
    Case("csv quoted field over several lines is still one document",
         {"a.csv": f'id,text\nd1,"{NEWS}\n{NEWS}"\nd2,{NEWS}\n'},
         [*ANNOTATE, "a.csv", "--format", "jsonl"], 0,
         r'"id": "d1", "text": "张伟在北京大学工作。\\n张伟在北京大学工作。"'),
    # -- JSON Lines output is valid JSON whatever the ids in the input -----------------------
    Case("jsonl id too large for a float",
         {"in.jsonl": f'{{"id": 1e999, "text": "{NEWS}"}}\n'},
         [*ANNOTATE, "in.jsonl", "-o", "out.jsonl"], 2,
         r"in\.jsonl:1: the id holds the number 1e999, too large for a float",
         absent=("out.jsonl",)),
    Case("jsonl id too large for a float, written to standard output",
         {"in.jsonl": f'{{"id": "ok", "text": "{NEWS}"}}\n{{"id": -1E400, "text": "x"}}\n'},
         [*ANNOTATE, "in.jsonl", "--format", "jsonl"], 2, r"in\.jsonl:2: .*-1E400"),
    Case("jsonl NaN id is not JSON",
         {"in.jsonl": f'{{"id": NaN, "text": "{NEWS}"}}\n'},
         [*ANNOTATE, "in.jsonl", "-o", "out.json"], 2,
         r"in\.jsonl:1: invalid JSON: NaN is not a JSON value", absent=("out.json",)),
    Case("jsonl Infinity in an ignored key is still not JSON",
         {"in.jsonl": f'{{"id": 1, "text": "{NEWS}", "w": -Infinity}}\n'},
         [*ANNOTATE, "in.jsonl", "--format", "jsonl"], 2, r"in\.jsonl:1: .*-Infinity"),
    Case("jsonl large float in an ignored key is fine",
         {"in.jsonl": f'{{"id": 2.5, "text": "{NEWS}", "w": 1e999}}\n'},
         [*ANNOTATE, "in.jsonl", "--format", "jsonl"], 0, r'^\{"id": 2\.5, "text"'),
    # -- span JSON Lines: offsets are integers as written, labels are strings ----------------
    Case("span jsonl fractional start",
         {"in.jsonl": span_line('{"start": 0.5, "end": 2, "label": "PER"}')},
         ["corpora", "convert", "in.jsonl", "--to", "conll", "-o", "out.conll"], 2,
         r"in\.jsonl:1: entity .*needs integer .*'start' is float 0\.5",
         absent=("out.conll",)),
    Case("span jsonl start as a string",
         {"in.jsonl": span_line('{"start": "0", "end": 2, "label": "PER"}')},
         ["corpora", "convert", "in.jsonl", "--to", "conll", "-o", "out.conll"], 2,
         r"in\.jsonl:1: entity .*: 'start' is str '0'",
         absent=("out.conll",)),
    Case("span jsonl end as a boolean",
         {"in.jsonl": span_line('{"start": 0, "end": true, "label": "PER"}')},
         ["corpora", "convert", "in.jsonl", "--to", "jsonl"], 2,
         r"in\.jsonl:1: entity .*: 'end' is bool True"),
    Case("span jsonl numeric label",
         {"in.jsonl": span_line('{"start": 0, "end": 2, "label": 7}')},
         ["corpora", "convert", "in.jsonl", "--to", "conll", "-o", "out.conll"], 2,
         r"in\.jsonl:1: entity .*: 'label' is int 7",
         absent=("out.conll",)),
    Case("span jsonl on the second line is named",
         {"in.jsonl": span_line('{"start": 0, "end": 2, "label": "PER"}')
          + span_line('{"start": 3, "end": 5.0, "label": "LOC"}')},
         ["corpora", "stats", "in.jsonl"], 2, r"in\.jsonl:2: entity .*: 'end' is float 5\.0"),
    # -- lenient reading names the line of the tag it cannot read -----------------------------
    Case("lenient convert names the first unknown tag and its line",
         {"in.conll": CONLL + UNKNOWN_TAGS},
         ["corpora", "convert", "in.conll", "--lenient", "--to", "jsonl", "-o", "out.jsonl"], 2,
         r"in\.conll:8: unknown tag 'Q0-PER'", absent=("out.jsonl",)),
    Case("lenient stats names the first unknown tag and its line",
         {"in.conll": UNKNOWN_TAGS}, ["corpora", "stats", "in.conll"], 2,
         r"in\.conll:2: unknown tag 'Q0-PER'"),
    # -- devices and pipes are inputs; directories and missing paths are not ----------------
    Case("/dev/null is an empty input", {}, [*ANNOTATE, "/dev/null"], 0,
         r"^doc_id,start,end,label,text,score\n$"),
    Case("/dev/null as one of two inputs", {"a.txt": NEWS + "\n"},
         [*ANNOTATE, "/dev/null", "a.txt", "--format", "jsonl"], 0, r'"id": "a\.txt:1"'),
    Case("a directory is still refused", {"d/": ""}, [*ANNOTATE, "d"], 2,
         r"d: is a directory, expected a file"),
    Case("a missing input is still refused", {}, [*ANNOTATE, "missing.txt"], 2,
         r"missing\.txt: file not found"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path, request):
    model = request.getfixturevalue("tiny_model") if MODEL in case.command else None
    check_case(case, tmp_path, model)


# -- annotation inputs: the Python API ---------------------------------------------------------

def write(path: Path, content: str) -> Path:
    path.write_bytes(content.encode("utf-8"))
    return path


def test_runaway_quote_in_a_document_table_names_the_line_it_opened_on(tmp_path):
    path = write(tmp_path / "a.csv", f'id,text\n1,"{NEWS}\n{SWALLOWED}9,end"\n')
    with pytest.raises(InputError) as info:
        list(read_documents(path))
    assert (info.value.path, info.value.line) == (str(path), 2)
    closed = write(tmp_path / "b.csv", 'id,text\n1,"a\n' + "b\n" * (MAX_QUOTED_LINES - 2)
                   + 'c"\n2,d\n')  # exactly the limit: one document
    assert [(d.doc_id, d.line) for d in read_documents(closed)] == [("1", 2), ("2", 2 + 1000)]
    assert next(iter(read_documents(closed))).text.count("\n") == MAX_QUOTED_LINES - 1


def test_a_pipe_descriptor_is_an_input(tmp_path, tiny_model):
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, f"{NEWS}\n\n李娜去了上海。\n".encode())
        os.close(write_end)
        code, output = run_cner(["annotate", f"/dev/fd/{read_end}", "-m", str(tiny_model),
                                 "--format", "jsonl"], tmp_path)
    finally:
        os.close(read_end)
    assert code == 0, output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [(r["id"], r["text"]) for r in records] == [(1, NEWS), (3, "李娜去了上海。")]


def test_a_stream_counts_the_bytes_read_as_its_size(tmp_path):
    read_end, write_end = os.pipe()
    other = write(tmp_path / "b.txt", "乙\n")
    try:
        os.write(write_end, "甲\n".encode())
        os.close(write_end)
        done = [size for _, size in all_documents([f"/dev/fd/{read_end}", str(other)],
                                                  text_column="text", id_column=None,
                                                  errors="strict")]
    finally:
        os.close(read_end)
    assert done == [4, 8]  # 4 bytes read from the pipe, then the file's 4


# -- the classification readers ---------------------------------------------------------------

def test_classification_csv_runaway_quote_names_the_line_it_opened_on(tmp_path):
    rows = "".join(f"{n % 2},review {n}\n" for n in range(LONG))
    path = write(tmp_path / "r.csv", f'label,review\n1,fine\n0,"broken\n{rows}1,end"\n')
    with pytest.raises(InputError, match=r"r\.csv:3: a quoted field .* runs past"):
        read_classification_file(path, text_column="review", label_column="label")


def test_classification_tsv_quote_left_open_names_its_own_line(tmp_path):
    # the row starts on line 2 with a good two-line quoted field; the bad quote opens on line 3
    path = write(tmp_path / "p.tsv", 'label\ttext\tpair\n1\t"two\nlines"\t"open\n0\tx\ty\n')
    with pytest.raises(InputError) as info:
        read_classification_file(path, text_column="text", text_pair_column="pair",
                                 label_column="label")
    assert info.value.line == 3 and "not closed before the end of the file" in str(info.value)
    assert "quoting=False" in str(info.value)  # the reader's own hint is kept


# -- the writers ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_outputs_refuse_non_finite_ids_and_scores(tmp_path, fmt):
    good = Entity(0, 2, "PER", "张伟", 0.9)
    out = tmp_path / f"out.{fmt}"
    for doc_id in (float("nan"), float("inf"), [1, float("-inf")]):
        with pytest.raises(InputError, match="NaN or an infinite number"):
            write_annotations(out, [("ok", "张伟", [good]), (doc_id, "张伟", [good])])
        assert not out.exists()
    with pytest.raises(ModelError, match="score that is not a number"):
        write_annotations(out, [(1, "张伟", [Entity(0, 2, "PER", "张伟", float("nan"))])])
    assert write_annotations(out, [(1.5, "张伟", [good])]) == 1
    text = out.read_text("utf-8")
    assert "NaN" not in text and "Infinity" not in text
    records = [json.loads(x) for x in text.splitlines()] if fmt == "jsonl" else json.loads(text)
    assert records[0]["id"] == 1.5
