"""Reliability of `cner train`: training lengths that cannot train, and resuming a run whose
``checkpoints/latest`` pointer was lost. Command-line cases use the catalogue's format."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reliability_catalogue import SAMPLE, Case, check_case

TRAIN = ["train", "--train", str(SAMPLE / "train.conll"), "--dev", str(SAMPLE / "dev.conll"),
         "--set", "data.test=null", "-o", "run", "-q"]

# A length that trains nothing used to run to the end and fail late with "model directory …
# not found"; it is a config error, named by its key, before the run directory exists.
NO_TRAINING = [
    Case("zero epochs", {}, [*TRAIN, "--set", "training.epochs=0"], 2,
         r"training\.epochs.*>= 1.*found 0", absent=("run",)),
    Case("negative epochs", {}, [*TRAIN, "--set", "training.epochs=-3"], 2,
         r"training\.epochs.*found -3", absent=("run",)),
    Case("max_steps -1", {}, [*TRAIN, "--set", "training.max_steps=-1"], 2,
         r"training\.max_steps.*found -1", absent=("run",)),
    Case("max_steps 0", {}, [*TRAIN, "--set", "training.max_steps=0"], 2,
         r"training\.max_steps.*found 0", absent=("run",)),
    Case("zero epochs in the config file", {"bad.yaml": "training:\n  epochs: 0\n"},
         [*TRAIN, "-c", "bad.yaml"], 2, r"training\.epochs", absent=("run",)),
    Case("zero batch size", {}, [*TRAIN, "--set", "training.batch_size=0"], 2,
         r"training\.batch_size.*found 0", absent=("run",)),
    Case("zero log interval", {}, [*TRAIN, "--set", "training.log_every=0"], 2,
         r"training\.log_every.*found 0", absent=("run",)),
]


@pytest.mark.parametrize("case", NO_TRAINING, ids=str)
def test_training_length_that_trains_nothing(case, tmp_path):
    output = check_case(case, tmp_path)
    assert len(output.strip().splitlines()) == 1, output


def test_config_errors_name_the_key_in_one_line():
    from cner.config import load_config
    from cner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^config key 'training.grad_accumulation' expects"):
        load_config(None, ["training.grad_accumulation=0"])
    cfg = load_config(None, ["training.max_steps=null", "training.epochs=1"])
    assert cfg.training.max_steps is None and cfg.training.epochs == 1


# -- resume without the `latest` pointer --------------------------------------------------------

def _complete(directory: Path, step: int) -> Path:
    path = directory / f"step-{step:08d}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"m")
    (path / "trainer.pt").write_bytes(b"t")
    return path


def test_checkpointer_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    from cner.training.checkpoints import Checkpointer

    checkpoints = Checkpointer(tmp_path)
    assert checkpoints.latest() is None
    _complete(checkpoints.root, 7)
    newest = _complete(checkpoints.root, 14)
    half = checkpoints.root / "step-00000021"  # no trainer.pt: not a checkpoint to resume from
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"m")
    (checkpoints.root / ".tmp-abc").mkdir()  # a save killed before its rename
    assert checkpoints.latest() == newest  # no pointer
    (checkpoints.root / "latest").write_text("step-00000099\n")
    assert checkpoints.latest() == newest  # a pointer naming a missing directory
    (checkpoints.root / "latest").write_text("step-00000021\n")
    assert checkpoints.latest() == newest  # a pointer naming an incomplete directory
    (checkpoints.root / "latest").write_text("step-00000007\n")
    assert checkpoints.latest() == checkpoints.root / "step-00000007"  # a sound pointer wins


def _run_files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir.parent)): p.read_bytes()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("pointer", [None, "step-00000099\n"], ids=["no pointer", "dangling"])
def test_resume_without_a_sound_latest_pointer(pointer, tiny_model, tmp_path):
    """The tiny model's run directory, its ``latest`` pointer lost (or dangling) and an
    incomplete later checkpoint beside it: ``--resume`` continues from the complete one."""
    files = {name: data for name, data in _run_files(tiny_model.parent).items()
             if not name.endswith("checkpoints/latest")}
    name = tiny_model.parent.name
    files[f"{name}/checkpoints/step-00000020/"] = ""
    if pointer is not None:
        files[f"{name}/checkpoints/latest"] = pointer
    kept = tuple(k for k in files if "/checkpoints/step-00000010/" in k or k.endswith(".yaml"))
    case = Case("resume without latest", files, ["train", "--resume", name, "-q"], 0,
                r"stopped: completed, 10 steps", unchanged=kept)
    check_case(case, tmp_path)
    assert (tmp_path / name / "summary.json").is_file()


def test_resume_with_no_checkpoint_at_all_says_so(tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model.parent, run)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    case = Case("resume before the first checkpoint", {}, ["train", "--resume", "run", "-q"], 2,
                r"has not reached its first checkpoint")
    check_case(case, tmp_path)


# -- resuming a damaged run: one line naming the file (issue 12) --------------------------------

class _Payload:
    """Pickles as a call to os.mkdir: loading it must be refused, never run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.path,))


