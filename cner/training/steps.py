"""The optimisation itself, as a generator of steps (after spaCy's ``train_while_improving``).

`train_steps` walks the epochs' batches from the loop state's position, takes one optimiser step
per group of ``grad_accumulation`` batches, evaluates when the cadence says so, decides whether
to stop, and yields a `StepRecord` after every step. Logging, the progress bar and checkpoints
are the consumer's: it acts on each record while the generator waits, so a checkpoint taken
then holds exactly the state after the record's step.
"""
from __future__ import annotations

import random
from contextlib import nullcontext
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cner.config import TrainingConfig
from cner.runtime.devices import autocast, resolve_device, resolve_precision
from cner.training.evaluation import Evaluation
from cner.training.schedule import Cadence, Clock, linear_schedule

Batch = dict[str, Any]  # tensors for model(**batch), plus "n_chars": int (for throughput)


@dataclass
class LoopState:
    """Where the run is; checkpointed, so everything a resumed run needs to continue."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_score: float | None = None
    best_step: int = 0
    evals_since_best: int = 0
    elapsed: float = 0.0  # training seconds before this process
    chars: int = 0
    finished: bool = False


@dataclass(frozen=True)
class StepRecord:
    """What one optimiser step did, yielded by `train_steps` right after it."""

    step: int  # optimiser steps taken, this one included
    epoch: int  # the epoch this step's batches came from
    epoch_done: bool  # this step consumed its epoch's last batch
    batch_losses: tuple[float, ...]  # each accumulated batch's loss, divided by the group size
    lr: float  # the first parameter group's learning rate after the step
    chars: int  # characters in this step's batches
    seconds: float  # training seconds of this process, taken right after the step
    evaluation: Evaluation | None  # when this step evaluated (a scheduled or a final evaluation)
    stop: str | None  # why training stops after this step: early stopping | time limit | completed

    @property
    def loss(self) -> float:
        return sum(self.batch_losses)

    @property
    def epochs_done(self) -> int:
        """The loop state's epoch after the step (what an evaluation here is logged with)."""
        return self.epoch + self.epoch_done


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, cfg: TrainingConfig) -> list[dict]:
    """AdamW groups: no weight decay for biases and norm weights; the head and the CRF get
    their own learning-rate multipliers (CRF transitions learn far slower at encoder rates)."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("crf."):
            lr = cfg.lr * cfg.crf_lr_multiplier
        elif name.startswith("encoder."):
            lr = cfg.lr
        else:
            lr = cfg.lr * cfg.head_lr_multiplier
        no_decay = param.ndim < 2 or "norm" in name.lower()
        groups.setdefault((lr, 0.0 if no_decay else cfg.weight_decay), []).append(param)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def prepare_model(model: nn.Module, cfg: TrainingConfig) -> tuple[torch.device, str]:
    """Device, precision and threads; the seed; the model on the device with its frozen
    encoder or gradient checkpointing. Seeded here, before anything draws random numbers,
    because the run's randomness (dropout) starts from it."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model.to(device)
    if cfg.freeze_encoder:
        for param in model.encoder.parameters():
            param.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.encoder.gradient_checkpointing_enable()
    return device, precision


def _move(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()
            if isinstance(v, torch.Tensor)}


class Optimisation:
    """The model and what updates it: AdamW, the learning-rate schedule (following the clock
    when the run has a time budget), gradient clipping, and the fp16 grad scaler (a no-op in
    other precisions). `prepare_model` must have put the model on ``device`` first."""

    def __init__(self, model: nn.Module, cfg: TrainingConfig, *, total_steps: int,
                 device: torch.device, precision: str, clock: Clock) -> None:
        self.model, self.device, self.precision = model, device, precision
        self.max_grad_norm = cfg.max_grad_norm
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr,
                                           fused=device.type in ("cuda", "cpu"))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_schedule(
            total_steps, int(cfg.warmup_ratio * total_steps),
            clock.budget_used if clock.budget else None))
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step(self, group: Sequence[Batch]) -> tuple[tuple[float, ...], int]:
        """Forward and backward each batch of ``group``, then one optimiser and scheduler
        step; returns the batches' losses (each divided by the group size) and characters."""
        losses, chars = [], 0
        for i, batch in enumerate(group):
            # DDP (cner.training.distributed): one gradient all-reduce per step, each rank's
            # loss weighted by its share of the batch's rows
            sync = i == len(group) - 1 or not hasattr(self.model, "no_sync")
            with (nullcontext() if sync else self.model.no_sync()):
                with autocast(self.device, self.precision):
                    loss = self.model(**_move(batch, self.device)) / len(group)
                    loss = loss * batch.get("loss_weight", 1.0)
                self.scaler.scale(loss).backward()
            losses.append(loss.item())
            chars += batch.get("n_chars", 0)
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return tuple(losses), chars

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, saved: dict) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])


def stop_reason(evaluation: Evaluation | None, over_time: bool, step: int,
                total_steps: int) -> str | None:
    """Why training stops after ``step``, the first reason in this order; None: go on."""
    if evaluation is not None and evaluation.patience_spent:
        return "early stopping"
    if over_time:
        return "time limit"
    if step >= total_steps:
        return "completed"
    return None


def train_steps(opt: Optimisation, epoch_batches: Callable[[int], Sequence[Batch]],
                state: LoopState, *, total_steps: int, accumulation: int, cadence: Cadence,
                evaluate: Callable[[LoopState], Evaluation | None], clock: Clock
                ) -> Iterator[StepRecord]:
    """Train from ``state``'s position, updating it, and yield a record after every step.

    ``epoch_batches(epoch)`` must give the same batches in the same order for the same epoch;
    that, the checkpointed RNG states and ``state.batch_in_epoch`` make a resumed run take
    exactly the steps the killed one would have. The last record has ``stop`` set (and
    ``state.finished`` is then true); a finished state yields nothing.
    """
    opt.model.train()
    while state.step < total_steps and not state.finished:
        batches = epoch_batches(state.epoch)
        while state.batch_in_epoch < len(batches):
            start = state.batch_in_epoch
            losses, chars = opt.step(batches[start:start + accumulation])
            state.step += 1
            state.batch_in_epoch = min(start + accumulation, len(batches))
            state.chars += chars
            seconds = clock.session()
            epoch, epoch_done = state.epoch, state.batch_in_epoch >= len(batches)
            if epoch_done:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            scheduled = cadence.eval_due(state.step, epoch_done)
            evaluation = evaluate(state) if scheduled else None
            stop = stop_reason(evaluation, clock.over_budget(seconds), state.step, total_steps)
            if stop and not scheduled:
                evaluation = evaluate(state)  # the final model competes for "best" too
            state.finished = stop is not None
            yield StepRecord(state.step, epoch, epoch_done, losses, opt.lr, chars, seconds,
                             evaluation, stop)
            if stop or epoch_done:
                break
