"""Published corpora read as they are (issue 12): invalid tag transitions repaired on request
(``--lenient``, ``data.lenient``) and reported, and tokens that are not one character.

The fixtures in tests/data/ have the layouts of two corpora that are not in ../shared/corpora
(made from the project's synthetic sample by tests/data/make_fixtures.py, not copied):

* ``weibo_like.conll``: Weibo NER's layout, each character followed by its position in its
  word (``鼎0``, ``信1``; up to ``Z17`` in a URL), ``B-ORG.NAM`` labels, one invalid transition
  (line 88);
* ``resume_like.bmes``: Resume NER's layout, ``char<SPACE>tag`` in BMES, two invalid
  transitions (lines 158 and 274).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cner.cli import main
from cner.config import load_config
from cner.data.conll import (DETECT_SHARE, DETECT_TOKENS, is_one_character, read_conll,
                             read_tokens, split_position)
from cner.data.formats import convert_corpus, read_corpus
from cner.errors import InputError
from cner.schemes import Span
from cner.tasks.ner import read_ner_split

DATA = Path(__file__).resolve().parent / "data"
WEIBO = DATA / "weibo_like.conll"
RESUME = DATA / "resume_like.bmes"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "-c", str(PROJECT_ROOT / "configs" / "tiny-cpu.yaml"), "-q",
    "--set", "model.hidden_size=32", "--set", "model.num_layers=1", "--set", "model.num_heads=2",
    "--set", "model.intermediate_size=64", "--set", "training.max_steps=5",
    "--set", "training.eval_every=5", "--set", "training.precision=fp32",
    "--set", "training.device=cpu", "--set", "training.threads=1", "--set", "data.test=null"]

RESUME_NOTE = (f"note: {RESUME}: repaired 2 invalid tag transitions (lines 158, 274), as "
               "conlleval does")
WEIBO_REPAIR_NOTE = (f"note: {WEIBO}: repaired 1 invalid tag transition (line 88), as conlleval "
                     "does")
WEIBO_CHARACTERS = 1_718  # 3,446 with the position digits


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def notes(result):
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def without_digits(path):
    """The texts of a position-suffixed file, parsed independently of cner: each token line's
    first column without its trailing digits (a digit character keeps its first digit)."""
    texts = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        tokens = [line.split("\t")[0] for line in block.splitlines() if line.strip()]
        if tokens:
            texts.append("".join(re.fullmatch(r"(\D|\d)\d+", t).group(1) for t in tokens))
    return texts


# --------------------------------------------------------------------------------------
# 1. Invalid transitions: --lenient on train and evaluate, data.lenient, the repair note
# --------------------------------------------------------------------------------------

def test_strict_reading_names_the_line_and_the_option():
    with pytest.raises(InputError) as info:
        read_corpus(RESUME)
    assert (info.value.path, info.value.line) == (str(RESUME), 158)
    assert "--lenient" in str(info.value) and "data.lenient" in str(info.value)


def test_lenient_reading_counts_the_repairs_and_their_lines():
    corpus = read_corpus(RESUME, mode="lenient")
    assert corpus.scheme == "bmes"
    assert corpus.invalid_transitions == 2
    assert corpus.repaired_lines == (158, 274)
    assert ["note: " + n for n in corpus.notes] == [RESUME_NOTE]
    # the repairs are conlleval's: an unclosed chunk ends before the O, an M- after O begins one
    assert corpus.labels() == ["LOC", "NAME", "ORG"]
    weibo = read_corpus(WEIBO, mode="lenient", token_suffix="position")
    assert weibo.repaired_lines == (88,)
    assert ["note: " + n for n in weibo.notes] == [WEIBO_REPAIR_NOTE]  # positions declared
    assert read_corpus(RESUME, mode="lenient", scheme="bmes").notes == corpus.notes


def test_config_key_data_lenient():
    strict = load_config(None, [f"data.train={RESUME}"])
    assert strict.data.lenient is False and strict.data.token_suffix == "auto"
    with pytest.raises(InputError, match="--lenient"):
        read_ner_split(str(RESUME), strict)
    cfg = load_config(None, [f"data.train={RESUME}", "data.lenient=true"])
    assert cfg.data.lenient is True
    assert len(read_ner_split(str(RESUME), cfg)) == 60


def test_config_key_data_token_suffix():
    cfg = load_config(None, ["data.lenient=true", "data.token_suffix=none"])
    assert sum(len(ex.text) for ex in read_ner_split(str(WEIBO), cfg)) == 3_446
    cfg = load_config(None, ["data.lenient=true", "data.token_suffix=position"])
    assert sum(len(ex.text) for ex in read_ner_split(str(WEIBO), cfg)) == WEIBO_CHARACTERS


@pytest.fixture(scope="module")
def resume_run(tmp_path_factory):
    """A tiny model trained with --lenient on the Resume-like file (train and dev)."""
    out = tmp_path_factory.mktemp("resume") / "run"
    result = run("train", *TINY, "--train", RESUME, "--dev", RESUME, "--lenient", "-o", out)
    return out, result


def test_train_without_lenient_fails_before_making_a_run(tmp_path):
    out = tmp_path / "runs" / "r"
    result = run("train", *TINY, "--train", RESUME, "--set", "data.dev=null", "-o", out)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {RESUME}:158: ")
    assert "--lenient" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_train_with_lenient_repairs_and_notes_each_file(resume_run):
    out, result = resume_run
    assert result.exit_code == 0, result.output
    assert notes(result) == [RESUME_NOTE, RESUME_NOTE]  # one per file read: train, dev
    assert (out / "model").is_dir()
    assert "lenient: true" in (out / "cner_config.yaml").read_text(encoding="utf-8")


def test_resume_refuses_lenient(resume_run):
    out, _ = resume_run
    result = run("train", "--resume", out, "--lenient")
    assert result.exit_code == 2
    assert "--lenient" in result.stderr


def test_evaluate_with_lenient(resume_run, tmp_path):
    out, _ = resume_run
    result = run("evaluate", "-m", out / "model", "-d", RESUME)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {RESUME}:158: ") and "--lenient" in result.stderr
    result = run("evaluate", "-m", out / "model", "-d", RESUME, "--lenient",
                 "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.output
    assert notes(result) == [RESUME_NOTE]
    assert "micro" in result.stdout and (tmp_path / "scores.json").is_file()


def test_train_on_weibo_layout_reads_characters_and_repairs(tmp_path):
    out = tmp_path / "run"
    result = run("train", *TINY, "--train", WEIBO, "--set", "data.dev=null", "--lenient",
                 "-o", out)
    assert result.exit_code == 0, result.output
    detected, repaired = notes(result)
    assert detected.startswith(f"note: {WEIBO}: every token is a character followed by its "
                               "word position (鼎0 信1 咨0)")
    assert f"{WEIBO_CHARACTERS:,} characters" in detected
    assert repaired == WEIBO_REPAIR_NOTE
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").split()
    assert "鼎" in vocab and "鼎0" not in vocab
    result = run("evaluate", "-m", out / "model", "-d", WEIBO, "--lenient",
                 "--token-suffix", "position")
    assert result.exit_code == 0, result.output
    assert notes(result) == [WEIBO_REPAIR_NOTE]  # declared, so no detection note


# --------------------------------------------------------------------------------------
# 2. Tokens: one character each, or a character and its word position
# --------------------------------------------------------------------------------------

def test_weibo_layout_is_detected_and_read_without_the_digits():
    corpus = read_corpus(WEIBO, mode="lenient")
    assert corpus.token_suffix == "position"
    texts = [ex.text for ex in corpus.examples]
    assert texts == without_digits(WEIBO)
    assert sum(map(len, texts)) == WEIBO_CHARACTERS
    assert texts[0] == "鼎信咨询首席执行官范晓岚透露，新款H151Max手机将于2024年12月6日上市。"
    assert texts[10] == "详情见http://t.cn/RabcXYZ9"  # positions 10 to 17: two digits
    assert corpus.examples[0].entity_texts() == ["鼎信咨询", "范晓岚"]
    assert corpus.examples[0].spans[0] == Span(0, 4, "ORG.NAM")
    assert any("word position" in n for n in corpus.notes)


def test_declared_positions_read_the_same_and_none_keeps_the_digits():
    auto = read_corpus(WEIBO, mode="lenient")
    declared = read_corpus(WEIBO, mode="lenient", token_suffix="position")
    assert [(e.text, e.spans) for e in declared.examples] == [(e.text, e.spans)
                                                              for e in auto.examples]
    kept = read_corpus(WEIBO, mode="lenient", token_suffix="none")
    assert kept.token_suffix == "none"
    assert sum(len(e.text) for e in kept.examples) == 3_446
    assert kept.examples[0].text.startswith("鼎0信1咨0询1")
    assert kept.examples[0].entity_texts()[0] == "鼎0信1咨0询1"


@pytest.mark.parametrize("token, char", [("科0", "科"), ("p10", "p"), ("10", "1"), ("110", "1"),
                                         ("99", "9"), (" 3", " "), ("e\u03010", "e\u0301"),
                                         ("科", None), ("5", None), ("科技0", None), ("G", None),
                                         ("ab12", None)])
def test_split_position(token, char):
    assert split_position(token) == char


@pytest.mark.parametrize("token", ["a", " ", "\u3000", "😀", "e\u0301", "👍🏽", "❤\ufe0f",
                                   "👨\u200d👩\u200d👧", "🇨🇳"])
def test_one_character_tokens(token):
    assert is_one_character(token)


@pytest.mark.parametrize("token", ["", "ab", "科0", "中国", "🇨🇳🇨", "👨\u200d"])
def test_several_character_tokens(token):
    assert not is_one_character(token)


def test_a_token_of_several_characters_names_file_line_and_options(tmp_path):
    path = write(tmp_path, "words.conll", "中\tB-LOC\n国\tI-LOC\n\n北京\tB-LOC\n人\tO\n")
    with pytest.raises(InputError) as info:
        read_corpus(path)
    assert (info.value.path, info.value.line) == (str(path), 4)
    assert "'北京' is 2 characters" in str(info.value)
    assert "--token-suffix none" in str(info.value)  # how to read it as a word
    corpus = read_corpus(path, token_suffix="none")
    assert corpus.examples[1].text == "北京人" and corpus.examples[1].entity_texts() == ["北京"]
    result = run("corpora", "stats", path)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {str(info.value)}"]
    assert run("corpora", "stats", "--token-suffix", "none", path).exit_code == 0
    result = run("train", *TINY, "--train", path, "--set", "data.dev=null",
                 "-o", tmp_path / "run")
    assert result.exit_code == 2 and f"{path}:4: token '北京'" in result.stderr


def test_positions_below_the_detection_share_fail_with_the_position_hint(tmp_path):
    # 980 of 1,000 tokens carry a position: not enough for auto, so the first one fails
    lines = ["中\tO"] * 20 + ["国0\tO"] * 980
    path = write(tmp_path, "mixed.conll", "\n".join(lines) + "\n")
    assert 980 < DETECT_SHARE * DETECT_TOKENS
    with pytest.raises(InputError) as info:
        read_corpus(path)
    assert info.value.line == 21
    assert "--token-suffix position" in str(info.value)
    corpus = read_corpus(path, token_suffix="position")
    assert corpus.examples[0].text == "中" * 20 + "国" * 980


def test_detection_looks_at_the_first_tokens_and_then_checks_every_token(tmp_path):
    body = "".join(f"字{i % 3}\tO\n" for i in range(1_200)) + "\n字0\tO\n字x\tO\n"
    path = write(tmp_path, "late.conll", body)
    with pytest.raises(InputError) as info:
        read_corpus(path)
    assert info.value.line == 1_203
    assert "'字x'" in str(info.value) and "word position" in str(info.value)


def test_token_suffix_is_checked(tmp_path):
    path = write(tmp_path, "c.conll", "中\tO\n")
    with pytest.raises(InputError, match="auto, position, none"):
        read_corpus(path, token_suffix="digits")


def test_character_tokens_keep_reading_as_before(tmp_path):
    # BOM, CRLF, a space token, a full-width space, an emoji with a skin tone, a flag,
    # and a combining accent: each one character; a digit token is a character, not a suffix
    text = ("\ufeff我\tB-PER\r\n \tO\r\n\u3000\tO\r\n👍🏽\tO\r\n🇨🇳\tB-LOC\r\ne\u0301\tO\r\n"
            "7\tO\r\n")
    path = write(tmp_path, "c.conll", text)
    corpus = read_corpus(path)
    assert corpus.token_suffix == "none" and corpus.notes == ()
    (ex,) = corpus.examples
    assert ex.text == "我 \u3000👍🏽🇨🇳e\u03017"
    assert ex.entity_texts() == ["我", "🇨🇳"]


def test_read_conll_keeps_reading_tokens_as_written(tmp_path):
    path = write(tmp_path, "w.conll", "张三\tB-PER\n在\tO\n北京市\tB-LOC\n")
    (ex,) = read_conll(path)
    assert ex.entity_texts() == ["张三", "北京市"]
    with pytest.raises(InputError, match="'张三' is 2 characters"):
        read_conll(path, token_suffix="auto")
    weibo = read_conll(WEIBO, mode="lenient", token_suffix="auto")
    assert weibo[0].text.startswith("鼎信咨询")


def test_read_tokens_returns_what_it_applied():
    from cner.data.example import TaggedSentence
    sentence = TaggedSentence(("科0", "技1"), ("B-ORG", "I-ORG"), "mem", 1, (1, 2))
    assert read_tokens([sentence])[1] == "position"
    assert read_tokens([sentence])[0][0].tokens == ("科", "技")
    assert read_tokens([sentence], token_suffix="none")[0] == [sentence]


# --------------------------------------------------------------------------------------
# corpora stats / convert
# --------------------------------------------------------------------------------------

def test_stats_reads_the_weibo_layout_and_notes_it():
    result = run("corpora", "stats", "--json", WEIBO)
    assert result.exit_code == 0, result.output
    assert f'"characters": {WEIBO_CHARACTERS}' in result.stdout
    assert len(notes(result)) == 2 and notes(result)[1] == WEIBO_REPAIR_NOTE
    result = run("corpora", "stats", "--json", "--token-suffix", "none", WEIBO)
    assert '"characters": 3446' in result.stdout


def test_convert_with_token_suffix_and_lenient(tmp_path):
    out = tmp_path / "weibo.jsonl"
    result = run("corpora", "convert", WEIBO, "--to", "jsonl", "-o", out, "--lenient",
                 "--token-suffix", "position")
    assert result.exit_code == 0, result.output
    assert notes(result) == [WEIBO_REPAIR_NOTE]
    assert [e.text for e in read_corpus(out).examples] == without_digits(WEIBO)
    report = convert_corpus(RESUME, tmp_path / "r.conll", to="conll", mode="lenient")
    assert report.notes == (RESUME_NOTE[len("note: "):],)
