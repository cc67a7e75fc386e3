"""When things happen in a training run: the learning-rate curve, the wall-clock budget, and the
step cadence of train-loss logging, evaluation and checkpoints."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cner.config import TrainingConfig


def linear_schedule(total_steps: int, warmup_steps: int,
                    time_fraction: Callable[[], float] | None = None) -> Callable[[int], float]:
    """Warm-up then linear decay to 0 at ``total_steps``.

    With a wall-clock budget, ``time_fraction()`` (the share of the budget used) is the
    progress whenever it runs ahead of the step count, so warm-up and decay both follow the
    time limit and the learning rate still reaches 0 when the budget ends the run.
    """
    warmup = warmup_steps / max(1, total_steps)

    def factor(step: int) -> float:
        if time_fraction is None and step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = step / max(1, total_steps)
        if time_fraction is not None:
            progress = max(progress, time_fraction())
            if progress < warmup:
                return max(progress / warmup, 1 / max(1, warmup_steps))
        return max(0.0, (1 - progress) / max(1e-9, 1 - warmup))
    return factor


class Clock:
    """Training seconds of the whole run, across the processes of a resumed run.

    A resumed process starts from the checkpoint's count (`restart`), so that the time limit
    and the learning rate that follows it see the run, not only this process; throughput is
    measured over this process (`session`) because only its characters are counted.
    """

    def __init__(self, max_minutes: float | None) -> None:
        self.budget = max_minutes * 60 if max_minutes else None
        self.before = 0.0  # seconds trained by earlier processes of this run
        self.started = time.perf_counter()

    def restart(self, before: float) -> None:
        self.before, self.started = before, time.perf_counter()

    def session(self) -> float:
        return time.perf_counter() - self.started

    def total(self) -> float:
        return self.before + self.session()

    def budget_used(self) -> float:
        """The share of the budget spent (for `linear_schedule`); needs a budget."""
        return self.total() / self.budget

    def over_budget(self, session_seconds: float) -> bool:
        """Whether the run had used up its budget when this process had trained
        ``session_seconds`` (the time taken right after a step, before any evaluation)."""
        return self.budget is not None and self.before + session_seconds > self.budget


@dataclass(frozen=True)
class Cadence:
    """Which optimiser steps log the train loss, evaluate, and checkpoint. Everything that
    happens at an epoch's end happens after the step that consumed its last batch."""

    log_every: int
    eval_every: int | None  # None (or 0): once per epoch
    checkpoint_every: int | None  # None (or 0): at each evaluation point only

    @classmethod
    def of(cls, cfg: TrainingConfig) -> Cadence:
        return cls(cfg.log_every, cfg.eval_every, cfg.checkpoint_every)

    def log_due(self, step: int, epoch_done: bool) -> bool:
        # Also at an epoch's end: the loss average never spans two epochs.
        return step % self.log_every == 0 or epoch_done

    def eval_due(self, step: int, epoch_done: bool) -> bool:
        if self.eval_every:
            return step % self.eval_every == 0
        return epoch_done

    def checkpoint_due(self, step: int, epoch_done: bool) -> bool:
        """At every evaluation point (even without an evaluation function: a run without dev
        data still checkpoints each epoch) and every ``checkpoint_every`` steps. The step that
        ends the run checkpoints too; the driver adds that."""
        return self.eval_due(step, epoch_done) or bool(
            self.checkpoint_every and step % self.checkpoint_every == 0)
