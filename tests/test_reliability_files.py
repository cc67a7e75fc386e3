"""Reliability catalogue: cner never deletes, overwrites or silently corrupts a user's files.

Each case is one thing a careless user does (see `catalogue.Case`); the plain tests below the
table cover what a table cannot express: symlinks, FIFOs, concurrent jobs, a resumed job's
rate and a real run directory being replaced.

Nothing here ever writes to /dev/null or /dev/stdout: a broken cner run as root would replace
the machine's device node or symlink. Streams are exercised with a FIFO and /proc/self/fd/1,
which a rename cannot replace.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from reliability_catalogue import MODEL, SAMPLE, Case, check_case, run_cner

DEV = (SAMPLE / "dev.conll").read_text("utf-8")
ONE = "张\tB-PER\n伟\tI-PER\n在\tO\n北\tB-LOC\n京\tI-LOC\n\n"
NEWS = "张伟在北京大学工作。\n李娜去了上海。\n王芳在广州市人民医院上班。\n"
TINY = ["--set", "model.hidden_size=32", "--set", "model.num_layers=1", "--set",
        "model.num_heads=2", "--set", "model.intermediate_size=64", "--set",
        "training.max_steps=2", "--set", "training.eval_every=2", "--set",
        "training.precision=fp32", "--set", "training.device=cpu", "--set", "training.threads=1",
        "--set", "data.test=null", "-q"]
# A directory cner recognises as its own run (its marker file) holding an earlier run.
OLD_RUN = {"v/cner_run.json": '{"cner_run": 1}\n', "v/cner_config.yaml": "name: old\n",
           "v/checkpoints/latest": "step-00000002\n", "v/vocab.txt": "[PAD]\n",
           "v/model/cner_meta.json": "{}\n", "v/summary.json": "{}\n"}

CASES = [
    # -- cner train --overwrite deletes only its own runs, and only once the inputs are good --
    Case("overwrite refuses a directory cner did not make",
         {"v/checkpoints/": "", "v/keep": "x\n", "train.conll": ONE},
         ["train", "--train", "train.conll", "--dev", "train.conll", "--output", "v",
          "--overwrite", *TINY],
         2, r"error: v is not a cner run directory"),
    Case("overwrite with a missing training file keeps a foreign directory",
         {"v/checkpoints/": "", "v/keep": "x\n"},
         ["train", "--train", "missing.conll", "--output", "v", "--overwrite", *TINY],
         2, r"error: "),
    Case("overwrite with a missing training file keeps the old run",
         OLD_RUN, ["train", "--train", "missing.conll", "--output", "v", "--overwrite", *TINY],
         2, r"error: missing\.conll: file not found"),
    Case("overwrite with an unreadable dev file keeps the old run",
         {**OLD_RUN, "train.conll": ONE, "dev.conll": "张\tB-PER\n伟\tX-\n"},
         ["train", "--train", "train.conll", "--dev", "dev.conll", "--output", "v",
          "--overwrite", *TINY],
         2, r"error: dev\.conll"),
    Case("overwrite replaces the run and keeps files cner did not write beside it",
         {**OLD_RUN, "v/notes.txt": "mine\n", "v/news.csv": "doc_id\n", "train.conll": ONE},
         ["train", "--train", "train.conll", "--dev", "train.conll", "--output", "v",
          "--overwrite", *TINY],
         0, r"run directory: v ", unchanged=("v/notes.txt", "v/news.csv", "train.conll"),
         absent=("v/model/cner_meta.json",)),
    Case("overwrite with a missing training file keeps a run from before the marker",
         {"v/cner_config.yaml": "name: old\n", "v/checkpoints/latest": "step-00000002\n",
          "v/news.csv": "doc_id\n"},
         ["train", "--train", "missing.conll", "--output", "v", "--overwrite", *TINY],
         2, r"error: missing\.conll: file not found"),
    Case("a new run into a directory holding a run is refused",
         OLD_RUN, ["train", "--train", "train.conll", "--output", "v", *TINY],
         2, r"error: v already holds a run; pass --resume v"),
    Case("a new run into a non-empty foreign directory is refused",
         {"v/vocab.txt": "my own vocabulary\n", "train.conll": ONE},
         ["train", "--train", "train.conll", "--dev", "train.conll", "--output", "v", *TINY],
         2, r"error: v is not empty and is not a cner run directory"),
    Case("a failed new run leaves no run directory behind",
         {"train.conll": ONE},
         ["train", "--train", "train.conll", "--dev", "missing.conll", "--output", "new", *TINY],
         2, r"error: missing\.conll: file not found", absent=("new",)),
    Case("a failed new run leaves none of the directories it made behind",
         {"train.conll": ONE},
         ["train", "--train", "missing.conll", "--output", "runs/deep/new", *TINY],
         2, r"error: missing\.conll: file not found", absent=("runs",)),
    Case("a new run whose dev labels are unknown leaves no run directory behind",
         {"train.conll": ONE, "dev.conll": "东\tB-ORG\n方\tI-ORG\n"},
         ["train", "--train", "train.conll", "--dev", "dev.conll", "--output", "new", *TINY],
         2, r"never occur in the training data", absent=("new",)),
    # -- an output that names an input is refused --------------------------------------------
    Case("annotate -o names its input",
         {"a.txt": NEWS}, ["annotate", "a.txt", "-m", MODEL, "-o", "a.txt"],
         2, r"error: .*a\.txt.* input", absent=("a.txt.partial", "a.txt.partial.json")),
    Case("annotate -o names one of several inputs, by another spelling",
         {"a.txt": NEWS, "b.txt": NEWS}, ["annotate", "a.txt", "b.txt", "-m", MODEL,
                                          "-o", "./b.txt", "--format", "csv"],
         2, r"error: .*b\.txt.* input"),
    Case("corpora convert -o names its input",
         {"dev.conll": DEV}, ["corpora", "convert", "dev.conll", "--to", "jsonl",
                              "-o", "dev.conll"],
         2, r"error: .*dev\.conll.* input"),
    Case("evaluate --json names its data file",
         {"dev.conll": DEV}, ["evaluate", "-m", MODEL, "-d", "dev.conll", "--json", "dev.conll"],
         2, r"error: .*dev\.conll.* input"),
    Case("glue predict -o names its input file",
         {"rows.csv": "text\n很好\n"}, ["glue", "predict", "-m", MODEL, "--input", "rows.csv",
                                        "-o", "rows.csv"],
         2, r"error: .*rows\.csv.* input"),
    Case("sentiment evaluate --json names its data file",
         {"rows.csv": "text,label\n很好,1\n"},
         ["sentiment", "evaluate", "-m", MODEL, "--data", "rows.csv", "--json", "rows.csv"],
         2, r"error: .*rows\.csv.* input"),
    # -- options -------------------------------------------------------------------------------
    Case("evaluate --batch-size 0", {"dev.conll": DEV},
         ["evaluate", "-m", MODEL, "-d", "dev.conll", "--batch-size", "0"],
         2, r"Invalid value for '--batch-size'"),
    Case("evaluate --batch-size -5", {"dev.conll": DEV},
         ["evaluate", "-m", MODEL, "-d", "dev.conll", "--batch-size", "-5"],
         2, r"Invalid value for '--batch-size'"),
    Case("annotate --precision fp16 on the CPU names the option", {"a.txt": NEWS},
         ["annotate", "a.txt", "-m", MODEL, "--device", "cpu", "--precision", "fp16",
          "-o", "out.csv"],
         2, r"error: --precision=fp16 needs a GPU", absent=("out.csv", "out.csv.partial")),
    # -- streams -------------------------------------------------------------------------------
    Case("corpora convert -o - writes standard output", {"dev.conll": ONE},
         ["corpora", "convert", "dev.conll", "--to", "jsonl", "-o", "-"],
         0, r'"text": "张伟在北京"', absent=("-",)),
    Case("annotate -o /proc/self/fd/1 writes standard output", {"a.txt": NEWS},
         ["annotate", "a.txt", "-m", MODEL, "-o", "/proc/self/fd/1", "--format", "jsonl"],
         0, r'"text": "张伟在北京大学工作。"', subprocess=True),
    Case("corpora convert -o /proc/self/fd/1 writes standard output", {"dev.conll": ONE},
         ["corpora", "convert", "dev.conll", "--to", "jsonl", "-o", "/proc/self/fd/1"],
         0, r'"text": "张伟在北京"', subprocess=True),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path, tiny_model):
    check_case(case, tmp_path, tiny_model)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_annotate_device_cuda_without_a_gpu_names_the_option(tmp_path, tiny_model):
    case = Case("annotate --device cuda without a GPU", {"a.txt": NEWS},
                ["annotate", "a.txt", "-m", MODEL, "--device", "cuda", "-o", "out.csv"],
                2, r"error: --device=cuda but no CUDA GPU", absent=("out.csv",))
    check_case(case, tmp_path, tiny_model)


# -- symlinks and FIFOs ----------------------------------------------------------------------

def test_output_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path, tiny_model):
    (tmp_path / "a.txt").write_text(NEWS, "utf-8")
    (tmp_path / "dev.conll").write_text(ONE, "utf-8")
    (tmp_path / "real").mkdir()
    for name, argv in (("out.jsonl", ["annotate", "a.txt", "-m", str(tiny_model)]),
                       ("conv.jsonl", ["corpora", "convert", "dev.conll", "--to", "jsonl"])):
        target = tmp_path / "real" / name
        target.write_text("old\n", "utf-8")
        os.symlink(Path("real") / name, tmp_path / name)
        code, output = run_cner([*argv, "-o", name], tmp_path)
        assert code == 0, output
        assert (tmp_path / name).is_symlink(), f"{name}: the symlink was replaced by a file"
        assert os.readlink(tmp_path / name) == str(Path("real") / name)
        assert '"text": "张伟' in target.read_text("utf-8")
        assert sorted(os.listdir(tmp_path / "real")) == sorted(
            p for p in os.listdir(tmp_path / "real") if not p.startswith(".")), "temp files left"
    assert sorted(os.listdir(tmp_path / "real")) == ["conv.jsonl", "out.jsonl"]


def test_a_dangling_symlink_output_creates_its_target(tmp_path):
    (tmp_path / "dev.conll").write_text(ONE, "utf-8")
    os.symlink("made.jsonl", tmp_path / "link.jsonl")
    code, output = run_cner(["corpora", "convert", "dev.conll", "--to", "jsonl",
                             "-o", "link.jsonl"], tmp_path)
    assert code == 0, output
    assert (tmp_path / "link.jsonl").is_symlink() and (tmp_path / "made.jsonl").is_file()


def test_output_through_a_symlink_to_the_input_is_refused(tmp_path, tiny_model):
    (tmp_path / "a.txt").write_text(NEWS, "utf-8")
    (tmp_path / "dev.conll").write_text(DEV, "utf-8")
    os.symlink("a.txt", tmp_path / "alias.csv")
    os.link(tmp_path / "dev.conll", tmp_path / "hard.jsonl")
    for argv in (["annotate", "a.txt", "-m", str(tiny_model), "-o", "alias.csv"],
                 ["corpora", "convert", "dev.conll", "--to", "jsonl", "-o", "hard.jsonl"]):
        code, output = run_cner(argv, tmp_path)
        assert code == 2 and re.search(r"error: .* input", output), output
        assert len(output.strip().splitlines()) == 1, output
    assert (tmp_path / "a.txt").read_text("utf-8") == NEWS
    assert (tmp_path / "alias.csv").is_symlink()
    assert (tmp_path / "dev.conll").read_text("utf-8") == DEV


def _read_fifo(path: Path, into: list) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as handle:
            into.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("command", ["annotate", "convert"])
def test_a_fifo_output_is_written_as_a_stream_and_stays_a_fifo(tmp_path, tiny_model, command):
    (tmp_path / "a.txt").write_text(NEWS, "utf-8")
    (tmp_path / "dev.conll").write_text(ONE, "utf-8")
    fifo = tmp_path / "out.jsonl"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    argv = (["annotate", "a.txt", "-m", str(tiny_model), "--format", "jsonl"]
            if command == "annotate" else ["corpora", "convert", "dev.conll", "--to", "jsonl"])
    try:
        code, output = run_cner([*argv, "-o", "out.jsonl"], tmp_path)
    finally:
        if reader.is_alive():  # the command never opened the FIFO: unblock the reader
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert code == 0, output
    assert fifo.is_fifo(), "the FIFO was replaced by a regular file"
    assert '"text": "张伟' in got[0].decode("utf-8")
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "dev.conll", "out.jsonl"]


def test_resume_needs_a_regular_file_output(tmp_path, tiny_model):
    (tmp_path / "a.txt").write_text(NEWS, "utf-8")
    os.mkfifo(tmp_path / "out.csv")
    code, output = run_cner(["annotate", "a.txt", "-m", str(tiny_model), "-o", "out.csv",
                             "--resume"], tmp_path)
    assert code == 2 and "--resume" in output, output
    assert (tmp_path / "out.csv").is_fifo()


def test_output_kinds():
    from cner.fileio import output_target

    assert output_target("-").kind == "stdout"
    for stream in ("/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/1", "/dev/null"):
        assert output_target(stream).kind == "stream", stream
    assert output_target("/dev/shm/x.csv").kind == "file"


# -- concurrent jobs -------------------------------------------------------------------------

def test_a_second_job_on_the_same_output_fails_and_leaves_the_first_alone(tmp_path, tiny_model):
    (tmp_path / "a.txt").write_text(NEWS, "utf-8")
    partial, state = tmp_path / "out.csv.partial", tmp_path / "out.csv.partial.json"
    partial.write_text("id,text\n1,first job's row\n", "utf-8")
    state.write_text('{"first": "job"}', "utf-8")
    with open(partial, "rb+") as held:  # the first job holds the lock for its whole run
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        for extra in ([], ["--resume"]):
            proc = subprocess.run(
                [sys.executable, "-m", "cner", "annotate", "a.txt", "-m", str(tiny_model),
                 "-o", "out.csv", *extra], cwd=tmp_path, capture_output=True, text=True,
                timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip() == (f"error: out.csv is being written by another cner "
                                           f"job (pid {os.getpid()})"), proc.stderr
    assert partial.read_text("utf-8") == "id,text\n1,first job's row\n"
    assert state.read_text("utf-8") == '{"first": "job"}'
    assert not (tmp_path / "out.csv").exists()


def test_two_concurrent_jobs_never_mix_their_rows(tmp_path, tiny_model):
    """Two real processes, different inputs, the same output: the second fails or runs after
    the first; either way the output is one job's whole output."""
    (tmp_path / "a.txt").write_text(NEWS * 400, "utf-8")
    (tmp_path / "b.txt").write_text("李娜去了上海。\n" * 300, "utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    jobs = [subprocess.Popen([sys.executable, "-m", "cner", "annotate", name, "-m",
                              str(tiny_model), "-o", "out.jsonl", "--batch-size", "4"],
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env) for name in ("a.txt", "b.txt")]
    results = [(job.wait(300), job.stderr.read()) for job in jobs]
    for job in jobs:
        job.stderr.close()
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or re.fullmatch(r"error: out\.jsonl is being written by another cner "
                                         r"job \(pid \d+\)\n", err), err
    data = (tmp_path / "out.jsonl").read_bytes()
    assert b"\x00" not in data
    lines = data.decode("utf-8").splitlines()
    texts = {json.loads(line)["text"] for line in lines}
    assert (len(lines), texts) in [(1200, set(NEWS.splitlines())), (300, {"李娜去了上海。"})]
    assert not (tmp_path / "out.jsonl.partial").exists()


