"""A training command run twice, to the end and killed with SIGKILL after a checkpoint: the
resume tests of every long job (pretrain, distill, ...) compare the two."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def cner_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cner.cli", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def kill_after_checkpoint(args: list[str], output: Path, step: int) -> None:
    """Start ``cner ARGS -o OUTPUT`` and SIGKILL it once its latest checkpoint is ``step`` or
    later; fails if the run ends first (it must be long enough to be killed)."""
    proc = subprocess.Popen(cner_command(*args, "-o", str(output)), env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = output / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and latest.read_text().strip() >= f"step-{step:08d}":
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (output / "summary.json").exists()


def straight_and_killed(args: list[str], straight: Path, killed: Path, step: int) -> None:
    """`run_to_end` into ``straight`` and `kill_after_checkpoint` into ``killed``, at the same
    time: the commands run on one thread, and the suite's second core would idle."""
    proc = subprocess.Popen(cner_command(*args, "-o", str(straight)), env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        kill_after_checkpoint(args, killed, step)
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


def resume(command: str, run_dir: Path) -> None:
    subprocess.run(cner_command(command, "--resume", str(run_dir), "-q"), check=True,
                   env=environment(), capture_output=True, timeout=300)
