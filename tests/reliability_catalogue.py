"""The reliability catalogue's format: one `Case` per misuse a careless or hostile user makes.

A case names the files it starts from, the `cner` command, the exit status and message it must
end with, and which files must still exist byte-identical afterwards (by default every file it
started from) or must not exist (no half-made outputs). `check_case` runs it in a fresh
directory and asserts all of that; the ``tests/test_reliability_*.py`` modules are tables of
cases plus the few checks a table cannot express (concurrent jobs, signals, devices).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
MODEL = "{model}"  # stands for a tiny trained model directory in a command


@dataclass(frozen=True)
class Case:
    """``files``: relative path -> content (str is written as UTF-8; a directory is a path
    ending in ``/``). ``command``: `cner` arguments, relative paths inside the case directory,
    ``{model}`` for a tiny model. ``message``: a regular expression searched in the output.
    ``unchanged``: files that must be byte-identical afterwards (``None``: every file given).
    ``absent``: paths that must not exist afterwards."""

    name: str
    files: dict[str, str | bytes]
    command: list[str]
    exit_code: int
    message: str
    unchanged: tuple[str, ...] | None = None
    absent: tuple[str, ...] = ()
    subprocess: bool = False  # run `python -m cner` in a child process (devices, signals)
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:  # pytest ids
        return self.name


def lay_out(files: dict[str, str | bytes], root: Path) -> None:
    for relative, content in files.items():
        path = root / relative
        if relative.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


def run_cner(argv: list[str], cwd: Path, *, in_subprocess: bool = False,
             env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str]:
    """``(exit status, stdout + stderr)`` of ``cner ARGV`` run in ``cwd``."""
    if in_subprocess:
        proc = subprocess.run([sys.executable, "-m", "cner", *argv], cwd=cwd, text=True,
                              capture_output=True, timeout=timeout,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        return proc.returncode, proc.stdout + proc.stderr
    from cner.cli import main

    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, argv, env=env, catch_exceptions=True)
    finally:
        os.chdir(before)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, output


def check_case(case: Case, workdir: Path, model_dir: Path | None = None) -> str:
    """Run ``case`` in ``workdir`` and assert everything it promises; returns the output."""
    lay_out(case.files, workdir)
    keep = case.files if case.unchanged is None else case.unchanged
    snapshot = {name: (workdir / name).read_bytes() for name in keep
                if not name.endswith("/") and (workdir / name).is_file()}
    argv = [str(model_dir) if arg == MODEL else arg for arg in case.command]
    code, output = run_cner(argv, workdir, in_subprocess=case.subprocess, env=case.env)
    assert "Traceback" not in output, output
    assert code == case.exit_code, f"exit {code}, expected {case.exit_code}:\n{output}"
    assert re.search(case.message, output), f"{case.message!r} not in:\n{output}"
    for name, content in snapshot.items():
        assert (workdir / name).is_file(), f"{name} is gone"
        assert (workdir / name).read_bytes() == content, f"{name} was changed"
    for name in case.absent:
        assert not (workdir / name).exists(), f"{name} was left behind"
    return output
