"""One meaning per option name across the commands (issue 12).

``--format`` / ``--scheme`` name the input's format and tag scheme, ``--to`` / ``--to-scheme``
the output's; inputs are positional; ``--device`` / ``--precision`` are on every command that
runs a model; every option has help. Old spellings still work, hidden. Also: ``cner train``
prints its test scores, ``Tagger.annotate_frame`` keeps every document under its index, and
``predict`` keys its rows by an ``id`` column, as ``annotate`` does.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import click
from click.testing import CliRunner
import pandas as pd
import pytest

from cner.cli import main
from reliability_catalogue import ROOT, SAMPLE, run_cner

NEWS = "张伟在北京大学工作。\n李娜去了上海。\n"
TINY = ["--set", "model.hidden_size=32", "--set", "model.num_layers=1", "--set",
        "model.num_heads=2", "--set", "model.intermediate_size=64", "--set",
        "training.max_steps=2", "--set", "training.eval_every=2", "--set", "training.threads=1",
        "-q"]
# Every command that runs a model.
RUNS_A_MODEL = ["train", "evaluate", "annotate", "sentiment train", "sentiment evaluate",
                "sentiment predict", "glue train", "glue evaluate", "glue predict"]


def commands(group: click.Group = main, prefix: str = ""):
    """``(name, command)`` of every command below ``group``, ``"sentiment predict"`` style."""
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from commands(command, path + " ")
        else:
            yield path, command


def command(path: str) -> click.Command:
    return dict(commands())[path]


def options(cmd: click.Command, *, hidden: bool = False) -> dict[str, click.Option]:
    return {name: p for p in cmd.params if isinstance(p, click.Option) and p.hidden == hidden
            for name in (*p.opts, *p.secondary_opts)}


def one_line_error(code: int, output: str, pattern: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), output


# -- the option names -------------------------------------------------------------------------

def test_every_option_has_help():
    missing = [f"cner {path} {p.opts[0]}" for path, cmd in commands() for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert missing == []


def test_format_and_scheme_name_the_input_and_to_the_output():
    for path, cmd in commands():
        visible = options(cmd)
        for name, meaning in (("--format", "Input format"), ("--scheme", "Tag scheme of a "
                                                                         "column-file input"),
                              ("--to", "Output format"), ("--to-scheme", "Tag scheme of a "
                                                                        "column-file output")):
            if name in visible:
                assert visible[name].help.startswith(meaning), (path, name, visible[name].help)
    for path in ("annotate", "sentiment predict", "glue predict", "corpora convert"):
        assert "--to" in options(command(path)), path
    for path in ("annotate", "sentiment predict", "glue predict"):
        assert "--format" in options(command(path), hidden=True), path  # the old name


def test_inputs_are_positional_and_their_old_options_hidden():
    for path in ("evaluate", "annotate", "sentiment evaluate", "sentiment predict",
                 "glue evaluate", "glue predict", "corpora stats", "corpora convert"):
        cmd = command(path)
        assert any(isinstance(p, click.Argument) for p in cmd.params), path
        assert not {"--data", "-d", "--input"} & set(options(cmd)), path
    assert {"--data", "-d"} <= set(options(command("evaluate"), hidden=True))
    assert "--input" in options(command("glue predict"), hidden=True)


def test_device_and_precision_on_every_command_that_runs_a_model():
    for path in RUNS_A_MODEL:
        assert {"--device", "--precision"} <= set(options(command(path))), path


def test_sentiment_evaluate_help_shows_a_sentiment_example():
    result = CliRunner().invoke(main, ["sentiment", "evaluate", "--help"])
    assert result.exit_code == 0
    assert "cner sentiment evaluate" in result.output and "chnsenticorp" in result.output


# -- the names at work ------------------------------------------------------------------------

def test_evaluate_takes_its_data_as_an_argument(tmp_path, tiny_model):
    data = str(SAMPLE / "dev.conll")
    code, positional = run_cner(["evaluate", "-m", str(tiny_model), data], tmp_path)
    assert code == 0 and "micro avg" in positional, positional
    code, old = run_cner(["evaluate", "-m", str(tiny_model), "-d", data], tmp_path)
    assert code == 0 and old == positional
    code, output = run_cner(["evaluate", "-m", str(tiny_model), data, "--data",
                             str(SAMPLE / "test.conll")], tmp_path)
    one_line_error(code, output, r"^error: give DATA once")
    code, output = run_cner(["evaluate", "-m", str(tiny_model)], tmp_path)
    assert code == 2 and "Missing argument 'DATA'" in output


def test_annotate_writes_the_format_to_names_and_format_still_works(tmp_path, tiny_model):
    source = tmp_path / "a.txt"
    source.write_text(NEWS, "utf-8")
    runner, base = CliRunner(), ["annotate", str(source), "-m", str(tiny_model)]
    new = runner.invoke(main, [*base, "--to", "jsonl"])
    old = runner.invoke(main, [*base, "--format", "jsonl"])
    clash = runner.invoke(main, [*base, "--format", "jsonl", "--to", "csv"])
    assert new.exit_code == 0 and old.exit_code == 0, new.output + old.output
    assert [json.loads(line)["text"] for line in new.stdout.splitlines()] == NEWS.splitlines()
    assert old.stdout == new.stdout and new.stderr == ""
    assert old.stderr.strip().splitlines() == [
        "note: --format names the output format here only for compatibility; use --to jsonl "
        "(elsewhere --format is the input format)"]
    assert clash.exit_code == 2 and "--format is the old name of --to" in clash.stderr


def test_convert_scheme_is_the_input_scheme_and_to_scheme_the_output(tmp_path):
    source = SAMPLE / "dev.conll"
    code, output = run_cner(["corpora", "convert", str(source), "--to", "conll",
                             "--to-scheme", "bmes", "-o", "dev.bmes"], tmp_path)
    assert code == 0, output
    assert "E-" in (tmp_path / "dev.bmes").read_text("utf-8")
    expected = run_cner(["corpora", "convert", str(source), "--to", "jsonl"], tmp_path)[1]
    for spelling in ("--scheme", "--from-scheme"):
        code, output = run_cner(["corpora", "convert", "dev.bmes", spelling, "bmes", "--to",
                                 "jsonl"], tmp_path)
        assert code == 0 and output == expected, output
    code, output = run_cner(["corpora", "convert", "dev.bmes", "--scheme", "bmes",
                             "--from-scheme", "bio", "--to", "jsonl"], tmp_path)
    one_line_error(code, output, r"--from-scheme is the old name of --scheme")


# -- --device and --precision -----------------------------------------------------------------

@pytest.mark.parametrize("argv, pattern", [
    (["evaluate", "-m", "{model}", str(SAMPLE / "dev.conll"), "--device", "tpu"],
     r"^error: --device=tpu is not a device"),
    (["evaluate", "-m", "{model}", str(SAMPLE / "dev.conll"), "--device", "cpu",
      "--precision", "fp16"], r"^error: --precision=fp16 needs a GPU"),
    (["sentiment", "evaluate", "-m", "{model}", "rows.csv", "--device", "tpu"],
     r"^error: --device=tpu is not a device"),
    (["glue", "predict", "-m", "{model}", "rows.csv", "-o", "out.csv", "--device", "cpu",
      "--precision", "fp16"], r"^error: --precision=fp16 needs a GPU"),
    (["train", "--train", str(SAMPLE / "dev.conll"), "-o", "run", "--device", "tpu", *TINY],
     r"^error: --device=tpu is not a device"),
    (["train", "--train", str(SAMPLE / "dev.conll"), "-o", "run", "--device", "cpu",
      "--precision", "fp16", *TINY], r"^error: --precision=fp16 needs a GPU"),
    (["sentiment", "train", "--train", "rows.csv", "-o", "run", "--device", "tpu", "-q"],
     r"^error: --device=tpu is not a device"),
], ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None)
def test_device_errors_name_the_option(tmp_path, tiny_model, argv, pattern):
    (tmp_path / "rows.csv").write_text("text,label\n很好,1\n", "utf-8")
    code, output = run_cner([str(tiny_model) if a == "{model}" else a for a in argv], tmp_path)
    one_line_error(code, output, pattern)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_train_device_and_precision_are_config_shortcuts(tmp_path):
    code, output = run_cner(["train", "--train", str(SAMPLE / "dev.conll"), "-o", "run",
                             "--device", "cpu", "--precision", "fp32", *TINY], tmp_path)
    assert code == 0, output
    saved = (tmp_path / "run" / "cner_config.yaml").read_text("utf-8")
    assert re.search(r"\bdevice: cpu\b", saved) and re.search(r"\bprecision: fp32\b", saved)
    code, output = run_cner(["train", "--resume", "run", "--device", "cpu", "-q"], tmp_path)
    one_line_error(code, output, r"^error: --resume continues a run with its saved config; "
                                 r"drop .*--device")


# -- cner train prints the test scores --------------------------------------------------------

def test_train_prints_the_test_scores_it_computed(tmp_path):
    code, output = run_cner(["train", "--train", str(SAMPLE / "train.conll"), "--dev",
                             str(SAMPLE / "dev.conll"), "--test", str(SAMPLE / "test.conll"),
                             "-o", "run", "--device", "cpu", "--precision", "fp32", *TINY],
                            tmp_path)
    assert code == 0, output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text("utf-8"))
    assert "test" in summary
    after = output.split("test scores (best model):\n", 1)
    assert len(after) == 2, output
    support = summary["test"]["support"]
    assert re.search(rf"^micro avg .* {support}$", after[1], re.MULTILINE), output


# -- annotate_frame: every document, under its index ------------------------------------------

@pytest.fixture(scope="module")
def tagger(tiny_model):
    from cner.inference.tagger import Tagger

    return Tagger.load(tiny_model, precision="fp32")


def test_annotate_frame_keeps_every_document_under_its_index(tagger):
    texts = ["张伟在北京大学工作。" * 3, None, "", "李娜去了上海。"]
    frame = pd.DataFrame({"text": texts}, index=[10, 20, 30, 40])
    long = tagger.annotate_frame(frame)
    assert list(long.columns) == ["doc_id", "start", "end", "label", "text", "score"]
    assert dict(long.dtypes.astype(str).iloc[1:]) == {
        "start": "Int64", "end": "Int64", "label": "string", "text": "string",
        "score": "Float64"}
    found = [tagger(t or "") for t in texts]
    expected = [(doc_id, e.start, e.end, e.label, e.text)
                for doc_id, ents in zip(frame.index, found) for e in ents]
    assert [tuple(r) for r in long.dropna()[["doc_id", "start", "end", "label", "text"]]
            .itertuples(index=False)] == expected
    empty = [doc_id for doc_id, ents in zip(frame.index, found) if not ents]
    assert {20, 30} <= set(empty)
    missing = long[long.start.isna()]
    assert missing.doc_id.tolist() == empty
    assert missing[["end", "label", "text", "score"]].isna().all().all()
    assert long.doc_id.drop_duplicates().tolist() == [10, 20, 30, 40]  # the frame's order
    dropped = tagger.annotate_frame(frame, empty="drop")
    assert set(dropped.doc_id) == set(frame.index) - set(empty) and not dropped.isna().any().any()
    keyed = tagger.annotate_frame(frame.assign(key=list("abcd")), id_column="key")
    assert keyed.doc_id.drop_duplicates().tolist() == list("abcd")
    with pytest.raises(ValueError, match="empty must be"):
        tagger.annotate_frame(frame, empty="skip")


# -- predict keys its rows by the id column ---------------------------------------------------

@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A tiny sentiment model, trained through the command line."""
    tmp = tmp_path_factory.mktemp("senti")
    reviews = "".join(f"{text}\t{label}\n" for text, label in
                      [("酒店很干净服务好", "pos"), ("房间脏价格贵", "neg")] * 5)
    (tmp / "train.tsv").write_text("text\tlabel\n" + reviews, "utf-8")
    settings = ["data.test=null", "data.max_length=32", "model.hidden_size=32",
                "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
                "training.threads=1", "training.epochs=1", "training.batch_size=5"]
    code, output = run_cner(["sentiment", "train", "--train", "train.tsv", "--dev", "train.tsv",
                             "-c", str(ROOT / "configs" / "tiny-cpu.yaml"), "-o", "run", "-q",
                             "--device", "cpu", "--precision", "fp32",
                             *[arg for key in settings for arg in ("--set", key)]], tmp)
    assert code == 0, output
    return tmp / "run" / "model"


