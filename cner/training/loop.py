"""The one training loop, shared by NER, sentiment and GLUE-style tasks.

AdamW (no decay on biases and norms; separate learning rates for ``encoder.*``, head and
``crf.*`` parameters), linear warm-up then linear decay, gradient clipping and accumulation,
bf16 autocast (CPU and GPU) or fp16 with a grad scaler (GPU), evaluation every N steps or
each epoch, early stopping, best-model keeping, ``metrics.jsonl``, and checkpoints that
resume a killed run exactly: model, optimiser, scheduler, scaler, RNG states and the
position in the epoch's (seeded, reproducible) batch order.

The task supplies the model (``model(**batch) -> loss``), a function giving the batches of
an epoch, an evaluation function and a function that saves the best model.
"""
from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cner.config import TrainingConfig
from cner.errors import ConfigError
from cner.fileio import atomic_write
from cner.runtime.devices import autocast, resolve_device, resolve_precision
from cner.training.checkpoints import CHECKPOINTS, LATEST, Checkpointer  # noqa: F401
from cner.training.checkpoints import rng_state as _rng_state
from cner.training.checkpoints import set_rng_state as _set_rng_state

Batch = dict[str, Any]  # tensors for model(**batch), plus "n_chars": int (for throughput)


@dataclass
class LoopState:
    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_score: float | None = None
    best_step: int = 0
    evals_since_best: int = 0
    elapsed: float = 0.0  # training seconds before this process
    chars: int = 0
    finished: bool = False


@dataclass
class TrainResult:
    state: LoopState
    best_metrics: dict[str, float] = field(default_factory=dict)
    last_metrics: dict[str, float] = field(default_factory=dict)
    stopped_because: str = "completed"


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _move(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()
            if isinstance(v, torch.Tensor)}


