"""Dynamic batching: concurrent requests queued and run together on one model thread.

Requests (`submit`, or ``await`` `run` from the event loop) wait in one queue, first come
first served. The model thread takes the oldest request, then adds the queued requests for
the same model, in order, while their characters fit in ``max_batch_chars``, and goes on
adding those that arrive as long as they keep coming: it runs the batch when none joined for
1 ms (`GAP_S`), or ``max_wait_ms`` after it started collecting, or at once when it holds as
many requests as the model's last batch, if no request had queued while that batch ran
(closed-loop clients answered by that batch have all come back: waiting out the gap only
idled the model, 1.4 ms of each ~60 ms cycle with 32 clients here; requests queued during a
run mean more clients than that, and the next batch collects them by the gap). A lone
request so waits 1 ms;
under load, the requests answered by the last batch, whose clients send their next ones at
once, join the requests that queued meanwhile instead of forming a batch of their own (with a
fixed wait from the first request's arrival, 32 closed-loop clients settled into two batches
of 16 for good: 7,680 characters/s on the small model here, against 9,302 so). The texts
of the whole batch go through the model in one call of its runner: for a tagger
`Tagger.pipe`, which sorts every window of the batch by length and cuts them into
cost-planned batches (`cner.inference.predictor`), exactly as in process; each request then
gets its own slice of the results, in its own order.

Torch runs on this one thread only: the models are loaded, warmed up and run there (the
README's OpenMP note: torch work from several threads of a process slows every thread), and
several models share it, taking turns batch by batch.

A batch in which the model raises is run again one request at a time, so that only the
request that fails gets the error (`BatchFailed`, the server's 500) and the others their
results; the thread keeps serving. `close` stops taking requests (`ShuttingDown`), finishes
every queued one and ends the thread. ``batching=False`` runs each request alone (the
benchmark's "batching off").
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("cner.serving")
# A batch stops collecting when no request joined it for this long (or at max_wait_ms).
GAP_S = 0.001


class Runner(Protocol):
    """What the batcher needs of a model: ``load`` (load and warm up; called on the model
    thread) and ``run`` (results of a list of inputs, in order)."""

    name: str

    def load(self) -> None: ...

    def run(self, items: list) -> list: ...


class BatcherError(Exception):
    """Why a request got no result; ``status`` is the HTTP status that says so."""

    status = 500


class BatchFailed(BatcherError):
    status = 500


class NotReady(BatcherError):
    status = 503


class ShuttingDown(BatcherError):
    status = 503


class Overloaded(BatcherError):
    status = 503


@dataclass
class Job:
    model: str
    items: list
    chars: int
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """One model thread serving ``runners`` (name -> `Runner`)."""

    def __init__(self, runners: dict[str, Runner], *, max_batch_chars: int = 16384,
                 max_wait_ms: float = 5.0, batching: bool = True, max_queue: int = 1024,
                 metrics=None, on_fatal: Callable[[str], None] | None = None) -> None:
        if max_batch_chars < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError("max_batch_chars and max_queue must be positive, "
                             "max_wait_ms at least 0")
        self.runners = runners
        self.max_batch_chars = max_batch_chars
        self.max_wait = max_wait_ms / 1000.0
        self.gap = min(self.max_wait, GAP_S)
        self.batching = batching
        self.max_queue = max_queue
        self.metrics = metrics
        self.on_fatal = on_fatal
        self.ready = threading.Event()
        self.error: str | None = None  # why loading failed
        self.draining = False  # shutdown requested: /readyz says so
        self._jobs: collections.deque[Job] = collections.deque()
        self._last_size: dict[str, int] = {}  # requests in each model's last batch
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._main, name="cner-model", daemon=True)
        if metrics is not None:
            metrics.queue_depth = self.queue_depth

    # -- the callers' side ---------------------------------------------------------------------

    def start(self) -> Batcher:
        if not self._thread.is_alive() and not self._closing:
            self._thread.start()
        return self

    def queue_depth(self) -> tuple[int, int]:
        """``(requests, texts)`` waiting now."""
        jobs = list(self._jobs)
        return len(jobs), sum(len(job.items) for job in jobs)

    def submit(self, model: str, items: Sequence, chars: int) -> Future:
        """Queue ``items`` for ``model``; the future holds their results in order, or a
        `BatcherError`."""
        if model not in self.runners:
            raise KeyError(model)
        job = Job(model, list(items), max(1, chars))
        with self._cond:
            if self._closing:  # not `draining`: requests in flight at a SIGTERM still run
                raise ShuttingDown("the server is shutting down")
            if self.error is not None:
                raise NotReady(f"the models failed to load: {self.error}")
            if len(self._jobs) >= self.max_queue:
                raise Overloaded(f"{len(self._jobs)} requests are waiting for the model, the "
                                 f"most the queue holds (--max-queue {self.max_queue}); retry "
                                 "later")
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    async def run(self, model: str, items: Sequence, chars: int) -> list:
        """`submit` for a coroutine: the results of ``items``, in order."""
        import asyncio

        return await asyncio.wrap_future(self.submit(model, items, chars))

    def close(self, timeout: float | None = None) -> None:
        """Take no more requests, finish the queued ones, end the model thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the model thread ----------------------------------------------------------------------

    def _main(self) -> None:
        try:
            for runner in self.runners.values():
                runner.load()
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported, not raised
            self._fail_loading(exc)
            return
        self.ready.set()
        log.info("ready: %s", ", ".join(self.runners))
        if self.metrics is not None:
            self.metrics.ready.set(1)
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _fail_loading(self, exc: Exception) -> None:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.error("loading the models failed: %s", message, exc_info=not _is_cner_error(exc))
        with self._cond:
            self.error = message
            jobs, self._jobs = list(self._jobs), collections.deque()
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(NotReady(f"the models failed to load: {message}"))
        if self.on_fatal is not None:
            self.on_fatal(message)

    def _next_batch(self) -> list[Job] | None:
        """The next batch (``None``: closed and nothing left). Jobs whose caller gave up
        (cancelled futures) are dropped here, unrun."""
        with self._cond:
            if self._jobs:  # requests came while the last batch ran: expect no batch size
                self._last_size.clear()
            while True:
                while not self._jobs:
                    if self._closing:
                        return None
                    self._cond.wait()
                first = self._jobs.popleft()
                if first.future.set_running_or_notify_cancel():
                    break
            return self._collect(first)

    def _collect(self, first: Job) -> list[Job]:
        """``first`` and the requests for its model that join it (under the lock): while
        they fit the budget, as long as requests keep arriving (none for ``gap``: go), for
        at most ``max_wait`` in all, and until there are as many as in the model's last
        batch."""
        batch, chars = [first], first.chars
        now = time.monotonic()
        deadline, last = now + self.max_wait, now
        expected = self._last_size.get(first.model, 0)
        while self.batching and chars < self.max_batch_chars:
            before = len(batch)
            chars, full = self._take(first.model, batch, chars)
            now = time.monotonic()
            last = now if len(batch) > before else last
            until = min(deadline, last + self.gap)
            if full or now >= until or self._closing or len(batch) >= expected > 1:
                break
            self._cond.wait(until - now)
        self._last_size[first.model] = len(batch)
        return batch

    def _take(self, model: str, batch: list[Job], chars: int) -> tuple[int, bool]:
        """Move the queued jobs for ``model`` that fit the character budget into ``batch``,
        in order, stopping at the first that does not fit; returns the batch's characters
        and whether it is full. Jobs for other models keep their places."""
        kept: collections.deque[Job] = collections.deque()
        full = False
        for job in self._jobs:
            if full or job.model != model:
                kept.append(job)
            elif chars + job.chars > self.max_batch_chars:
                full = True
                kept.append(job)
            elif job.future.set_running_or_notify_cancel():
                batch.append(job)
                chars += job.chars
        self._jobs = kept
        return chars, full

    def _run(self, batch: list[Job]) -> None:
        model = batch[0].model
        items = [item for job in batch for item in job.items]
        started = time.perf_counter()
        try:
            results = self.runners[model].run(items)
            if len(results) != len(items):
                raise RuntimeError(f"the model gave {len(results)} results for {len(items)} "
                                   "inputs")
        except Exception as exc:  # noqa: BLE001 - the batch fails, the server goes on
            self._failed(batch, exc)
            return
        if self.metrics is not None:
            self.metrics.observe_batch(model, len(batch), len(items),
                                       sum(job.chars for job in batch),
                                       time.perf_counter() - started)
        first = 0
        for job in batch:
            job.future.set_result(results[first:first + len(job.items)])
            first += len(job.items)

    def _failed(self, batch: list[Job], exc: Exception) -> None:
        model = batch[0].model
        if self.metrics is not None:
            self.metrics.observe_failure(model)
        if len(batch) > 1:  # find the request that fails: each alone
            log.warning("model %s failed on a batch of %d requests (%s: %s); running them "
                        "one at a time", model, len(batch), type(exc).__name__, exc)
            for job in batch:
                self._run([job])
            return
        log.error("model %s failed on a request", model, exc_info=exc)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        batch[0].future.set_exception(BatchFailed(
            f"model {model!r} failed on this request ({type(exc).__name__}"
            f"{': ' + first if first else ''})"))


def _is_cner_error(exc: Exception) -> bool:
    from cner.errors import CnerError

    return isinstance(exc, CnerError)


def item_chars(item: Any) -> int:
    """Characters of an input: a text, or a ``(text, pair)`` tuple."""
    if isinstance(item, tuple):
        return sum(len(part) for part in item)
    return len(item)