def test_predict_uses_the_id_column_like_annotate(tmp_path, classifier_dir):
    rows = "id,key,text\nr7,k1,酒店很干净\nr9,k2,房间脏\n"
    (tmp_path / "rows.csv").write_text(rows, "utf-8")
    (tmp_path / "rows.jsonl").write_text('{"id": "j1", "text": "很好"}\n', "utf-8")
    (tmp_path / "plain.csv").write_text("text\n酒店很干净\n房间脏\n", "utf-8")
    model = str(classifier_dir)
    for argv, ids in ((["rows.csv", "-o", "a.csv"], ["r7", "r9"]),
                      (["rows.csv", "-o", "b.csv", "--id-column", "key"], ["k1", "k2"]),
                      (["--input", "rows.csv", "-o", "c.csv"], ["r7", "r9"]),
                      (["rows.jsonl", "-o", "d.csv"], ["j1"]),
                      (["plain.csv", "-o", "e.csv"], ["1", "2"])):
        code, output = run_cner(["sentiment", "predict", "-m", model, *argv], tmp_path)
        assert code == 0, output
        written = pd.read_csv(tmp_path / argv[argv.index("-o") + 1], dtype={"id": str})
        assert written.id.tolist() == ids, argv
    code, output = run_cner(["sentiment", "predict", "-m", model, "rows.csv", "-o", "f.csv",
                             "--id-column", "nope"], tmp_path)
    one_line_error(code, output, r"rows\.csv:1: no column 'nope'")
    assert not (tmp_path / "f.csv").exists()


