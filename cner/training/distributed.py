"""Training on many processes: DistributedDataParallel under ``torchrun`` (or ``accelerate
launch``, or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``).

The run is the single-process run, only faster: ``training.batch_size`` stays the *global*
batch. Every rank builds the same seeded, length-bucketed batch order; each global batch is cut
into ``world_size`` contiguous row slices and rank ``r`` takes slice ``r`` (slices of a bucketed
batch are themselves of similar length). Each rank's loss is weighted by its share of the rows,
so the gradients DDP averages equal the gradient of the whole batch's mean loss: the steps,
schedule, evaluations and checkpoints are those of one process with the same config.

Only rank 0 writes: the run directory is opened by rank 0 first, and only rank 0 writes
checkpoints, ``metrics.jsonl``, the progress bar and the model directory. Rank 0 evaluates and
broadcasts the metrics, so every rank takes the same early-stopping decision. When training
ends, the other ranks leave (``SystemExit(0)``); rank 0 alone goes on to the test set and the
summary. ``--resume`` continues with the same world size (tested); as the checkpoint holds
the global position, which does not depend on the number of ranks, another world size
continues the same steps too (up to floating-point summation order).

Backend gloo on CPU, nccl on GPUs (``cuda:LOCAL_RANK``); each rank uses ``cores // local ranks``
threads unless ``training.threads`` says otherwise. Collectives time out after
``CNER_DIST_TIMEOUT`` seconds (default 1800), so a dead rank makes the others stop with a
one-line error instead of hanging.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from cner.errors import CnerError

TIMEOUT_ENV = "CNER_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


class DistributedError(CnerError):
    """A rank stopped, or a collective timed out."""


def launched() -> bool:
    """Whether this process is one rank of several (a launcher set ``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if active() else 0


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def timeout_s() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def init(device: str = "auto", threads: int | None = None) -> bool:
    """Join the process group the launcher describes (once; later calls do nothing).

    ``device`` is the config's ``training.device``: cpu means gloo, a GPU nccl (each rank on
    ``cuda:LOCAL_RANK``). Returns whether this process is one of several ranks."""
    import torch.distributed as dist

    if not launched():
        return False
    if dist.is_initialized():
        return True
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    use_cuda = device != "cpu" and device != "mps" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    if not threads:
        threads = max(1, (os.cpu_count() or 1) // max(1, local_world))
    torch.set_num_threads(threads)
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s()))
    return True


def barrier() -> None:
    import torch.distributed as dist

    if active():
        with guard("waiting for the other ranks"):
            dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    if not active():
        return obj
    box = [obj]
    with guard("receiving rank 0's result"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def guard(what: str):
    """Turn a failed or timed-out collective into one `DistributedError` line."""
    try:
        yield
    except CnerError:
        raise
    except (RuntimeError, OSError) as exc:  # DistBackendError is a RuntimeError
        if not launched() or not _collective_failure(exc):
            raise
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DistributedError(
            f"rank {rank()} of {world_size()}: {what}: another rank stopped or did not answer "
            f"within {timeout_s():.0f} s ({TIMEOUT_ENV}): {first}; resume the run with the "
            "same world size (--resume RUN_DIR)") from None


def _collective_failure(exc: BaseException) -> bool:
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout",
                                         "peer", "socket", "store"))


def open_run_first(open_run: Callable[[], tuple[Any, Path]],
                   reopen: Callable[[Path], tuple[Any, Path]]) -> tuple[Any, Path]:
    """Rank 0 opens the run directory (creating or replacing it), the others then read the
    directory rank 0 chose: ``reopen(run_dir)`` must not write."""
    if not active():
        return open_run()
    if is_main():
        try:
            opened = open_run()
        except BaseException:
            broadcast(None)
            raise
        broadcast(str(opened[1]))
        return opened
    chosen = broadcast(None)
    if chosen is None:
        raise SystemExit(1)  # rank 0 failed and says why
    return reopen(Path(chosen))


