"""Checkpoints that resume a killed run exactly: the model's weights, and in ``trainer.pt`` the
optimiser, scheduler and grad-scaler states, the RNG states, the loop's position and its best
and last metrics.

Each checkpoint is ``run_dir/checkpoints/step-NNNNNNNN/`` (``model.safetensors`` and
``trainer.pt``), written to a temporary directory and renamed into place, after which the
``latest`` pointer file is rewritten atomically to name it; the two newest are kept.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from cner.errors import ModelError
from cner.fileio import atomic_write

CHECKPOINTS = "checkpoints"
LATEST = "latest"
FILES = ("model.safetensors", "trainer.pt")


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    # The restricted unpickler gives the Python state's inner tuple back as a list.
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _step_of(path: Path) -> int:
    try:
        return int(path.name.removeprefix("step-"))
    except ValueError:
        return -1


def is_complete(path: Path) -> bool:
    """A checkpoint directory to resume from: both of its files are there."""
    return path.is_dir() and all((path / name).is_file() for name in FILES)


class Checkpointer:
    """Atomic checkpoints under ``run_dir/checkpoints`` (see the module docstring)."""

    def __init__(self, run_dir: Path, keep: int = 2) -> None:
        self.root = Path(run_dir) / CHECKPOINTS
        self.keep = keep

    def save(self, model: nn.Module, trainer_state: dict, step: int) -> None:
        from cner.models.weights import save_state

        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{step:08d}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        save_state(model, tmp / FILES[0])
        torch.save(trainer_state, tmp / FILES[1])
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        with atomic_write(self.root / LATEST) as handle:
            handle.write(final.name + "\n")
        # Old ones go only after the pointer names the new one, so a kill at any point leaves
        # the pointer naming a complete checkpoint.
        older = sorted(p for p in self.root.glob("step-*") if p != final)
        for old in older[:max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> Path | None:
        """The checkpoint to resume from: the one ``latest`` names when that is complete, else
        the newest complete ``step-*`` directory. The pointer can be missing or dangling
        although checkpoints exist (a run directory copied without it, a hand-pruned one);
        the step directories alone are enough to resume."""
        pointer = self.root / LATEST
        if pointer.is_file():
            named = self.root / pointer.read_text(encoding="utf-8").strip()
            if named.parent == self.root and is_complete(named):
                return named
        found = [p for p in self.root.glob("step-*") if _step_of(p) >= 0 and is_complete(p)]
        return max(found, key=_step_of, default=None)

    def load(self, model: nn.Module) -> dict:
        """Load the latest checkpoint's weights into ``model``; returns its trainer state."""
        from cner.models.weights import load_state

        path = self.latest()
        if path is None:
            raise ModelError(f"no checkpoint in {self.root}; the run has not reached its first "
                             f"checkpoint: start it again with --output {self.root.parent} "
                             "--overwrite")
        try:
            load_state(model, path / FILES[0])  # a file it cannot read: a ModelError naming it
        except ModelError as exc:
            raise ModelError(f"{exc}; {DAMAGED}") from None
        return read_trainer_state(path / FILES[1])


# What `cner.training.loop.resume_from` reads from a checkpoint's trainer state.
TRAINER_KEYS = ("rng", "loop")
DAMAGED = ("the checkpoint is damaged; delete its step directory to resume from the one "
           "before, or start the run again")


def read_trainer_state(path: Path) -> dict:
    """A checkpoint's ``trainer.pt``, loaded with torch's restricted unpickler (tensors and
    plain containers only). A truncated or corrupt file, one that carries anything else (a
    pickled object: refused, never run), or one without the loop's state is one `ModelError`
    naming the file."""
    import pickle

    hint = DAMAGED
    try:
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported [^.\n]*", str(exc))
        raise ModelError(f"{path}: refused: torch's restricted unpickler loads tensors and plain "
                         "data only" + (f" ({found.group(0).strip()})" if found else "")
                         + f"; {hint}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError,
            IndexError, KeyError, TypeError) as exc:
        what = str(exc).split(". ")[0].splitlines()[0][:100] if str(exc) else ""
        raise ModelError(f"{path}: cannot read the checkpoint ({what or type(exc).__name__}); "
                         f"{hint}") from None
    if not isinstance(state, dict) or any(key not in state for key in TRAINER_KEYS):
        raise ModelError(f"{path}: is not a cner trainer state (no "
                         f"{' or '.join(TRAINER_KEYS)}); {hint}")
    return state
