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


def _launch(args: list[str], ranks: int, launcher: str = "torchrun"
            ) -> subprocess.CompletedProcess:
    """``python -m cner ARGS`` in one process, or under torchrun (or ``accelerate launch``)
    with ``ranks`` gloo ranks."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        command = [sys.executable, "-m", "cner", *args]
    elif launcher == "accelerate":
        # --multi_gpu is accelerate's switch for torch.distributed ranks (gloo on a CPU-only
        # machine); its --cpu runs one process whatever --num_processes says
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                   "--num_processes", str(ranks), "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port()), "-m", "cner", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                   "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                   "-m", "cner", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def _train(output: Path, ranks: int, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = ["train", "-q", "--output", str(output)]
    for setting in SETTINGS:
        args += ["--set", setting]
    return _launch(args + list(extra), ranks)


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


def test_documents_cut_into_chunks_are_split_by_document():
    """Classification batches: 3 documents in 6 chunk rows; a rank gets whole documents."""
    doc_index = torch.tensor([0, 0, 0, 1, 2, 2])
    batch = {"input_ids": torch.arange(12).view(6, 2), "attention_mask": torch.ones(6, 2),
             "doc_index": doc_index, "labels": torch.tensor([7, 8, 9]), "n_chars": 12}
    first, second = row_slice(batch, 0, 2), row_slice(batch, 1, 2)
    assert first["labels"].tolist() == [7] and first["doc_index"].tolist() == [0, 0, 0]
    assert first["input_ids"][:, 0].tolist() == [0, 2, 4]
    assert second["labels"].tolist() == [8, 9] and second["doc_index"].tolist() == [0, 1, 1]
    assert second["input_ids"][:, 0].tolist() == [6, 8, 10]
    assert (first["loss_weight"] + second["loss_weight"]) / 2 == pytest.approx(1.0)


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


def test_accelerate_launch_runs_the_same_ddp(tmp_path):
    """`accelerate launch` starts the ranks as torchrun does (its env vars): same weights."""
    pytest.importorskip("accelerate", reason="accelerate is not installed (pip install -e '.[dev]')")
    one = _train(tmp_path / "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    args = ["train", "-q", "--output", str(tmp_path / "two")]
    for setting in SETTINGS:
        args += ["--set", setting]
    two = _launch(args, 2, launcher="accelerate")
    assert two.returncode == 0, two.stderr[-3000:]
    single, ddp = _weights(tmp_path / "one" / "model"), _weights(tmp_path / "two" / "model")
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)
    ends = [line for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
            if '"end"' in line]
    assert len(ends) == 1 and '"ranks": 2' in ends[0]  # two ranks ran, rank 0 wrote the log


def test_a_resumed_two_rank_run_takes_the_same_steps(tmp_path):
    """A killed run (its last checkpoint gone) resumed with the same world size."""
    import shutil

    first = _train(tmp_path / "run", 2)
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "run" / "checkpoints" / "step-00000006"
    finished = _weights(last)
    shutil.rmtree(last)
    resumed = _launch(["train", "-q", "--resume", str(tmp_path / "run")], 2)
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


POS = ["酒店很干净服务好", "房间干净价格便宜", "我们喜欢这家酒店", "服务好价格便宜", "他们喜欢服务",
       "价格便宜房间好"]
NEG = ["酒店很吵闹服务坏", "房间脏价格贵", "我们讨厌这家酒店", "服务坏价格贵", "他们讨厌服务",
       "价格贵房间坏"]
SMALL = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
         "model.intermediate_size=64", "model.dropout=0", "training.precision=fp32",
         "training.device=cpu", "training.threads=1", "training.max_steps=4",
         "training.batch_size=6", "training.eval_every=2", "training.checkpoint_every=2",
         "training.max_minutes=null"]


def _task_args(task: str, data: Path) -> list[str]:
    """The command line of ``task`` on a tiny data set written under ``data``."""
    if task == "pretrain":
        text = data / "text.txt"
        sentences = (SAMPLE / "news.txt").read_text("utf-8").splitlines()
        text.write_text("\n".join(line for line in sentences if line.strip()) + "\n", "utf-8")
        return ["pretrain", "-c", str(ROOT / "configs" / "pretrain-small.yaml"), "--text",
                str(text), "--set", "pretrain.eval_fraction=0.2", "--set", "data.max_length=32",
                "--set", "pretrain.pair_objective=sop", "--set", "model.embedding_size=16"]
    if task == "sentiment":
        rows = [f"{t}\tpos" for t in POS] + [f"{t}\tneg" for t in NEG]
        (data / "train.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n", "utf-8")
        return ["sentiment", "train", "--train", str(data / "train.tsv"), "--dev",
                str(data / "train.tsv"), "-c", str(ROOT / "configs" / "tiny-cpu.yaml"),
                "--set", "data.max_length=32", "--set", "data.test=null",
                "--set", "training.early_stopping_patience=null"]
    rows = [f"{a}\t{b}\t{int((a in POS) == (b in POS))}" for a, b in zip(POS + NEG, NEG + NEG)]
    (data / "pairs.tsv").write_text("a\tb\tlabel\n" + "\n".join(rows) + "\n", "utf-8")
    return ["glue", "train", "--task", "none", "--train", str(data / "pairs.tsv"), "--dev",
            str(data / "pairs.tsv"), "--text-column", "a", "--text-pair-column", "b",
            "--kind", "pair", "-c", str(ROOT / "configs" / "tiny-cpu.yaml"),
            "--set", "data.max_length=32", "--set", "data.test=null",
            "--set", "training.early_stopping_patience=null"]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["pretrain", "sentiment", "glue"])
def test_every_task_on_two_gloo_ranks_equals_one_process(tmp_path, task):
    """`cner pretrain`, `cner sentiment train` and `cner glue train` run on the one training
    loop, so torchrun with two ranks takes the steps of one process with the global batch."""
    args = _task_args(task, tmp_path) + ["-q"]
    for setting in SMALL:
        args += ["--set", setting]
    runs = {}
    for ranks in (1, 2):
        out = tmp_path / f"ranks-{ranks}"
        done = _launch(args + ["-o", str(out)], ranks)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[ranks] = _weights(out / "model")
        ends = [line for line in (out / "metrics.jsonl").read_text().splitlines()
                if '"end"' in line]
        assert len(ends) == 1 and f'"ranks": {ranks}' in ends[0]  # rank 0 alone wrote it
    assert runs[1].keys() == runs[2].keys()
    for name in runs[1]:
        torch.testing.assert_close(runs[2][name], runs[1][name], rtol=1e-4, atol=1e-5, msg=name)