# -- a resumed job's rate ----------------------------------------------------------------------

class Interrupted(Exception):
    pass


def test_resumed_rate_counts_only_this_sessions_characters(tmp_path, tiny_model):
    from cner.inference.annotate import annotate_files
    from cner.inference.tagger import Tagger

    tagger = Tagger.load(tiny_model, precision="fp32")
    src = tmp_path / "a.txt"
    src.write_text(("张伟在北京大学工作。" * 30 + "\n") * 40 + "李娜。\n" * 8, "utf-8")
    out = tmp_path / "out.csv"
    calls = []
    original = tagger.pipe

    def failing(texts, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise Interrupted
        return original(texts, **kwargs)

    tagger.pipe = failing
    with pytest.raises(Interrupted):
        annotate_files([src], tagger, output=out, batch_size=4, progress=False)
    tagger.pipe = original
    report = annotate_files([src], tagger, output=out, batch_size=4, resume=True,
                            progress=False)
    assert report.resumed == 32 and report.documents == 48
    rate = float(re.search(r"\(([\d,]+) characters/s\)", report.summary()).group(1)
                 .replace(",", ""))
    this_session = 8 * len("张伟在北京大学工作。" * 30) + 8 * len("李娜。")  # documents 33-48
    assert rate == pytest.approx(this_session / report.seconds, rel=0.05, abs=2)


# -- a real run directory is replaced -------------------------------------------------------

def test_overwrite_replaces_a_real_cner_run(tmp_path, tiny_model):
    run = tmp_path / "run"
    shutil.copytree(tiny_model.parent, run)
    assert (run / "cner_run.json").is_file(), "a new run directory carries cner's marker"
    (tmp_path / "train.conll").write_text(ONE * 3, "utf-8")
    code, output = run_cner(["train", "--train", "train.conll", "--dev", "train.conll",
                             "--output", "run", *TINY], tmp_path)
    assert code == 2 and "already holds a run" in output, output
    code, output = run_cner(["train", "--train", "train.conll", "--dev", "train.conll",
                             "--output", "run", "--overwrite", *TINY], tmp_path)
    assert code == 0, output
    summary = json.loads((run / "summary.json").read_text("utf-8"))
    assert summary["steps"] == 2
    assert (run / "cner_run.json").is_file()


# -- bad input that used to end in a traceback (issue 12) -------------------------------------

BEYOND = str(sys.maxsize + 1)
NO_TEXT = {"a.csv": "id,body\n1,张伟在北京大学工作。\n"}
PARTIALS = ("out.csv", "out.csv.partial", "out.csv.partial.json")
# Eleven good lines, then one that is not JSON: the first chunk (8 documents at --batch-size 1)
# is written and saved before the error.
LATE_ERROR = {"in.jsonl": "".join(f'{{"text": "张伟{k}"}}\n' for k in range(11)) + "{oops\n"}

LATE_CASES = [
    Case("annotate --batch-size beyond sys.maxsize", {"a.txt": NEWS},
         ["annotate", "a.txt", "-m", MODEL, "--batch-size", BEYOND, "-o", "out.csv"],
         2, r"Invalid value for '--batch-size'", absent=PARTIALS),
    Case("evaluate --batch-size beyond sys.maxsize", {"dev.conll": DEV},
         ["evaluate", "-m", MODEL, "dev.conll", "--batch-size", BEYOND],
         2, r"Invalid value for '--batch-size'"),
    Case("annotate a CSV without its text column is refused before the model loads", NO_TEXT,
         ["annotate", "a.csv", "-m", "no-such-model-dir", "-o", "out.csv"],
         2, r"(?m)^error: a\.csv:1: no column 'text'; the columns are: id, body", absent=PARTIALS),
    Case("annotate a CSV without its text column leaves no partial", NO_TEXT,
         ["annotate", "a.csv", "-m", MODEL, "-o", "out.csv"],
         2, r"(?m)^error: a\.csv:1: no column 'text'", absent=PARTIALS),
    Case("annotate failing after its first chunk removes the partial", LATE_ERROR,
         ["annotate", "in.jsonl", "-m", MODEL, "-o", "out.csv", "--batch-size", "1"],
         2, r"(?m)^error: in\.jsonl:12: invalid JSON", absent=PARTIALS),
    Case("annotate into a folder under a file", {"a.txt": NEWS, "somefile.txt": "x\n"},
         ["annotate", "a.txt", "-m", MODEL, "-o", "somefile.txt/out.csv"],
         2, r"(?m)^error: somefile\.txt/out\.csv: cannot write there"),
    Case("annotate into a folder that cannot be created", {"a.txt": NEWS},
         ["annotate", "a.txt", "-m", MODEL, "-o", "/proc/cner-test/out.csv"],
         2, r"(?m)^error: /proc/cner-test/out\.csv: cannot write there: "),
    Case("annotate into a folder that cannot be written", {"a.txt": NEWS},
         ["annotate", "a.txt", "-m", MODEL, "-o", "/proc/out.csv"],
         2, r"(?m)^error: /proc/out\.csv: cannot write there: "),
    Case("convert into a folder that cannot be written", {"dev.conll": ONE},
         ["corpora", "convert", "dev.conll", "--to", "jsonl", "-o", "/proc/out.jsonl"],
         2, r"(?m)^error: /proc/out\.jsonl: cannot write there: "),
    Case("evaluate --json into a folder that cannot be written", {"dev.conll": DEV},
         ["evaluate", "-m", MODEL, "dev.conll", "--json", "/proc/scores.json"],
         2, r"(?m)^error: /proc/scores\.json: cannot write there: "),
]


@pytest.mark.parametrize("case", LATE_CASES, ids=str)
def test_bad_input_ends_in_one_error_line(case, tmp_path, tiny_model):
    lines = check_case(case, tmp_path, tiny_model).strip().splitlines()
    assert [line for line in lines if line.lower().startswith("error")] == lines[-1:], lines


def _full_device(path: Path) -> Path:
    """A character device like /dev/full (every write: ENOSPC) at ``path``, so that a broken
    run replaces nothing of the machine's; skips where device nodes cannot be made."""
    import stat

    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        with open(path, "w") as handle:
            handle.write("x")
            handle.flush()
    except PermissionError:
        pytest.skip("cannot make a device node here")
    except OSError:
        return path
    pytest.skip("the device node does not behave as /dev/full")


@pytest.mark.parametrize("command", [
    ["annotate", "a.txt", "-m", MODEL, "-o", "full"],
    ["annotate", "a.txt", "-m", MODEL, "-o", "full", "--to", "jsonl"],
    ["corpora", "convert", "dev.conll", "--to", "jsonl", "-o", "full"],
    ["evaluate", "-m", MODEL, "dev.conll", "--json", "full"],
], ids=["annotate csv", "annotate jsonl", "convert", "evaluate --json"])
def test_a_full_device_is_one_line_naming_it(tmp_path, tiny_model, command):
    _full_device(tmp_path / "full")
    (tmp_path / "a.txt").write_text(NEWS, "utf-8")
    (tmp_path / "dev.conll").write_text(DEV, "utf-8")
    argv = [str(tiny_model) if arg == MODEL else arg for arg in command]
    code, output = run_cner(argv, tmp_path)
    assert code == 2 and "Traceback" not in output, output
    assert output.strip().splitlines()[-1] == ("error: full: cannot write there: No space left "
                                               "on device"), output
    assert (tmp_path / "full").is_char_device(), "the device was replaced"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "dev.conll", "full"]


