"""The one training loop, shared by NER, sentiment and GLUE-style tasks.

AdamW (no decay on biases and norms; separate learning rates for ``encoder.*``, head and
``crf.*`` parameters), linear warm-up then linear decay, gradient clipping and accumulation,
bf16 autocast (CPU and GPU) or fp16 with a grad scaler (GPU), evaluation every N steps or
each epoch, early stopping, best-model keeping, ``metrics.jsonl``, and checkpoints that
resume a killed run exactly: model, optimiser, scheduler, scaler, RNG states and the
position in the epoch's (seeded, reproducible) batch order.

The task supplies the model (``model(**batch) -> loss``), a function giving the batches of
an epoch, an evaluation function and a function that saves the best model.

`train_loop` only composes the parts, each in its own module: the steps themselves
(`steps.train_steps`, a generator of `StepRecord`s), evaluation with best-model keeping and
early stopping (`evaluation`), the cadence, clock and learning-rate curve (`schedule`),
checkpoints (`checkpoints`), and ``metrics.jsonl`` with the progress bar (`reporting`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from cner.config import TrainingConfig
from cner.errors import ConfigError
from cner.training import distributed
from cner.training.checkpoints import CHECKPOINTS, LATEST, Checkpointer, rng_state, set_rng_state
from cner.training.evaluation import BestKeeper, Metrics
from cner.training.reporting import MetricsLog, ProgressBar, TrainLog
from cner.training.schedule import Cadence, Clock, linear_schedule
from cner.training.steps import (Batch, LoopState, Optimisation, StepRecord, param_groups,
                                 prepare_model, seed_everything, train_steps)

__all__ = ["Batch", "CHECKPOINTS", "Checkpointer", "LATEST", "LoopState", "MetricsLog",
           "StepRecord", "TrainResult", "linear_schedule", "param_groups", "seed_everything",
           "train_loop"]


@dataclass
class TrainResult:
    state: LoopState
    best_metrics: dict[str, float] = field(default_factory=dict)
    last_metrics: dict[str, float] = field(default_factory=dict)
    stopped_because: str = "completed"


def planned_steps(cfg: TrainingConfig, epoch_batches: Callable[[int], Sequence[Batch]]) -> int:
    """The run's length in optimiser steps: ``max_steps``, else ``epochs`` whole epochs."""
    batches_per_epoch = len(epoch_batches(0))
    if batches_per_epoch == 0:
        raise ConfigError("the training set is empty")
    total = cfg.max_steps or cfg.epochs * math.ceil(batches_per_epoch / cfg.grad_accumulation)
    if total < 1:  # a config built in code skips load_config's checks; a loop of 0 steps
        key, value = ("max_steps", cfg.max_steps) if cfg.max_steps else ("epochs", cfg.epochs)
        raise ConfigError(f"config key 'training.{key}' expects an int >= 1, found {value!r}")
    return total


def trainer_state(opt: Optimisation, state: LoopState, keeper: BestKeeper) -> dict:
    """What ``trainer.pt`` holds besides the weights (the keys are those of older runs)."""
    return {**opt.state_dict(), "rng": rng_state(), "loop": asdict(state), **keeper.state_dict()}


def resume_from(checkpoints: Checkpointer, opt: Optimisation, keeper: BestKeeper) -> LoopState:
    """Load the latest checkpoint into the model, optimisation and keeper; returns the loop
    state it was taken in. The RNG states come last: nothing may draw after them."""
    saved = checkpoints.load(opt.model)
    opt.load_state_dict(saved)
    keeper.load_state_dict(saved)
    set_rng_state(saved["rng"])
    return LoopState(**saved["loop"])


def consume(records: Iterable[StepRecord], *, state: LoopState, log: TrainLog, bar: ProgressBar,
            checkpoint: Callable[[], None], cadence: Cadence) -> str | None:
    """Report every step and checkpoint where due (and after the last step); returns why the
    steps stopped, None when there were none (a resumed, finished run)."""
    stop = None
    for record in records:
        # Log before checkpointing: the other way round, a kill between the two would lose
        # this step's events for good, as the resumed run starts after the step. This way the
        # resume drops them with the other events after its checkpoint and logs them again.
        bar.update(log.record(record), state.best_score)
        if record.stop or cadence.checkpoint_due(record.step, record.epoch_done):
            checkpoint()
        stop = record.stop
    return stop


def train_loop(model: nn.Module, *, cfg: TrainingConfig, run_dir: str | Path,
               epoch_batches: Callable[[int], Sequence[Batch]],
               evaluate: Callable[[nn.Module], Metrics] | None,
               save_best: Callable[[nn.Module, Metrics], None],
               score_key: str = "f1", higher_is_better: bool = True, resume: bool = False,
               progress: bool = True) -> TrainResult:
    """Train ``model`` and return the final loop state and metrics.

    ``epoch_batches(epoch)`` must return the same batches in the same order for the same
    epoch (seed the shuffle with the epoch) so that a resumed run continues exactly.
    ``evaluate(model)`` returns metrics including ``score_key`` (higher is better, or lower
    with ``higher_is_better=False``); with no evaluation the last model is kept as the best.
    """
    if cfg.grad_accumulation < 1 or cfg.batch_size < 1:
        raise ConfigError("training.batch_size and training.grad_accumulation must be >= 1")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    distributed.init(cfg.device, cfg.threads)  # under torchrun: one rank of several
    main = distributed.is_main()
    epoch_batches = distributed.shard_epochs(epoch_batches)  # this rank's rows of each batch
    evaluate = distributed.main_evaluation(evaluate)  # rank 0 evaluates, all get its metrics
    save_best = distributed.main_only(save_best)
    device, precision = prepare_model(model, cfg)
    total_steps = planned_steps(cfg, epoch_batches)
    clock = Clock(cfg.max_minutes)
    opt = Optimisation(model, cfg, total_steps=total_steps, device=device, precision=precision,
                       clock=clock)
    keeper = BestKeeper(model, evaluate, save_best, score_key=score_key,
                        higher_is_better=higher_is_better,
                        patience=cfg.early_stopping_patience, device=device, precision=precision)
    checkpoints = Checkpointer(run_dir)
    state = resume_from(checkpoints, opt, keeper) if resume else LoopState()
    opt.model = distributed.wrap_model(model, device)  # after resume: DDP broadcasts rank 0's
    metrics_log = MetricsLog(run_dir / "metrics.jsonl") if main else distributed.NoLog()
    metrics_log.start(state.step if resume else None)

    def checkpoint() -> None:
        state.elapsed = clock.total()
        if main:
            checkpoints.save(model, trainer_state(opt, state, keeper), state.step)

    cadence = Cadence.of(cfg)
    log = TrainLog(metrics_log, cadence)
    clock.restart(state.elapsed)  # the clock runs from here; setting up is not training
    bar = ProgressBar(total_steps, state.step, progress and main)
    records = train_steps(opt, epoch_batches, state, total_steps=total_steps,
                          accumulation=cfg.grad_accumulation, cadence=cadence, evaluate=keeper,
                          clock=clock)
    try:
        with distributed.guard(f"training at step {state.step}"):
            stop = consume(records, state=state, log=log, bar=bar, checkpoint=checkpoint,
                           cadence=cadence)
    finally:
        bar.close()
    keeper.finish()
    result = TrainResult(state, keeper.best_metrics, keeper.last_metrics, stop or "completed")
    log.end(state.step, result.stopped_because, clock, ranks=distributed.world_size())
    opt.model = model
    distributed.finish()  # ranks other than 0 leave here; rank 0 goes on alone
    return result
