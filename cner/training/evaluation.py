"""Evaluation during training: score the model, keep the best one, say when to stop early.

The score is one key of the task's metrics. ``higher_is_better`` is its direction: F1 or
accuracy (the default) rise, a masked-LM's dev loss falls.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cner.errors import ConfigError
from cner.runtime.devices import autocast

Metrics = dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's outcome."""

    metrics: Metrics
    improved: bool  # a new best: the model was saved as the best
    patience_spent: bool  # early stopping says stop


class BestKeeper:
    """Runs ``evaluate(model)`` (in eval mode, without gradients, under the run's autocast),
    saves the model through ``save_best(model, metrics)`` whenever the score improves, and
    counts evaluations without improvement against ``patience`` (None: never stop early).

    The best score, its step and the evaluations since it live in the loop state passed to
    each call, so that a checkpoint holds them; the best and last metrics live here and are
    checkpointed through `state_dict`. Without an ``evaluate`` function nothing is evaluated
    and `finish` keeps the last model as the best.
    """

    def __init__(self, model: nn.Module, evaluate: Callable[[nn.Module], Metrics] | None,
                 save_best: Callable[[nn.Module, Metrics], None], *, score_key: str,
                 higher_is_better: bool, patience: int | None, device: torch.device,
                 precision: str) -> None:
        self.model, self.evaluate, self.save_best = model, evaluate, save_best
        self.score_key, self.higher_is_better, self.patience = score_key, higher_is_better, patience
        self.device, self.precision = device, precision
        self.best_metrics: Metrics = {}
        self.last_metrics: Metrics = {}

    def better(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        return score > best if self.higher_is_better else score < best

    def __call__(self, state) -> Evaluation | None:
        """Evaluate at ``state.step`` and update ``state``'s best fields; None without an
        evaluation function."""
        if self.evaluate is None:
            return None
        self.model.eval()
        with torch.inference_mode(), autocast(self.device, self.precision):
            metrics = self.evaluate(self.model)
        self.model.train()
        if self.score_key not in metrics:
            raise ConfigError(f"the evaluation gives no {self.score_key!r} to keep the best model "
                              f"by; it gives {', '.join(sorted(metrics))}")
        self.last_metrics = metrics
        improved = self.better(metrics[self.score_key], state.best_score)
        if improved:
            state.best_score, state.best_step, state.evals_since_best = \
                metrics[self.score_key], state.step, 0
            self.best_metrics = metrics
            self.save_best(self.model, metrics)
        else:
            state.evals_since_best += 1
        spent = self.patience is not None and state.evals_since_best >= self.patience
        return Evaluation(metrics, improved, spent)

    def finish(self) -> None:
        """At the end of training: without evaluations, the last model is the best."""
        if self.evaluate is None:
            self.save_best(self.model, {})

    def state_dict(self) -> dict:
        return {"best_metrics": self.best_metrics, "last_metrics": self.last_metrics}

    def load_state_dict(self, saved: dict) -> None:
        self.best_metrics = saved.get("best_metrics", {})
        self.last_metrics = saved.get("last_metrics", {})