def _failing_from_the_second_call(function, failure: BaseException | type):
    import itertools

    calls = itertools.count()
    return lambda *args, **kwargs: (function(*args, **kwargs) if next(calls) == 0
                                    else _raise(failure))


def _raise(failure: BaseException | type):
    raise failure


def test_an_interrupted_job_keeps_its_partial_and_a_failed_one_does_not(tmp_path, tiny_model):
    from cner.errors import InputError
    from cner.inference.annotate import annotate_files
    from cner.inference.tagger import Tagger

    tagger = Tagger.load(tiny_model, precision="fp32")
    src = tmp_path / "a.txt"
    src.write_text("张伟在北京大学工作。\n" * 20, "utf-8")
    out = tmp_path / "out.csv"
    original = tagger.pipe
    for failure, kept in ((Interrupted, True), (InputError("bad"), False),
                          (KeyboardInterrupt, True)):
        tagger.pipe = _failing_from_the_second_call(original, failure)
        with pytest.raises(BaseException):
            annotate_files([src], tagger, output=out, batch_size=1, progress=False)
        partials = {p.name for p in tmp_path.iterdir()} - {"a.txt"}
        assert partials == ({"out.csv.partial", "out.csv.partial.json"} if kept else set())
    tagger.pipe = original
    report = annotate_files([src], tagger, output=out, batch_size=1, resume=True,
                            progress=False)
    assert (report.resumed, report.documents) == (8, 20)
    with pytest.raises(Exception, match="batch_size must be an integer from 1"):
        annotate_files([src], tagger, output=tmp_path / "x.csv", batch_size=sys.maxsize)