def row_slice(batch: dict, part: int, parts: int) -> dict:
    """Rank ``part``'s rows of a collated ``batch`` (``n_chars`` still the whole batch's) with
    ``loss_weight`` = its share of the rows times ``parts`` (so the ranks' average of weighted
    mean losses is the batch's mean loss).
    A rank left without rows gets one row with weight 0 (it must still take part in the
    gradient all-reduce).

    A batch of documents cut into chunks (classification: ``doc_index`` maps chunk rows to
    documents, ``labels`` has one row per document) is split by documents: a rank gets its
    documents' labels and all their chunks, ``doc_index`` renumbered from 0."""
    if "doc_index" in batch:
        return _document_slice(batch, part, parts)
    tensors = [v for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() >= 1]
    n = tensors[0].size(0)
    lo, hi, weight = _bounds(n, part, parts)
    out = {k: (v[lo:hi] if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.size(0) == n
               else v) for k, v in batch.items()}
    # ``n_chars`` stays the whole batch's: rank 0 alone logs throughput and the characters
    # trained, and they are the run's (a rank's own share would read 1/N of the speed).
    out["loss_weight"] = batch.get("loss_weight", 1.0) * weight
    return out


def _bounds(n: int, part: int, parts: int) -> tuple[int, int, float]:
    """``(lo, hi, loss weight)`` of part ``part`` of ``n`` rows; a part left empty gets one
    row with weight 0."""
    lo, hi = n * part // parts, n * (part + 1) // parts
    weight = (hi - lo) * parts / n
    if hi == lo:
        lo, hi = part % n, part % n + 1
    return lo, hi, weight


def _document_slice(batch: dict, part: int, parts: int) -> dict:
    """`row_slice` of a batch with ``doc_index`` (chunk rows -> documents)."""
    doc_index = batch["doc_index"]  # shape: (C,)
    lo, hi, weight = _bounds(batch["labels"].size(0), part, parts)
    chunks = (doc_index >= lo) & (doc_index < hi)  # shape: (C,) bool
    out = {}
    for key, value in batch.items():
        if key == "labels":
            out[key] = value[lo:hi]
        elif key == "doc_index":
            out[key] = value[chunks] - lo
        elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.size(0) == len(doc_index):
            out[key] = value[chunks]
        else:
            out[key] = value
    out["loss_weight"] = batch.get("loss_weight", 1.0) * weight
    return out


class RankBatches(Sequence):
    """This rank's slices of an epoch's global batches (same length, same order)."""

    def __init__(self, batches: Sequence[dict], part: int, parts: int) -> None:
        self.batches, self.part, self.parts = batches, part, parts

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [row_slice(b, self.part, self.parts) for b in self.batches[index]]
        return row_slice(self.batches[index], self.part, self.parts)


def shard_epochs(epoch_batches: Callable[[int], Sequence[dict]]
                 ) -> Callable[[int], Sequence[dict]]:
    if not active():
        return epoch_batches
    part, parts = rank(), world_size()
    return lambda epoch: RankBatches(epoch_batches(epoch), part, parts)


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the optimiser steps through: DDP when distributed, else ``model``."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    with guard("wrapping the model"):
        return DistributedDataParallel(
            model, device_ids=[device.index if device.index is not None
                               else torch.cuda.current_device()] if device.type == "cuda"
            else None, find_unused_parameters=True)


def main_evaluation(evaluate: Callable | None) -> Callable | None:
    """Rank 0 evaluates; every rank gets its metrics (so all agree on early stopping)."""
    if evaluate is None or not active():
        return evaluate

    def run(model):
        metrics = evaluate(model) if is_main() else None
        return broadcast(metrics)

    return run


def main_only(save: Callable) -> Callable:
    if not active():
        return save

    def run(*args, **kwargs):
        if is_main():
            return save(*args, **kwargs)
        return None

    return run


def finish() -> None:
    """After training: wait for rank 0's last writes; ranks other than 0 leave."""
    import torch.distributed as dist

    if not active():
        return
    barrier()
    main = is_main()
    dist.destroy_process_group()
    if not main:
        raise SystemExit(0)


class NoLog:
    """``metrics.jsonl`` on ranks other than 0: nothing is written."""

    def start(self, resumed_at: int | None) -> None:
        pass

    def write(self, event: dict) -> None:
        pass