class MetricsLog:
    """``metrics.jsonl``: one JSON object per log or evaluation event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        """On resume, forget events logged after the checkpoint so the log reads as one run."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text("utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        with atomic_write(self.path) as handle:
            handle.write("".join(line + "\n" for line in kept))

    def write(self, event: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")


def train_loop(model: nn.Module, *, cfg: TrainingConfig, run_dir: str | Path,
               epoch_batches: Callable[[int], Sequence[Batch]],
               evaluate: Callable[[nn.Module], dict[str, float]] | None,
               save_best: Callable[[nn.Module, dict[str, float]], None],
               score_key: str = "f1", resume: bool = False, progress: bool = True) -> TrainResult:
    """Train ``model`` and return the final loop state and metrics.

    ``epoch_batches(epoch)`` must return the same batches in the same order for the same
    epoch (seed the shuffle with the epoch) so that a resumed run continues exactly.
    ``evaluate(model)`` returns metrics including ``score_key`` (higher is better); with no
    evaluation the last model is kept as the best.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    if cfg.grad_accumulation < 1 or cfg.batch_size < 1:
        raise ConfigError("training.batch_size and training.grad_accumulation must be >= 1")
    seed_everything(cfg.seed)
    model.to(device)
    if cfg.freeze_encoder:
        for param in model.encoder.parameters():
            param.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.encoder.gradient_checkpointing_enable()

    batches_per_epoch = len(epoch_batches(0))
    if batches_per_epoch == 0:
        raise ConfigError("the training set is empty")
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accumulation)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    started, base_elapsed = time.perf_counter(), 0.0
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr,
                                  fused=device.type in ("cuda", "cpu"))
    def budget_used() -> float:
        return (base_elapsed + time.perf_counter() - started) / (cfg.max_minutes * 60)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(
        total_steps, int(cfg.warmup_ratio * total_steps),
        budget_used if cfg.max_minutes else None))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    checkpoints = Checkpointer(run_dir)
    log = MetricsLog(run_dir / "metrics.jsonl")
    state = LoopState()
    result = TrainResult(state)

    if resume:
        saved = checkpoints.load(model)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        _set_rng_state(saved["rng"])
        state = LoopState(**saved["loop"])
        result = TrainResult(state, saved.get("best_metrics", {}), saved.get("last_metrics", {}))
        log.truncate_after(state.step)
    elif log.path.exists():
        log.path.unlink()

    def checkpoint() -> None:
        state.elapsed = base_elapsed + time.perf_counter() - started
        checkpoints.save(model, {
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": _rng_state(), "loop": asdict(state),
            "best_metrics": result.best_metrics, "last_metrics": result.last_metrics}, state.step)

    def run_evaluation() -> bool:
        """Evaluate, keep the best model; True when early stopping says stop."""
        if evaluate is None:
            return False
        model.eval()
        with torch.inference_mode(), autocast(device, precision):
            metrics = evaluate(model)
        model.train()
        result.last_metrics = metrics
        score = metrics[score_key]
        improved = state.best_score is None or score > state.best_score
        if improved:
            state.best_score, state.best_step, state.evals_since_best = score, state.step, 0
            result.best_metrics = metrics
            save_best(model, metrics)
        else:
            state.evals_since_best += 1
        log.write({"event": "eval", "step": state.step, "epoch": state.epoch, **metrics,
                   "best": improved})
        patience = cfg.early_stopping_patience
        return patience is not None and state.evals_since_best >= patience

    started = time.perf_counter()
    base_elapsed = state.elapsed
    session_chars = 0
    bar = tqdm(total=total_steps, initial=state.step, disable=not progress or None,
               unit="step", dynamic_ncols=True, desc="train")
    model.train()
    stop = None
    while stop is None and state.step < total_steps and not state.finished:
        batches = epoch_batches(state.epoch)
        running_loss, since_log = 0.0, 0
        while state.batch_in_epoch < len(batches):
            group = batches[state.batch_in_epoch:state.batch_in_epoch + cfg.grad_accumulation]
            for batch in group:
                with autocast(device, precision):
                    loss = model(**_move(batch, device)) / len(group)
                scaler.scale(loss).backward()
                running_loss += loss.item()
                session_chars += batch.get("n_chars", 0)
                state.chars += batch.get("n_chars", 0)
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state.step += 1
            state.batch_in_epoch += len(group)
            since_log += 1
            elapsed = time.perf_counter() - started
            bar.update(1)
            if state.step % cfg.log_every == 0 or state.batch_in_epoch >= len(batches):
                speed = session_chars / max(elapsed, 1e-9)
                bar.set_postfix(loss=f"{running_loss / since_log:.3f}", chars_s=f"{speed:,.0f}",
                                best=state.best_score)
                log.write({"event": "train", "step": state.step, "epoch": state.epoch,
                           "loss": running_loss / since_log, "lr": scheduler.get_last_lr()[0],
                           "chars_per_s": speed})
                running_loss, since_log = 0.0, 0
            epoch_done = state.batch_in_epoch >= len(batches)
            if epoch_done:
                state.epoch += 1
                state.batch_in_epoch = 0
            eval_now = (cfg.eval_every and state.step % cfg.eval_every == 0) or \
                (not cfg.eval_every and epoch_done)
            if eval_now and run_evaluation():
                stop = "early stopping"
            if cfg.max_minutes and base_elapsed + elapsed > cfg.max_minutes * 60:
                stop = stop or "time limit"
            if state.step >= total_steps:
                stop = stop or "completed"
            if stop and not eval_now:
                run_evaluation()  # the final model competes for "best" too
            ckpt_now = eval_now or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0)
            if stop:
                state.finished = True
            if ckpt_now or stop:
                checkpoint()
            if stop or epoch_done:
                break
    bar.close()
    if evaluate is None:
        save_best(model, {})
    result.stopped_because = stop or "completed"
    log.write({"event": "end", "step": state.step, "reason": result.stopped_because,
               "seconds": base_elapsed + time.perf_counter() - started,
               "chars_per_s": session_chars / max(time.perf_counter() - started, 1e-9)})
    return result