def test_predict_to_and_the_old_format(tmp_path, classifier_dir):
    (tmp_path / "rows.csv").write_text("text\n酒店很干净\n", "utf-8")
    model = str(classifier_dir)
    code, output = run_cner(["glue", "predict", "-m", model, "rows.csv", "-o", "p",
                             "--to", "jsonl"], tmp_path)
    assert code == 0 and "note:" not in output, output
    assert json.loads((tmp_path / "p").read_text("utf-8"))["id"] == "1"
    code, output = run_cner(["glue", "predict", "-m", model, "rows.csv", "-o", "q",
                             "--format", "jsonl"], tmp_path)
    assert code == 0 and "use --to jsonl" in output, output
    assert (tmp_path / "q").read_text("utf-8") == (tmp_path / "p").read_text("utf-8")


# -- house-keeping ----------------------------------------------------------------------------

def _function_lengths(path: Path) -> dict[str, int]:
    tree = ast.parse(path.read_text("utf-8"))
    return {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_commands_live_in_their_modules_and_functions_stay_short():
    package = ROOT / "cner"
    cli = package / "cli" / "__init__.py"
    assert "@click.command" not in cli.read_text("utf-8")
    assert len(cli.read_text("utf-8").splitlines()) < 120
    long = {f"{path.relative_to(package)}:{name}": n
            for path in [package / "inference" / "annotate.py", *sorted((package / "cli")
                                                                        .glob("*.py"))]
            for name, n in _function_lengths(path).items() if n >= 80}
    assert long == {}
