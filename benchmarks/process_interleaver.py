"""Interleaved timing of jobs that each run alone in their own process (Linux).

Why processes and not threads (the earlier `common.Interleaver`): GNU OpenMP, which PyTorch's
CPU build uses, keeps one team of worker threads per thread that has run a parallel region. Once a
process holds more OpenMP threads than CPUs, every team stops spin-waiting between parallel
regions and sleeps instead, so each region pays a wake-up. Measured on 2 cores: TorchInductor's
fused LayerNorm + GELU kernels ran ~10% slower in the main thread while another thread's idle
team merely existed, and a compiled bert-base tagger annotated ~5-8% slower from a second
thread than from the main one. A user's `cner annotate` runs in the main thread of its own
process; this harness gives every variant the same.

Each job is a child process (``spawn``) that builds its workload once (untimed, one child
after the other), then runs it
once per round when told to. The parent lets one child compute at a time: it resumes it with
SIGCONT, lets it run for ``quantum`` seconds or until it reports that it finished, and stops it
with SIGSTOP (waiting until the kernel has stopped every thread). A job's time is the sum of
the spans in which it ran, so it is timed as if it had the machine alone, over the same
stretch of wall time as the others. The next job to run is the unfinished one with the least
time divided by its weight; with weights set to the jobs' times in an earlier round, all
jobs finish together.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable


def _child(conn, setup: Callable, kwargs: dict) -> None:
    """Child main loop: ``setup(**kwargs)`` returns ``(info, run)``; ``run(stop_requested)``
    is the timed work. Messages: "run" (reply "done" + small summary), "result" (reply the
    last output), "exit"."""
    try:
        info, run = setup(**kwargs)
    except BaseException:  # noqa: BLE001  (sent to the parent, which raises)
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", info))
    output = None
    while True:
        message = conn.recv()
        if message == "run":
            try:
                output = run(lambda: conn.poll() and conn.recv() == "stop")
            except BaseException:  # noqa: BLE001
                conn.send(("error", traceback.format_exc()))
                return
            summary = output if isinstance(output, (int, float)) else None
            conn.send(("done", summary))
        elif message == "result":
            conn.send(("result", output))
        else:
            return


class ProcessInterleaver:
    """Jobs ``{name: (setup, kwargs)}``, each in its own process; ``setup`` must be a
    module-level function (it is pickled by reference)."""

    def __init__(self, jobs: dict[str, tuple[Callable, dict]], *, quantum: float = 0.2) -> None:
        self.quantum = quantum
        context = multiprocessing.get_context("spawn")
        self.procs, self.conns, self.info = {}, {}, {}
        try:
            self._start(jobs, context)
        except BaseException:
            self.close()
            raise

    def _start(self, jobs, context) -> None:
        for name, (setup, kwargs) in jobs.items():
            parent, child = context.Pipe()
            proc = context.Process(target=_child, args=(child, setup, kwargs), name=name,
                                   daemon=True)
            proc.start()
            self.procs[name], self.conns[name] = proc, parent
            # One set-up at a time, so that set-up times (a compile, say) are not inflated.
            self.info[name] = self._receive(name, "ready")

    def _receive(self, name: str, expected: str):
        try:
            kind, payload = self.conns[name].recv()
        except EOFError:
            raise RuntimeError(f"benchmark job {name!r} died (exit code "
                               f"{self.procs[name].exitcode})") from None
        if kind == "error":
            raise RuntimeError(f"benchmark job {name!r} failed:\n{payload}")
        assert kind == expected, (kind, expected)
        return payload

    def _stop(self, name: str) -> None:
        pid = self.procs[name].pid
        os.kill(pid, signal.SIGSTOP)
        os.waitpid(pid, os.WUNTRACED)  # returns once every thread of the child has stopped

    def _cont(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGCONT)

    def run_round(self, *, weights: dict[str, float] | None = None,
                  until_others: set[str] = frozenset()) -> tuple[dict[str, float], dict]:
        """Run every job once, interleaved. ``until_others``: jobs that run until all the
        others have finished (their ``run`` polls ``stop_requested``), such as a probe of the
        machine's speed. Returns ``(busy seconds, summaries)`` per job."""
        names = list(self.procs)
        weights = {n: (weights or {}).get(n, 1.0) for n in names}
        for name in names:
            self._stop(name)
            self.conns[name].send("run")  # waits in the pipe until the child runs again
        busy = {n: 0.0 for n in names}
        self.spans = {n: [] for n in names}
        summaries: dict = {}
        active = set(names)
        while active - until_others:
            name = min(sorted(active), key=lambda n: busy[n] / weights[n])
            self._cont(name)
            started = time.perf_counter()
            finished = self.conns[name].poll(self.quantum)
            if not finished:
                self._stop(name)
            self.spans[name].append((started, time.perf_counter()))
            busy[name] += self.spans[name][-1][1] - started
            if finished:
                summaries[name] = self._receive(name, "done")
                active.discard(name)  # it now waits in recv(), using no CPU
        for name in sorted(active):  # the open-ended jobs: ask them to stop, let them answer
            self.conns[name].send("stop")
            self._cont(name)
            started = time.perf_counter()
            summaries[name] = self._receive(name, "done")
            self.spans[name].append((started, time.perf_counter()))
            busy[name] += self.spans[name][-1][1] - started
        return busy, summaries

    def busy_between(self, name: str, start: float, end: float) -> float:
        """Seconds that ``name`` ran, in the last round, between two ``time.perf_counter()``
        readings taken in any process (Linux: one monotonic clock for all): a job can time a
        stretch of its work, such as the steps after a warm-up, by reporting when it began and
        ended."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.spans[name])

    def result(self, name: str):
        """The output of ``name``'s last run (pickled across)."""
        self.conns[name].send("result")
        return self._receive(name, "result")

    def close(self) -> None:
        for name, proc in self.procs.items():
            if proc.is_alive():
                self._cont(name)
                try:
                    self.conns[name].send("exit")
                except (BrokenPipeError, OSError):
                    pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()

    def __enter__(self) -> ProcessInterleaver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
