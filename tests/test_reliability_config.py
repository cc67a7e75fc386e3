"""Reliability of configs: paths that mean what they say, values checked when the config is
read, and `cner info`.

* Paths in a config file are relative to the file's folder; paths on the command line to the
  current directory; the built-in defaults name the checkout's sample corpus from anywhere;
  ``$CNER_CORPORA`` (or ``classify.corpora_root``) is the public-corpora folder.
* A value training cannot use (a window too short for one character, a NaN learning rate, a
  head or device that does not exist) is a one-line `ConfigError` naming the key and what it
  accepts, raised before any data is read and before a run directory exists.

Command-line items are `catalogue.Case`s, run in a fresh directory outside the checkout.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_catalogue import ROOT, SAMPLE, Case, check_case, run_cner

# A few sentences of the sample corpus: enough to train one step on.
SMALL = "\n\n".join((SAMPLE / "dev.conll").read_text("utf-8").split("\n\n")[:6]) + "\n\n"
# A training run that takes a second or two: tiny sizes, one step, one thread.
TINY = ["--set", "model.hidden_size=16", "--set", "model.num_layers=1",
        "--set", "model.num_heads=2", "--set", "model.intermediate_size=32",
        "--set", "training.max_steps=1", "--set", "training.precision=fp32",
        "--set", "training.device=cpu", "--set", "training.threads=1", "-o", "run", "-q"]
TRAINED = r"run directory: run .*1 steps"


def one_line(output: str) -> None:
    assert len(output.strip().splitlines()) == 1, output


# -- 1. paths -------------------------------------------------------------------------------

PATHS = [
    # used to fail with "corpora/sample/train.conll: file not found" outside the checkout
    Case("shipped config run from another folder",
         {}, ["train", "-c", str(ROOT / "configs" / "tiny-cpu.yaml"),
              "--set", "data.test=null", *TINY], 0, TRAINED),
    Case("built-in defaults run outside the checkout", {}, ["train", *TINY], 0, TRAINED),
    Case("config in a sub-folder names its data beside it",
         {"exp/my.yaml": "data:\n  train: data/train.conll\n  dev: data/dev.conll\n  test: null\n",
          "exp/data/train.conll": SMALL, "exp/data/dev.conll": SMALL},
         ["train", "-c", "exp/my.yaml", *TINY], 0, TRAINED),
    Case("--train on the command line stays relative to the current directory",
         {"exp/my.yaml": "data:\n  train: nowhere.conll\n  dev: null\n  test: null\n",
          "train.conll": SMALL},
         ["train", "-c", "exp/my.yaml", "--train", "train.conll", *TINY], 0, TRAINED),
]

MISSING = [
    Case("a missing file in a config is named from the config's folder",
         {"exp/my.yaml": "data:\n  train: missing.conll\n  dev: null\n  test: null\n"},
         ["train", "-c", "exp/my.yaml", "-o", "run", "-q"], 2,
         r"^error: exp/missing\.conll: file not found", absent=("run",)),
    Case("$CNER_CORPORA in a config path",
         {"exp/my.yaml": "data:\n  train: $CNER_CORPORA/ner/missing.conll\n  dev: null\n"
                         "  test: null\n"},
         ["train", "-c", "exp/my.yaml", "-o", "run", "-q"], 2,
         r"^error: mine/ner/missing\.conll: file not found", absent=("run",),
         env={"CNER_CORPORA": "mine"}),
    Case("CNER_CORPORA is where the classification tasks are read",
         {}, ["sentiment", "train", "-o", "run", "-q"], 2,
         r"^error: mine/chnsenticorp/train\.tsv: file not found.*CNER_CORPORA", absent=("run",),
         env={"CNER_CORPORA": "mine"}),
    Case("classify.corpora_root in a config is relative to the config",
         {"exp/c.yaml": "classify:\n  task: chnsenticorp\n  corpora_root: corp\n"},
         ["sentiment", "train", "-c", "exp/c.yaml", "-o", "run", "-q"], 2,
         r"^error: exp/corp/chnsenticorp/train\.tsv: file not found", absent=("run",)),
    Case("--set classify.corpora_root is relative to the current directory",
         {"exp/c.yaml": "classify:\n  task: chnsenticorp\n  corpora_root: corp\n"},
         ["sentiment", "train", "-c", "exp/c.yaml", "--set", "classify.corpora_root=here",
          "-o", "run", "-q"], 2,
         r"^error: here/chnsenticorp/train\.tsv: file not found", absent=("run",)),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", PATHS, ids=str)
def test_config_paths_resolve_from_where_they_are_written(case, tmp_path):
    check_case(case, tmp_path)
    assert (tmp_path / "run" / "model").is_dir()


@pytest.mark.parametrize("case", MISSING, ids=str)
def test_missing_files_are_named_where_they_were_looked_for(case, tmp_path, monkeypatch):
    monkeypatch.delenv("CNER_CORPORA", raising=False)
    one_line(check_case(case, tmp_path))


WITHOUT_SAMPLE = [
    Case("defaults without the sample corpus (an installed wheel)", {},
         ["train", "-o", "run", "-q"], 2,
         r"^error: config key 'data\.train' defaults to the sample corpus of a cner source "
         r"checkout, and .*train\.conll is not there; pass --train FILE", absent=("run",)),
    Case("--train without the sample corpus: dev is held out of it, no test set",
         {"t.conll": SMALL * 4}, ["train", "--train", "t.conll", *TINY], 0, TRAINED),
    Case("--train --test without the sample corpus: only the default dev goes",
         {"t.conll": SMALL * 4}, ["train", "--train", "t.conll", "--test", "t.conll", *TINY],
         0, TRAINED),
]


@pytest.mark.parametrize("case", WITHOUT_SAMPLE, ids=str)
def test_defaults_without_the_sample_say_what_to_pass(case, tmp_path, monkeypatch):
    import cner.config.paths

    monkeypatch.setattr(cner.config.paths, "SOURCE_ROOT", tmp_path / "site-packages")
    output = check_case(case, tmp_path)
    if case.exit_code:
        one_line(output)


def test_saved_config_holds_absolute_paths_and_is_read_as_saved(tmp_path, monkeypatch):
    from cner.config import load_config

    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "my.yaml").write_text("data:\n  train: t.conll\n  dev: null\n"
                                              "  test: null\n")
    (tmp_path / "exp" / "t.conll").write_text(SMALL, "utf-8")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("exp/my.yaml", ["data.dev=d.conll"])
    assert cfg.data.train == "exp/t.conll" and cfg.data.dev == "d.conll"
    (tmp_path / "run").mkdir()
    cfg.save(tmp_path / "run" / "cner_config.yaml")
    monkeypatch.chdir(tmp_path / "run")  # a resumed run, from elsewhere
    again = load_config(tmp_path / "run" / "cner_config.yaml")
    assert again.data.train == str(tmp_path / "exp" / "t.conll")
    assert again.data.dev == str(tmp_path / "d.conll")


def test_shipped_configs_name_their_data_from_any_folder(tmp_path, monkeypatch):
    from cner.config import load_config

    monkeypatch.delenv("CNER_CORPORA", raising=False)
    monkeypatch.chdir(tmp_path)
    tiny = load_config(ROOT / "configs" / "tiny-cpu.yaml")
    assert (tmp_path / tiny.data.train).resolve() == (SAMPLE / "train.conll").resolve()
    msra = load_config(ROOT / "configs" / "msra-small-cpu.yaml")
    expected = ROOT.parent / "shared" / "corpora" / "msra_ner" / "msra_train_bio"
    assert (tmp_path / msra.data.train).resolve() == expected.resolve()
    monkeypatch.setenv("CNER_CORPORA", "/data/corpora")
    msra = load_config(ROOT / "configs" / "msra-small-cpu.yaml")
    assert msra.data.train == "/data/corpora/msra_ner/msra_train_bio"


def test_corpora_root_default_env_and_config(tmp_path, monkeypatch):
    from cner.config import corpora_root, load_config

    monkeypatch.delenv("CNER_CORPORA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert corpora_root().resolve() == (ROOT.parent / "shared" / "corpora").resolve()
    monkeypatch.setenv("CNER_CORPORA", str(tmp_path / "c"))
    assert corpora_root() == tmp_path / "c"
    cfg = load_config(None, ["classify.task=sst2", "classify.corpora_root=x"])
    assert corpora_root(cfg.classify.corpora_root) == Path("x")
    assert load_config(None, ["classify.task=sst2"]).classify.corpora_root is None


# -- 2. values checked when the config is read --------------------------------------------

# --train names a file that does not exist: each error must come from the config, before
# any data is read (it used to be "missing.conll: file not found", or a traceback later).
BAD = ["train", "--train", "missing.conll", "--dev", "missing.conll", "--set", "data.test=null",
       "-o", "run", "-q"]


def bad_value(name: str, setting: str, message: str) -> Case:
    return Case(name, {}, [*BAD, "--set", setting], 2, r"^error: config key " + message,
                absent=("run",))


FROM_0_TO_126 = r"an int in \[0, 126\): fewer characters than the 126 of a window"
VALUES = [bad_value(name, setting, message) for name, setting, message in [
    ("max_length 1", "data.max_length=1",
     r"'data\.max_length' expects an int >= 3 \(\[CLS\], one character and \[SEP\]\), found 1$"),
    ("max_length 2", "data.max_length=2", r"'data\.max_length' expects an int >= 3.*found 2$"),
    ("negative overlap", "data.overlap=-5", rf"'data\.overlap' expects {FROM_0_TO_126}.*found -5$"),
    ("overlap longer than a window", "data.overlap=200",
     rf"'data\.overlap' expects {FROM_0_TO_126}.*found 200$"),
    ("overlap as long as a window", "data.overlap=126",
     rf"'data\.overlap' expects {FROM_0_TO_126}.*found 126$"),
    ("lr nan", "training.lr=nan", r"'training\.lr' expects a finite number > 0, found nan$"),
    ("lr inf", "training.lr=inf", r"'training\.lr' expects a finite number > 0, found inf$"),
    ("lr negative", "training.lr=-0.001", r"'training\.lr' expects a finite number > 0, "
                                          r"found -0\.001$"),
    ("lr zero", "training.lr=0", r"'training\.lr' expects a finite number > 0, found 0\.0$"),
    ("unknown head", "model.head=foo", r"'model\.head' expects one of crf, softmax, found 'foo'$"),
    ("misspelt head", "model.head=crff",
     r"'model\.head' expects one of crf, softmax, found 'crff'; did you mean 'crf'\?$"),
    ("misspelt token suffix", "data.token_suffix=posit",
     r"'data\.token_suffix' expects one of auto, position, none, found 'posit'; "
     r"did you mean 'position'\?$"),
    ("zero hidden size", "model.hidden_size=0",
     r"'model\.hidden_size' expects an int >= 1, found 0$"),
    ("zero heads", "model.num_heads=0", r"'model\.num_heads' expects an int >= 1, found 0$"),
    ("hidden size not divisible by heads", "model.num_heads=3",
     r"'model\.hidden_size' \(128\) must be a multiple of 'model\.num_heads' \(3\)"),
    ("tpu", "training.device=tpu",
     r"'training\.device' expects auto, cpu, cuda or cuda:N, found 'tpu'$"),
    ("cuda:x", "training.device=cuda:x", r"'training\.device' expects .*found 'cuda:x'$"),
    ("unknown column scheme", "data.scheme=bioe", r"'data\.scheme' expects one of auto, bio, "
     r"iob1, bioes, bmes, bilou, found 'bioe'; did you mean 'bioes'\?$"),
    ("unknown model scheme", "model.tag_scheme=BIO",
     r"'model\.tag_scheme' expects one of bio, .*found 'BIO'; did you mean 'bio'\?$"),
    ("dropout 1", "model.dropout=1", r"'model\.dropout' expects a number in \[0, 1\), found 1\.0$"),
    ("negative dropout", "model.dropout=-0.1",
     r"'model\.dropout' expects a number in \[0, 1\), found -0\.1$"),
    ("unk_dropout 1.5", "model.unk_dropout=1.5", r"'model\.unk_dropout' expects a number in"),
    ("unknown precision", "training.precision=fp8",
     r"'training\.precision' expects one of auto, fp32, bf16, fp16, found 'fp8'$"),
    ("unknown format", "data.format=json",
     r"'data\.format' expects one of auto, .*found 'json'; did you mean 'jsonl'\?$"),
    ("warmup ratio above 1", "training.warmup_ratio=2",
     r"'training\.warmup_ratio' expects a number in \[0, 1\], found 2\.0$"),
    ("zero patience", "training.early_stopping_patience=0",
     r"'training\.early_stopping_patience' expects an int >= 1 or null, found 0$"),
    ("nan gradient clip", "training.max_grad_norm=nan",
     r"'training\.max_grad_norm' expects a number > 0"),
    ("run name with a slash", "name=../../elsewhere", r"'name' expects a name without /"),
]] + [
    Case("a config file with a bad value", {"bad.yaml": "model:\n  head: crff\n"},
         [*BAD, "-c", "bad.yaml"], 2, r"^error: config key 'model\.head'.*did you mean 'crf'",
         absent=("run",)),
    Case("a pair task needs room for a character of each text", {},
         ["glue", "train", "--task", "afqmc", "--set", "data.max_length=4", "-o", "run", "-q"],
         2, r"^error: config key 'data\.max_length' expects an int >= 5", absent=("run",)),
    Case("a misspelt task", {}, ["glue", "train", "--task", "sst", "-o", "run", "-q"], 2,
         r"^error: config key 'classify\.task' expects one of .*found 'sst'; did you mean "
         r"'sst2'\?", absent=("run",)),
]

FILES = [
    Case("config file not UTF-8", {"bad.yaml": b"name: x\nmodel:\n  head: \xff\xfe\n"},
         [*BAD, "-c", "bad.yaml"], 2, r"^error: bad\.yaml:3: not UTF-8", absent=("run",)),
    Case("config file whose top level is a list", {"bad.yaml": "- data\n- model\n"},
         [*BAD, "-c", "bad.yaml"], 2, r"^error: bad\.yaml: the top level must be a mapping.*"
         r"found a list", absent=("run",)),
    Case("config file whose top level is a scalar", {"bad.yaml": "tiny-cpu\n"},
         [*BAD, "-c", "bad.yaml"], 2, r"^error: bad\.yaml: the top level must be a mapping.*"
         r"found the scalar 'tiny-cpu'", absent=("run",)),
]


@pytest.mark.parametrize("case", VALUES + FILES, ids=str)
def test_bad_values_fail_when_the_config_is_read(case, tmp_path):
    one_line(check_case(case, tmp_path))


def test_default_overlap_fits_a_short_window_but_a_given_one_must():
    """Unset, the overlap is a quarter of the window, at most 32 (32 at max_length 128); a
    window that short used to fail in plan_windows with a traceback."""
    from cner.config import load_config
    from cner.errors import ConfigError

    assert load_config(None, ["data.max_length=16"]).data.overlap == 4
    assert load_config(None, ["data.max_length=128"]).data.overlap == 32
    assert load_config(ROOT / "configs" / "tiny-cpu.yaml", ["data.max_length=32"]).data.overlap == 8
    assert load_config(None, ["data.max_length=3"]).data.overlap == 0
    assert load_config(None, ["data.max_length=200"]).data.overlap == 32
    with pytest.raises(ConfigError, match=r"'data\.overlap' expects an int in \[0, 14\)"):
        load_config(None, ["data.max_length=16", "data.overlap=14"])


def test_smallest_window_trains_and_tags(tmp_path):
    """max_length 3 ([CLS], one character, [SEP]) is the real minimum: it trains and tags."""
    from cner.config import load_config
    from cner.inference.tagger import Tagger
    from cner.tasks.ner import train_ner

    (tmp_path / "t.conll").write_text(SMALL, "utf-8")
    cfg = load_config(None, [f"data.train={tmp_path / 't.conll'}", "data.dev=null",
                             "data.test=null", "data.max_length=3", "model.hidden_size=16",
                             "model.num_layers=1", "model.num_heads=2",
                             "model.intermediate_size=32", "training.max_steps=2",
                             "training.precision=fp32", "training.device=cpu"])
    run_dir, _ = train_ner(cfg, output=tmp_path / "run", progress=False)
    tagger = Tagger.load(run_dir / "model")
    assert isinstance(tagger("北京欢迎你"), list) and tagger("") == []


# -- 3. cner info -----------------------------------------------------------------------------

def test_info_prints_what_a_bug_report_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("CNER_CORPORA", str(tmp_path / "corpora"))
    code, output = run_cner(["info"], tmp_path)
    assert code == 0, output
    for label in ("cner:", "python:", "torch:", "transformers:", "cpu:", "cpu features:",
                  "avx512_bf16", "amx_bf16", "avx2", "torch threads:", "gpu:", "precision auto:",
                  "HF_HUB_OFFLINE:", "corpora root:"):
        assert label in output, (label, output)
    assert f"{tmp_path / 'corpora'} (from CNER_CORPORA; missing)" in output

    code, output = run_cner(["info", "--json"], tmp_path)
    assert code == 0, output
    info = json.loads(output)
    assert info["precision_auto"] in ("fp32", "bf16", "fp16")
    assert info["corpora_root"] == {"path": str(tmp_path / "corpora"), "exists": False,
                                    "from": "CNER_CORPORA"}
    assert info["torch_threads"] >= 1 and isinstance(info["cpu"]["model"], str)
    assert info["HF_HUB_OFFLINE"] == "1"  # set by tests/conftest.py


def test_precision_auto_matches_the_runtime():
    import torch

    from cner.cli.info import collect
    from cner.runtime.devices import resolve_device, resolve_precision

    info = collect()
    assert info["precision_auto"] == resolve_precision("auto", resolve_device("auto"))
    assert info["gpu"] is None if not torch.cuda.is_available() else info["gpu"]


def test_cli_import_loads_no_torch():
    """`cner --help` and argument errors start fast: importing the CLI (with `cner info`
    registered) loads neither torch nor transformers."""
    code = ("import sys, cner.cli; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_train_file_alone_is_evaluated_on_a_hold_out_of_itself(tmp_path):
    """With --train and no --config, the built-in defaults' sample dev/test files are not used:
    a seeded 10% of the user's file is the dev set, and there is no test set."""
    (tmp_path / "mine.conll").write_text(SMALL * 4, "utf-8")
    code, output = run_cner(["train", "--train", "mine.conll", *TINY], tmp_path)
    assert code == 0, output
    saved = (tmp_path / "run" / "cner_config.yaml").read_text("utf-8")
    assert "sample" not in saved, saved
    assert "dev_fraction: 0.1" in saved and "dev: null" in saved and "test: null" in saved


def test_config_names_the_formats_and_tasks_data_reads():
    """config sits below data, so it names the corpus formats and the registered tasks (with
    their kinds) itself: the lists must agree."""
    from cner.config.checks import CORPUS_FORMATS, TASK_KINDS
    from cner.data.formats import FORMATS
    from cner.data.task_registry import TASKS

    assert CORPUS_FORMATS == tuple(FORMATS)
    assert TASK_KINDS == {name: spec.kind for name, spec in TASKS.items()}
