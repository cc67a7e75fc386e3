"""DDP training (cner.training.distributed): two gloo ranks on the CPU take the same steps as
one process with the same global batch and seed."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cner.training.distributed import RankBatches, row_slice

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
SETTINGS = [f"data.train={SAMPLE / 'train.conll'}", f"data.dev={SAMPLE / 'dev.conll'}",
            "data.test=null",
            "data.dev_fraction=0", "model.hidden_size=32", "model.num_layers=1",
            "model.num_heads=2", "model.intermediate_size=64", "model.dropout=0",
            "training.max_steps=6", "training.batch_size=8", "training.precision=fp32",
            "training.device=cpu", "training.threads=1", "training.eval_every=3",
            "training.checkpoint_every=3"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(output: Path, ranks: int, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = ["train", "-q", "--output", str(output)]
    for setting in SETTINGS:
        args += ["--set", setting]
    args += list(extra)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        command = [sys.executable, "-m", "cner", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                   "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                   "-m", "cner", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_row_slices_weight_to_the_batch_mean():
    batch = {"input_ids": torch.arange(10).view(5, 2), "char_mask": torch.ones(5, 1, dtype=torch.bool),
             "n_chars": 5}
    parts = [row_slice(batch, r, 2) for r in range(2)]
    assert [p["input_ids"].size(0) for p in parts] == [2, 3]
    assert sum(p["loss_weight"] for p in parts) / 2 == pytest.approx(1.0)
    assert [p["n_chars"] for p in parts] == [5, 5]  # the batch's: rank 0 logs the run's speed
    tiny = {"input_ids": torch.zeros(1, 3), "n_chars": 3}
    empty = row_slice(tiny, 0, 2)  # one row, two ranks: rank 0 computes with weight 0
    assert empty["input_ids"].size(0) == 1 and empty["loss_weight"] == 0
    assert len(RankBatches([batch, batch], 0, 2)[0:2]) == 2


def test_two_gloo_ranks_equal_one_process(tmp_path):
    one = _train(tmp_path / "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train(tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    single, ddp = _weights(tmp_path / "one" / "model"), _weights(tmp_path / "two" / "model")
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)
    # rank 0 alone wrote the run: one metrics log with one end event, checkpoints at 3 and 6
    events = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum('"end"' in line for line in events) == 1
    assert sum('"eval"' in line for line in events) == 2  # rank 0 evaluated, all ranks agreed
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").glob("step-*")) == \
        ["step-00000003", "step-00000006"]


def test_a_resumed_two_rank_run_takes_the_same_steps(tmp_path):
    """A killed run (its last checkpoint gone) resumed with the same world size."""
    import shutil

    first = _train(tmp_path / "run", 2)
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "run" / "checkpoints" / "step-00000006"
    finished = _weights(last)
    shutil.rmtree(last)
    port = str(_free_port())
    resumed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", port, "-m", "cner", "train", "-q",
         "--resume", str(tmp_path / "run")],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, capture_output=True,
        text=True, timeout=300, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = _weights(last)
    for name in finished:
        torch.testing.assert_close(again[name], finished[name], rtol=1e-5, atol=1e-6, msg=name)


def _rank(output: Path, rank: int, port: int, extra: tuple[str, ...]) -> subprocess.Popen:
    """One rank started by hand, as a launcher on another machine would: nothing supervises
    the pair, so only cner's collective timeout can stop the survivor."""
    args = ["train", "-q", "--output", str(output)]
    for setting in SETTINGS:
        args += ["--set", setting]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RANK": str(rank),
           "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "CNER_DIST_TIMEOUT": "60"}
    return subprocess.Popen([sys.executable, "-m", "cner", *args, *extra], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_rank_stops_the_other_with_one_line_and_the_run_resumes(tmp_path):
    import signal
    import time

    run = tmp_path / "run"
    extra = ("--set", "training.max_steps=60", "--set", "training.checkpoint_every=3",
             "--set", "training.eval_every=30")
    port = _free_port()
    ranks = [_rank(run, r, port, extra) for r in (0, 1)]
    try:
        deadline = time.monotonic() + 300  # two cold starts on a busy machine
        while not list((run / "checkpoints").glob("step-*")):
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            assert ranks[1].poll() is None, ranks[1].communicate()[1][-2000:]
            time.sleep(0.02)
        ranks[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = ranks[0].communicate(timeout=90)  # well inside CNER_DIST_TIMEOUT + start-up
        print(f"rank 0 stopped {time.monotonic() - killed:.1f} s after rank 1 was killed")
    finally:
        for proc in ranks:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert ranks[0].returncode not in (0, None)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err[-2000:]
    assert "another rank stopped" in lines[-1] and "--resume" in lines[-1], err[-2000:]
    assert not (run / "model").exists() or (run / "checkpoints").exists()
    # the whole run is gone now (rank 0 stopped, rank 1 killed): it resumes to the end
    resumed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "cner",
         "train", "-q", "--resume", str(run)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, capture_output=True,
        text=True, timeout=300, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ends = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"end"' in line]
    assert ends and '"step": 60' in ends[-1]