def _with_payload(path: Path, workdir: Path) -> None:
    import torch

    state = torch.load(path, weights_only=True)
    state["extra"] = _Payload(workdir / "payload-ran")
    torch.save(state, path)


def _cut(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def _broken_middle_line(path: Path) -> None:
    lines = path.read_text("utf-8").splitlines(keepends=True)
    path.write_text(lines[0] + '{"event": "train", "step": \n' + "".join(lines[1:]), "utf-8")


STEP = "checkpoints/step-00000010/"
DAMAGE = {  # what is damaged, how, and the error's words after the file's name
    "truncated weights": (STEP + "model.safetensors", lambda p, w: _cut(p, 100), ""),
    "truncated trainer state": (STEP + "trainer.pt", lambda p, w: _cut(p, 100),
                                ": cannot read the checkpoint"),
    "empty trainer state": (STEP + "trainer.pt", lambda p, w: _cut(p, 0),
                            ": cannot read the checkpoint"),
    "trainer state with a pickle payload": (STEP + "trainer.pt", _with_payload,
                                            ": refused: torch's restricted unpickler loads "
                                            "tensors and plain data"),
    "corrupt metrics.jsonl": ("metrics.jsonl", lambda p, w: _broken_middle_line(p),
                              ":2: is not a cner metrics event"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_resume_of_a_damaged_run_is_one_line_naming_the_file(name, tiny_model, tmp_path):
    relative, damage, message = DAMAGE[name]
    run = tmp_path / "run"
    shutil.copytree(tiny_model.parent, run)
    damage(run / relative, tmp_path)
    case = Case(f"resume: {name}", {}, ["train", "--resume", "run", "-q"], 2,
                rf"^error: (.* )?{re.escape(f'run/{relative}{message}')}",
                unchanged=tuple(_run_files(run)))
    output = check_case(case, tmp_path)
    assert len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "payload-ran").exists()


def test_resume_drops_a_torn_last_line_of_the_metrics(tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model.parent, run)
    with open(run / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"event": "train", "st')  # a kill -9 in the middle of a write
    case = Case("resume after a torn write", {}, ["train", "--resume", "run", "-q"], 0,
                r"stopped: completed, 10 steps", unchanged=())
    check_case(case, tmp_path)
    assert b'"st\n' not in (run / "metrics.jsonl").read_bytes()


# -- a run that fails before its first checkpoint leaves nothing behind --------------------------

def _failing_saves(monkeypatch, failure: BaseException, after: int = 0) -> None:
    from cner.training.checkpoints import Checkpointer

    save, calls = Checkpointer.save, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise failure
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "save", failing)


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()],
                         ids=["crash", "interrupt"])
def test_a_run_failing_before_its_first_checkpoint_leaves_nothing(failure, monkeypatch,
                                                                   tmp_path):
    from reliability_catalogue import run_cner

    argv = [*TRAIN[:-3], "-o", "runs/new", "-q", "--set", "training.max_steps=2",
            "--set", "training.eval_every=2", "--set", "training.threads=1"]
    (tmp_path / "mine").mkdir()
    for output_dir in ("runs/new", "mine"):  # a new directory, and an existing empty one
        argv[argv.index("-o") + 1] = output_dir
        with monkeypatch.context() as patch:
            _failing_saves(patch, failure)
            code, output = run_cner(argv, tmp_path)
        assert code != 0, output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"], output
        assert list((tmp_path / "mine").iterdir()) == []
    code, output = run_cner(argv, tmp_path)  # the same command simply runs again
    assert code == 0, output


def test_a_run_failing_after_its_first_checkpoint_is_kept_to_resume(monkeypatch, tmp_path):
    from reliability_catalogue import run_cner

    argv = [*TRAIN, "--set", "training.max_steps=4", "--set", "training.eval_every=2",
            "--set", "training.threads=1"]
    with monkeypatch.context() as patch:
        _failing_saves(patch, KeyboardInterrupt(), after=1)
        code, output = run_cner(argv, tmp_path)
    assert code == 130, output
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "trainer.pt").is_file()
    code, output = run_cner(["train", "--resume", "run", "-q"], tmp_path)
    assert code == 0 and "stopped: completed, 4 steps" in output, output
