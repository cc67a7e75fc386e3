"""The Python API refuses wrong types and sizes with a clear error, and `cner evaluate` scores
exactly the entities `cner annotate` writes (one engine for both)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from reliability_catalogue import SAMPLE, run_cner
from cner.data.formats import read_corpus
from cner.errors import InputError
from cner.inference.tagger import Tagger
from cner.metrics import entity_scores
from cner.schemes import Span


@pytest.fixture(scope="module")
def tagger(tiny_model) -> Tagger:
    return Tagger.load(tiny_model, precision="fp32")


@pytest.mark.parametrize("call, error, message", [
    (lambda t: t(None), TypeError, "text must be a str, got NoneType"),
    (lambda t: t(b"bytes"), TypeError, "text must be a str, got bytes"),
    (lambda t: list(t.pipe("a string")), TypeError, "iterable of texts, got a single str"),
    (lambda t: list(t.pipe(["ok", 3])), TypeError, "text 2 of the chunk must be a str, got int"),
    (lambda t: list(t.pipe(["a"], chunk_size=-1)), ValueError, "chunk_size must be a positive"),
    (lambda t: list(t.pipe(["a"], chunk_size=0)), ValueError, "chunk_size must be a positive"),
    (lambda t: list(t.pipe(["a"], batch_size=0)), ValueError, "batch_size must be a positive"),
], ids=["none", "bytes", "pipe-str", "pipe-int", "chunk-negative", "chunk-zero", "batch-zero"])
def test_tagger_calls_with_wrong_types_or_sizes_fail_clearly(tagger, call, error, message):
    with pytest.raises(error, match=message):
        call(tagger)


@pytest.mark.parametrize("batch_size", [0, -5, 2.5])
def test_tagger_load_refuses_a_batch_size_below_one(tiny_model, batch_size):
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        Tagger.load(tiny_model, batch_size=batch_size)


def test_annotate_frame_refuses_duplicate_column_names(tagger):
    frame = pd.DataFrame([["张伟", "x"]], columns=["text", "text"])
    with pytest.raises(InputError, match="2 columns named 'text'"):
        tagger.annotate_frame(frame)


def test_evaluate_scores_the_entities_annotate_writes(tiny_model, tmp_path):
    test = read_corpus(SAMPLE / "test.conll").examples
    (tmp_path / "test.txt").write_text("".join(ex.text + "\n" for ex in test), "utf-8")
    code, output = run_cner(["annotate", "test.txt", "-m", str(tiny_model), "-o", "out.jsonl",
                             "--no-compile"], tmp_path)
    assert code == 0, output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    predicted = [[Span(e["start"], e["end"], e["label"]) for e in row["entities"]] for row in rows]
    assert sum(map(len, predicted)) > 0, "the tiny model found no entity: nothing compared"
    expected = entity_scores([ex.spans for ex in test], predicted, [len(ex.text) for ex in test])
    code, output = run_cner(["evaluate", "-m", str(tiny_model), "-d", str(SAMPLE / "test.conll"),
                             "--json", "scores.json"], tmp_path)
    assert code == 0, output
    assert json.loads((tmp_path / "scores.json").read_text()) == json.loads(json.dumps(expected))


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_evaluate_on_an_empty_corpus_is_one_clear_error(tiny_model, tmp_path, content):
    from reliability_catalogue import Case, check_case

    case = Case("evaluate on an empty corpus", {"empty.conll": content},
                ["evaluate", "-m", "{model}", "-d", "empty.conll", "--json", "s.json"], 2,
                r"^error: empty\.conll.*(no sentences|empty)", absent=("s.json",))
    output = check_case(case, tmp_path, tiny_model)
    assert len(output.strip().splitlines()) == 1, output
