"""What a training run reports as it goes: ``metrics.jsonl`` and the progress bar.

``metrics.jsonl`` holds one JSON object per event: ``train`` (the loss averaged over the steps
since the previous one, the learning rate, characters per second), ``eval`` (the dev metrics and
whether they are a new best) and ``end`` (why the run stopped, its seconds and throughput).
"""
from __future__ import annotations

import json
from pathlib import Path

from cner.errors import InputError
from cner.fileio import atomic_write
from cner.training.schedule import Cadence, Clock
from cner.training.steps import StepRecord


class MetricsLog:
    """``metrics.jsonl``: one JSON object per log or evaluation event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, resumed_at: int | None) -> None:
        """A new run starts an empty log; a resumed one keeps what led to its checkpoint."""
        if resumed_at is not None:
            self.truncate_after(resumed_at)
        elif self.path.exists():
            self.path.unlink()

    def truncate_after(self, step: int) -> None:
        """On resume, forget events logged after the checkpoint so the log reads as one run.

        A last line without its line end (a write cut short by a kill) is dropped; any other
        line that is not a JSON event is an `InputError` naming the file and line."""
        if not self.path.exists():
            return
        lines = self.path.read_bytes().split(b"\n")
        kept = []
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
                event = json.loads(line) if line.strip() else None
            except ValueError:  # invalid JSON or UTF-8
                if number == len(lines):
                    continue
                event = "not JSON"
            if event is None:
                continue
            if not isinstance(event, dict) or not isinstance(event.get("step", 0), int):
                raise InputError("is not a cner metrics event (one JSON object per line with "
                                 "an integer step)", path=self.path, line=number,
                                 hint="the run's log is damaged: delete that line, then resume")
            if event.get("step", 0) <= step:
                kept.append(line + "\n")
        with atomic_write(self.path) as handle:
            handle.write("".join(kept))

    def write(self, event: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")


class TrainLog:
    """Turns step records into ``metrics.jsonl`` events.

    The train loss is averaged over the steps since the last ``train`` event of this process
    (a resumed process starts a fresh average); the throughput counts this process's
    characters over its training seconds.
    """

    def __init__(self, log: MetricsLog, cadence: Cadence) -> None:
        self.log, self.cadence = log, cadence
        self.loss, self.steps = 0.0, 0  # since the last train event
        self.chars = 0  # this process's

    def record(self, record: StepRecord) -> dict | None:
        """Write the step's events; returns its ``train`` event, if it has one."""
        for loss in record.batch_losses:  # one by one: the same float sums as batch by batch
            self.loss += loss
        self.steps += 1
        self.chars += record.chars
        event = None
        if self.cadence.log_due(record.step, record.epoch_done):
            event = {"event": "train", "step": record.step, "epoch": record.epoch,
                     "loss": self.loss / self.steps, "lr": record.lr,
                     "chars_per_s": self.chars / max(record.seconds, 1e-9)}
            self.log.write(event)
            self.loss, self.steps = 0.0, 0
        if record.evaluation is not None:
            self.log.write({"event": "eval", "step": record.step, "epoch": record.epochs_done,
                            **record.evaluation.metrics, "best": record.evaluation.improved})
        return event

    def end(self, step: int, reason: str, clock: Clock, *, ranks: int = 1) -> None:
        """The run's last event; ``ranks``: the DDP world size (1: one process)."""
        self.log.write({"event": "end", "step": step, "reason": reason, "seconds": clock.total(),
                        "chars_per_s": self.chars / max(clock.session(), 1e-9), "ranks": ranks})


class ProgressBar:
    """A tqdm bar over the run's steps (a resumed run starts at its step), showing the train
    loss and throughput of the latest ``train`` event and the best score so far."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        # disable=None: tqdm hides itself when the output is not a terminal.
        self.bar = tqdm(total=total, initial=initial, disable=not enabled or None,
                        unit="step", dynamic_ncols=True, desc="train")

    def update(self, train_event: dict | None, best_score: float | None) -> None:
        self.bar.update(1)
        if train_event is not None:
            self.bar.set_postfix(loss=f"{train_event['loss']:.3f}",
                                 chars_s=f"{train_event['chars_per_s']:,.0f}", best=best_score)

    def close(self) -> None:
        self.bar.close()
