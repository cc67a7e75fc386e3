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
    """A job of fixed work: ``seconds`` of CPU time. Returns its CPU and wall clock readings
    at the start and end, and ``(wall, cpu)`` samples taken every ~2 ms of its CPU time."""
    def run(stop_requested):
        wall, start = time.perf_counter(), time.process_time()
        samples, next_sample = [], start
        while (now := time.process_time()) - start < seconds:
            if now >= next_sample:
                samples.append((time.perf_counter(), now))
                next_sample = now + 0.002
        return [start, time.process_time(), wall, time.perf_counter(), samples]
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


# No assertion below compares seconds of wall time with a threshold: on a shared machine a
# resumed job may wait for a CPU for any length of time. What is checked is the order of the
# spans (one job at a time, taking turns), counts, and CPU-time accounting, all of it exact:
#
# The parent ends a span after the kernel has stopped the job (waitpid) and resumes the next
# job after that, so job X can run only in its *turns*: from the end of the span before its
# own (any job's; the round's start for the first) to the end of its own span. The gap before
# X's span opens (SIGCONT, then the parent reads the clock) belongs to X's turn, so no slack
# for scheduling delays is needed.

def turns(spans: dict[str, list[tuple[float, float]]], name: str, round_start: float):
    ordered = sorted((span, job) for job, job_spans in spans.items() for span in job_spans)
    ends = [round_start] + [end for (_, end), _ in ordered]
    return [(ends[i], end) for i, ((_, end), job) in enumerate(ordered) if job == name]


def assert_one_at_a_time(spans: dict[str, list[tuple[float, float]]]) -> None:
    ordered = sorted(span for job in spans.values() for span in job)
    assert all(a <= b for a, b in ordered)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(ordered, ordered[1:])), "spans overlap"


def assert_computed_only_in_its_turns(interleaver, name: str, readings, round_start: float):
    """A stopped job does not compute: every sample of the job's CPU clock (one per ~2 ms of
    CPU time, so 2 ms of computing while stopped leaves one) was taken in one of its turns, and
    its CPU time fits in the wall time of its turns."""
    own = turns(interleaver.spans, name, round_start)
    samples = readings[4]
    assert len(samples) >= 2
    outside = [t for t, _ in samples if not any(a <= t <= b for a, b in own)]
    assert not outside, f"{name} computed while stopped, at {len(outside)} samples"
    assert readings[1] - readings[0] <= sum(b - a for a, b in own)


def test_jobs_take_turns_and_are_timed_as_if_alone():
    jobs = {"a": (setup_spin, {"seconds": 0.4}), "b": (setup_spin, {"seconds": 0.2}),
            "probe": (setup_counter, {})}
    with ProcessInterleaver(jobs, quantum=0.05) as interleaver:
        assert interleaver.info["a"] == {"pid_ready": True}
        started = time.perf_counter()
        busy, summaries = interleaver.run_round(weights={"probe": 0.25}, until_others={"probe"})
        wall = time.perf_counter() - started
        assert summaries["probe"] > 0  # the open-ended job ran and reported its count
        assert summaries["a"] is None and summaries["b"] is None  # a list is no summary
        spans = interleaver.spans
        assert_one_at_a_time(spans)
        assert sum(busy.values()) <= wall  # disjoint spans inside the round
        for name in busy:
            assert busy[name] == pytest.approx(sum(b - a for a, b in spans[name]))
        # Taking turns: neither spin job can finish in one quantum (0.05 s of wall time holds
        # at most 0.05 s of its CPU time), so b, then the probe, ran before a's last turn.
        assert len(spans["a"]) >= 2 and len(spans["b"]) >= 2
        assert spans["a"][0][1] <= spans["b"][0][0] <= spans["b"][0][1] <= spans["probe"][0][0]
        assert spans["probe"][0][1] <= spans["a"][-1][0]
        assert len(spans["probe"]) >= 2  # one quantum at least, then one to answer "stop"
        for name, seconds in (("a", 0.4), ("b", 0.2)):
            readings = interleaver.result(name)
            assert readings[1] - readings[0] >= seconds
            assert_computed_only_in_its_turns(interleaver, name, readings, started)
            # the job's own clock readings bracket its work, so a stretch of it can be timed
            within = interleaver.busy_between(name, readings[2], readings[3])
            half = interleaver.busy_between(name, readings[2], (readings[2] + readings[3]) / 2)
            assert 0 < half < within <= busy[name]
        second = time.perf_counter()
        interleaver.run_round(until_others={"probe"})  # a second round works too
        assert_one_at_a_time(interleaver.spans)
        readings = interleaver.result("a")
        assert readings[2] > second and readings[1] - readings[0] >= 0.4  # a new run
        assert_computed_only_in_its_turns(interleaver, "a", readings, second)


def test_a_failing_setup_is_an_error_with_its_traceback():
    with pytest.raises(RuntimeError, match="(?s)job 'bad' failed.*no model here"):
        ProcessInterleaver({"ok": (setup_counter, {}), "bad": (setup_broken, {})})
