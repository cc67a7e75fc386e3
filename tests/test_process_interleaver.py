"""The benchmarks' process interleaver: one job computes at a time, times add up, errors surface."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from process_interleaver import ProcessInterleaver  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SIGSTOP/SIGCONT harness: Linux")


def setup_spin(seconds: float):
    """A job of fixed work: ``seconds`` of CPU time, then the list of its own CPU times."""
    def run(stop_requested):
        wall, start = time.perf_counter(), time.process_time()
        while time.process_time() - start < seconds:
            pass
        return [start, time.process_time(), wall, time.perf_counter()]
    return {"pid_ready": True}, run


def setup_counter():
    def run(stop_requested):
        n = 0
        while not stop_requested():
            n += 1
        return n
    return {}, run


def setup_broken():
    raise ValueError("no model here")


def test_jobs_take_turns_and_are_timed_as_if_alone():
    jobs = {"a": (setup_spin, {"seconds": 0.4}), "b": (setup_spin, {"seconds": 0.2}),
            "probe": (setup_counter, {})}
    with ProcessInterleaver(jobs, quantum=0.05) as interleaver:
        assert interleaver.info["a"] == {"pid_ready": True}
        started = time.perf_counter()
        busy, summaries = interleaver.run_round(weights={"probe": 0.25}, until_others={"probe"})
        wall = time.perf_counter() - started
        assert summaries["probe"] > 0  # the open-ended job ran and reported its count
        # A stopped job does not compute: each spin job's CPU time fits in the spans it was
        # counted for (were it running outside them, its spans would add up to less).
        for name, seconds in (("a", 0.4), ("b", 0.2)):
            cpu = interleaver.result(name)
            assert cpu[1] - cpu[0] >= seconds
            assert seconds * 0.97 <= busy[name] < seconds + 1.0
            # the child's own clock readings bracket all of its running time
            assert interleaver.busy_between(name, cpu[2], cpu[3]) == pytest.approx(
                busy[name], abs=0.02)
            half = interleaver.busy_between(name, cpu[2], (cpu[2] + cpu[3]) / 2)
            assert 0 < half < busy[name]
        assert busy["probe"] > 0.02 and sum(busy.values()) <= wall
        busy2, _ = interleaver.run_round(until_others={"probe"})  # a second round works too
        assert busy2["a"] >= 0.4 * 0.97


def test_a_failing_setup_is_an_error_with_its_traceback():
    with pytest.raises(RuntimeError, match="(?s)job 'bad' failed.*no model here"):
        ProcessInterleaver({"ok": (setup_counter, {}), "bad": (setup_broken, {})})
