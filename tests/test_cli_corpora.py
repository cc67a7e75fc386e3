"""`cner corpora ...` through click's test runner."""
from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from cner.cli import main
from cner.data.formats import FORMATS, read_corpus
from cner.data.spanjsonl import read_span_jsonl
from cner.schemes import SCHEMES, Span

CONLL = "张\tB-PER\n三\tI-PER\n在\tO\n北\tB-LOC\n京\tI-LOC\n\n人\tO\n民\tO\n银\tB-ORG\n行\tI-ORG\n"


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args):
    return runner.invoke(main, list(args), catch_exceptions=False)


def assert_clean_error(result, path, line):
    """Exit 2 with one line 'error: FILE:LINE: ...' on stderr and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}:{line}: "), lines[0]
    assert "Traceback" not in result.output


def all_commands(group, prefix=()):
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_command_help_has_an_example(runner):
    commands = list(all_commands(main))
    assert ("corpora", "convert") in commands and ("corpora", "stats") in commands
    for command in commands:
        result = run(runner, *command, "--help")
        assert result.exit_code == 0, command
        assert "Example" in result.output, f"`cner {' '.join(command)} --help` has no example"


def test_corpora_list_mentions_every_format_and_scheme(runner):
    result = run(runner, "corpora", "list")
    assert result.exit_code == 0
    for name in FORMATS:
        assert f"  {name} " in result.output
    for scheme in SCHEMES:
        assert scheme in result.output
    for corpus in ("msra_ner", "peoples_daily_ner", "cluener2020"):
        assert corpus in result.output


def test_stats_prints_counts(runner, tmp_path):
    path = tmp_path / "small.conll"
    path.write_text(CONLL, encoding="utf-8")
    result = run(runner, "corpora", "stats", str(path))
    assert result.exit_code == 0, result.output
    rows = {line[:20].strip(): line[20:].strip() for line in result.stdout.splitlines()}
    assert rows["sentences"] == "2"
    assert rows["characters"] == "9"
    assert rows["entities"] == "3"
    assert rows["PER"] == rows["LOC"] == rows["ORG"] == "1"
    assert rows["format"] == "conll (bio)"
    assert rows["longest sentence"] == "5 characters (line 1)"
    assert rows["invalid transitions"] == "0"


def test_stats_json_parses_and_counts_repairs(runner, tmp_path):
    path = tmp_path / "broken.conll"
    path.write_text("甲\tO\n乙\tI-PER\n\n丙\tB-LOC\n丁\tI-ORG\n", encoding="utf-8")
    other = tmp_path / "c.json"
    other.write_text('{"text": "招商银行", "label": {"company": {"招商银行": [[0, 3]]}, '
                     '"name": {"招商": [[0, 1]]}}}\n', encoding="utf-8")
    result = run(runner, "corpora", "stats", "--json", str(path), str(other))
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["sentences"] == 2 and first["characters"] == 4
    assert first["invalid_transitions"] == 2
    assert first["per_type"] == {"LOC": 1, "ORG": 1, "PER": 1}
    assert (second["format"], second["scheme"], second["nested"]) == ("cluener", None, 1)
    assert second["per_type"] == {"company": 1, "name": 1}


def test_convert_writes_the_output(runner, tmp_path):
    source = tmp_path / "in.conll"
    source.write_text(CONLL, encoding="utf-8")
    out = tmp_path / "out" / "bmes.txt"
    result = run(runner, "corpora", "convert", str(source), "--to", "conll", "--to-scheme", "bmes",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 2 examples, 3 entities" in result.stderr
    assert "E-PER" in out.read_text(encoding="utf-8")
    assert ([(e.text, e.spans) for e in read_corpus(out).examples]
            == [(e.text, e.spans) for e in read_corpus(source).examples])


def test_convert_to_stdout(runner, tmp_path):
    source = tmp_path / "in.conll"
    source.write_text(CONLL, encoding="utf-8")
    result = run(runner, "corpora", "convert", str(source), "--to", "jsonl")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["张三在北京", "人民银行"]
    assert [e["text"] for r in rows for e in r["entities"]] == ["张三", "北京", "银行"]


def test_convert_warns_about_dropped_nested_entities(runner, tmp_path):
    source = tmp_path / "c.json"
    source.write_text('{"text": "招商银行", "label": {"company": {"招商银行": [[0, 3]]}, '
                      '"name": {"招商": [[0, 1]]}}}\n', encoding="utf-8")
    out = tmp_path / "c.conll"
    result = run(runner, "corpora", "convert", str(source), "--to", "conll", "-o", str(out))
    assert result.exit_code == 0
    assert "dropped 1 nested" in result.stderr
    assert read_corpus(out).examples[0].spans == (Span(0, 4, "company"),)


def test_convert_lenient_repairs(runner, tmp_path):
    source = tmp_path / "in.conll"
    source.write_text("甲\tO\n乙\tI-PER\n", encoding="utf-8")
    result = run(runner, "corpora", "convert", str(source), "--to", "jsonl", "--from-scheme", "bio")
    assert_clean_error(result, source, 2)
    assert "--lenient" in result.stderr
    result = run(runner, "corpora", "convert", str(source), "--to", "jsonl", "--from-scheme", "bio",
                 "--lenient")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["entities"] == [{"start": 1, "end": 2, "label": "PER",
                                                      "text": "乙"}]


@pytest.mark.parametrize("content, line", [
    ("中\tO\n国\n", 2),                                            # no tag
    ("中\tO\n\n国\tB-LOC\n家\tZ-LOC\n", 4),                        # unknown tag
    (b"\xe4\xb8\xad\tO\n\xff\tO\n", 2),                            # invalid UTF-8
    ('{"text": "中国", "label": {"LOC": {"中国": [[0, 5]]}}}\n', 1),  # span outside the text
    ('{"text": "中国", "label": {"LOC": {"中国": [[0, 0]]}}}\n', 1),  # span != mention
    ('{"text": "中", "label": {}}\n{"text": \n', 2),               # bad JSON
    ('{"text": "中国", "label": {"LOC": ["中国"]}}\n', 1),          # malformed label
    ('{"text": "中国", "entities": [{"start": 0, "end": 2, "label": "LOC", "text": "国"}]}\n', 1),
])
@pytest.mark.parametrize("command", ["stats", "convert"])
def test_bad_input_exits_2_with_one_line(runner, tmp_path, content, line, command):
    path = tmp_path / "bad.txt"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    args = ["corpora", command, str(path)] + (["--to", "jsonl"] if command == "convert" else [])
    assert_clean_error(run(runner, *args), path, line)


def test_missing_file_exits_2(runner, tmp_path):
    result = run(runner, "corpora", "stats", str(tmp_path / "nope.conll"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.conll'}: file not found"


def test_failed_convert_keeps_the_old_output(runner, tmp_path):
    # The second example holds a tab, which a column file cannot hold: the writer fails
    # after the first example has been written.
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir(), out_dir.mkdir()
    source = src_dir / "in.jsonl"
    source.write_text(
        '{"id": "1", "text": "张三", "entities": [{"start": 0, "end": 2, "label": "PER"}]}\n'
        '{"id": "2", "text": "李\\t四", "entities": []}\n', encoding="utf-8")
    out = out_dir / "out.conll"
    out.write_bytes(b"previous output\n")
    result = run(runner, "corpora", "convert", str(source), "--to", "conll", "-o", str(out))
    assert_clean_error(result, source, 2)
    assert out.read_bytes() == b"previous output\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.conll"]
    # and a fresh output is never created half-written
    fresh = out_dir / "fresh.conll"
    result = run(runner, "corpora", "convert", str(source), "--to", "conll", "-o", str(fresh))
    assert result.exit_code == 2
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.conll"]


def test_convert_round_trip_through_the_cli(runner, tmp_path, sample_dir):
    source = sample_dir / "dev.conll"
    for scheme in SCHEMES:
        tagged = tmp_path / f"dev.{scheme}"
        back = tmp_path / f"dev.{scheme}.jsonl"
        assert run(runner, "corpora", "convert", str(source), "--to", "conll", "--to-scheme",
                   scheme, "-o", str(tagged)).exit_code == 0
        assert run(runner, "corpora", "convert", str(tagged), "--to", "jsonl", "--from-scheme",
                   scheme, "-o", str(back)).exit_code == 0
        original = read_corpus(source).examples
        assert [(e.text, e.spans) for e in read_span_jsonl(back)] == [(e.text, e.spans)
                                                                        for e in original]
