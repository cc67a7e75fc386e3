"""Annotation on Ray Data (cner.distributed): a local Ray with two workers writes what the
single-process `cner annotate` writes, byte for byte."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_catalogue import run_cner

ROOT = Path(__file__).resolve().parents[1]


def _lines(n: int) -> str:
    sample = [line.split()[0] if line.strip() else "" for line in
              (ROOT / "corpora" / "sample" / "train.conll").read_text("utf-8").splitlines()]
    sentences, current = [], []
    for char in sample:
        if char:
            current.append(char)
        elif current:
            sentences.append("".join(current))
            current = []
    out = []
    for i in range(n):
        out.append("" if i % 17 == 5 else sentences[i % len(sentences)])
    return "\n".join(out) + "\n"


def test_engine_ray_without_ray_is_one_line(monkeypatch, tmp_path, tiny_model):
    from click.testing import CliRunner

    from cner.cli import main as cli

    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "in.txt").write_text("北京\n", "utf-8")
    result = CliRunner().invoke(cli, ["annotate", str(tmp_path / "in.txt"), "--model",
                                      str(tiny_model), "-o", str(tmp_path / "o.csv"),
                                      "--engine", "ray"])
    assert result.exit_code == 2
    assert 'pip install "cner[ray]"' in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_two_ray_workers_write_the_single_process_bytes(tmp_path, tiny_model):
    pytest.importorskip("ray", reason='needs Ray Data: pip install "cner[ray]"')
    text = tmp_path / "docs.txt"
    text.write_text(_lines(300), "utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_DISABLE_USAGE_STATS": "1",
           "OMP_NUM_THREADS": "1"}
    for suffix in ("csv", "jsonl"):
        single = subprocess.run([sys.executable, "-m", "cner", "annotate", str(text), "--model",
                                 str(tiny_model), "-o", str(tmp_path / f"one.{suffix}"),
                                 "--batch-size", "16"],
                                env=env, capture_output=True, text=True, timeout=300)
        assert single.returncode == 0, single.stderr[-2000:]
    import ray

    from cner.distributed import annotate_files

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:  # chunks of 8 x 16 lines: three, over two actors
        for suffix in ("csv", "jsonl"):
            report = annotate_files([text], tiny_model, output=tmp_path / f"ray.{suffix}",
                                    workers=2, threads=1, batch_size=16)
            assert report["documents"] == 282  # 18 empty lines: no documents, but numbered
    finally:
        ray.shutdown()
    for suffix in ("csv", "jsonl"):
        assert (tmp_path / f"ray.{suffix}").read_bytes() == (tmp_path / f"one.{suffix}").read_bytes()


@pytest.mark.parametrize("extra, named", [
    (["--resume"], "--resume"), (["--compile"], "--compile/--no-compile"),
    (["--precision", "fp32"], "--precision"), (["--device", "auto"], "--device")])
def test_ray_engine_refuses_the_options_it_would_ignore(tmp_path, tiny_model, extra, named):
    (tmp_path / "a.txt").write_text("张伟在北京工作。\n", "utf-8")
    code, output = run_cner(["annotate", "a.txt", "-m", str(tiny_model), "-o", "o.csv",
                             "--engine", "ray", *extra], tmp_path)
    assert code == 2 and f"--engine ray does not take {named}" in output, output
    assert not (tmp_path / "o.csv").exists()


def test_threads_is_refused_by_the_local_engine(tmp_path, tiny_model):
    (tmp_path / "a.txt").write_text("张伟在北京工作。\n", "utf-8")
    code, output = run_cner(["annotate", "a.txt", "-m", str(tiny_model), "-o", "o.csv",
                             "--threads", "2"], tmp_path)
    assert code == 2 and "--threads is for --engine ray" in output, output
    assert not (tmp_path / "o.csv").exists()


def _actor_pids() -> list[int]:
    """Processes of the TaggerActor pool (Ray titles a worker ``ray::...TaggerActor...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if title.startswith(b"ray::") and b"TaggerActor" in title:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray's actor "
                    "processes through /proc (Linux)")
def test_an_actor_killed_mid_job_loses_and_duplicates_nothing(tmp_path, tiny_model):
    pytest.importorskip("ray", reason='needs Ray Data: pip install "cner[ray]"')
    import signal
    import threading
    import time

    import ray

    from cner.distributed import annotate_files

    text = tmp_path / "docs.txt"
    text.write_text(_lines(4000), "utf-8")
    single = subprocess.run([sys.executable, "-m", "cner", "annotate", str(text), "--model",
                             str(tiny_model), "-o", str(tmp_path / "one.jsonl"), "--batch-size", "1"],
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    outcome: dict = {}

    def job() -> None:  # 500 chunks of 8 lines over two actors
        try:
            outcome["report"] = annotate_files([text], tiny_model, output=tmp_path / "ray.jsonl",
                                               workers=2, threads=1, batch_size=1)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    worker = threading.Thread(target=job)
    try:
        worker.start()
        deadline = time.monotonic() + 240
        while len(pids := _actor_pids()) < 2:
            assert worker.is_alive(), outcome
            assert time.monotonic() < deadline, "the actors did not start within 240 s"
            time.sleep(0.02)
        time.sleep(0.5)  # both actors at work
        assert worker.is_alive(), "the job ended before an actor could be killed"
        os.kill(pids[0], signal.SIGKILL)
        worker.join(timeout=300)
        assert not worker.is_alive(), "the job did not finish within 300 s of the kill"
    finally:
        ray.shutdown()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"]["documents"] == 3765  # 235 empty lines: numbered, not written
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
