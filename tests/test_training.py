"""The tagger and the training loop: overfitting, save/load, resume after kill -9, errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.cli import main  # noqa: E402
from cner.config import load_config  # noqa: E402
from cner.data.formats import read_corpus  # noqa: E402
from cner.errors import ConfigError, ModelError  # noqa: E402
from cner.inference.predictor import Predictor  # noqa: E402
from cner.inference.tagger import Tagger  # noqa: E402
from cner.models.modeldir import load_tagger_dir  # noqa: E402
from cner.runtime.engine import prepare_engine  # noqa: E402
from cner.schemes import find_invalid  # noqa: E402
from cner.tasks.ner import train_ner  # noqa: E402
from killed_runs import resume, straight_and_killed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"


def small_config(tmp: Path, train: Path, dev: Path, *extra: str):
    return load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"data.train={train}", f"data.dev={dev}", "data.test=null",
        "model.hidden_size=64", "model.num_heads=2", "model.intermediate_size=128",
        "training.precision=fp32", "training.threads=1", *extra])


@pytest.fixture(scope="module")
def ten_sentences(tmp_path_factory) -> Path:
    lines = (SAMPLE / "train.conll").read_text("utf-8").split("\n\n")
    chosen = [block for block in lines if "B-" in block][:10]
    path = tmp_path_factory.mktemp("ten") / "ten.conll"
    path.write_text("\n\n".join(chosen) + "\n", "utf-8")
    return path


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, ten_sentences):
    out = tmp_path_factory.mktemp("overfit") / "run"
    cfg = small_config(out, ten_sentences, ten_sentences, "training.epochs=60",
                       "training.batch_size=4", "training.lr=0.003",
                       "training.early_stopping_patience=null", "training.warmup_ratio=0.05")
    run_dir, result = train_ner(cfg, output=out, progress=False)
    return run_dir, result


def test_tiny_model_overfits_ten_sentences(overfit_run):
    run_dir, result = overfit_run
    assert result.best_metrics["f1"] == 1.0
    assert (run_dir / "model" / "model.safetensors").is_file()
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "eval", "end"} <= {e["event"] for e in events}


def test_save_load_gives_identical_predictions(overfit_run, ten_sentences):
    run_dir, _ = overfit_run
    model, vocab, meta = load_tagger_dir(run_dir / "model")
    again, _, _ = load_tagger_dir(run_dir / "model")
    texts = [ex.text for ex in read_corpus(ten_sentences).examples] + ["北京，ABC 123 😀"]
    first = Predictor(prepare_engine(model, precision='fp32'), vocab, max_length=meta.max_length, overlap=meta.overlap)
    second = Predictor(prepare_engine(again, precision='fp32'), vocab, max_length=meta.max_length, overlap=meta.overlap)
    assert first.tag_texts(texts) == second.tag_texts(texts)
    # The saved model reproduces the perfect fit, so the loaded weights are the trained ones.
    tagger = Tagger.load(run_dir / "model")
    gold = read_corpus(ten_sentences).examples
    for ex, ents in zip(gold, tagger.pipe(ex.text for ex in gold)):
        assert [(e.start, e.end, e.label) for e in ents] == [(s.start, s.end, s.label) for s in ex.spans]
        assert all(0.0 <= e.score <= 1.0 for e in ents)


def test_decoding_never_emits_invalid_transitions(overfit_run):
    run_dir, _ = overfit_run
    model, vocab, meta = load_tagger_dir(run_dir / "model")
    predictor = Predictor(prepare_engine(model, precision='fp32'), vocab, max_length=meta.max_length, overlap=meta.overlap)
    noise = ["".join(chr(0x4E00 + (i * 37 + k * 101) % 20000) for k in range(40)) for i in range(20)]
    for tags, _ in predictor.tag_texts(noise):
        assert find_invalid(tags, meta.scheme) == []


def test_softmax_head_trains_and_decodes_valid_sequences(tmp_path, ten_sentences):
    cfg = small_config(tmp_path, ten_sentences, ten_sentences, "model.head=softmax",
                       "training.epochs=30", "training.batch_size=4", "training.lr=0.003")
    run_dir, result = train_ner(cfg, output=tmp_path / "run", progress=False)
    assert result.best_metrics["f1"] > 0.8
    model, vocab, meta = load_tagger_dir(run_dir / "model")
    assert meta.head == "softmax"
    for tags, _ in Predictor(prepare_engine(model, precision='fp32'), vocab, max_length=32, overlap=8).tag_texts(["张伟在北京工作" * 9]):
        assert find_invalid(tags, "bio") == []


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, ten_sentences):
    """A run killed with SIGKILL mid-epoch and resumed ends with the same dev metrics and weights."""
    settings = ["--train", str(ten_sentences), "--dev", str(ten_sentences), "--set", "data.test=null",
                "--set", "model.hidden_size=64", "--set", "model.num_heads=2",
                "--set", "model.intermediate_size=128", "--set", "training.precision=fp32",
                "--set", "training.threads=1", "--set", "training.epochs=40",
                "--set", "training.batch_size=3", "--set", "training.checkpoint_every=7",
                "--set", "training.eval_every=20", "--set", "training.early_stopping_patience=null",
                "-c", str(ROOT / "configs" / "tiny-cpu.yaml"), "-q"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight_and_killed(["train", *settings], straight, killed, 21)
    resume("train", killed)

    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert a["steps"] == b["steps"] and a["best_step"] == b["best_step"]
    assert b["best"]["f1"] == pytest.approx(a["best"]["f1"], abs=1e-6)
    from safetensors.torch import load_file
    wa = load_file(str(straight / "model" / "model.safetensors"))
    wb = load_file(str(killed / "model" / "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "eval"]
    assert steps == sorted(set(steps)), "metrics.jsonl repeats evaluations after resume"


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="did you mean 'training.epochs'"):
        load_config(None, ["training.epoch=3"])
    with pytest.raises(ConfigError, match="expects float"):
        load_config(None, ["training.lr=fast"])
    with pytest.raises(ConfigError, match="expects int"):
        load_config(None, ["training.batch_size=1.5"])
    cfg = load_config(None, ["training.max_steps=7", "data.dev=null", "training.lr=3e-3"])
    assert cfg.training.max_steps == 7 and cfg.data.dev is None
    assert cfg.training.lr == 0.003  # YAML 1.1 reads 3e-3 as a string; it means the number


def test_config_file_unknown_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hiden_size: 64\n", "utf-8")
    result = CliRunner().invoke(main, ["train", "-c", str(path)])
    assert result.exit_code == 2
    assert "model.hidden_size" in result.output and "Traceback" not in result.output


def test_offline_hub_name_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "--set", "model.encoder=bert-base-chinese",
                                       "-o", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    assert "bert-base-chinese" in result.output and "offline" in result.output


def test_model_dir_missing_file(overfit_run, tmp_path):
    run_dir, _ = overfit_run
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (run_dir / "model").iterdir():
        if f.name != "vocab.txt":
            (broken / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ModelError, match="lacks vocab.txt"):
        Tagger.load(broken)
    result = CliRunner().invoke(main, ["evaluate", "-m", str(broken), "-d",
                                       str(SAMPLE / "test.conll")])
    assert result.exit_code == 2 and "lacks vocab.txt" in result.output


def test_evaluate_cli_writes_json(overfit_run, ten_sentences, tmp_path):
    run_dir, _ = overfit_run
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["evaluate", "-m", str(run_dir / "model"), "-d",
                                       str(ten_sentences), "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["f1"] == 1.0 and set(scores["per_type"]) <= {"PER", "LOC", "ORG"}
    assert "micro avg" in result.output and "macro avg" in result.output


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_names_its_data(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    if cfg.classify.task:
        from cner.data.task_registry import get_task
        get_task(cfg.classify.task)
    else:
        assert cfg.data.train
        if "example.train" not in cfg.data.train:  # People's Daily train is not in ../shared
            assert cfg.data.train.startswith(("corpora/", "../shared/corpora/"))


def test_linear_schedule_follows_steps_or_the_time_budget():
    from cner.training.loop import linear_schedule

    by_steps = linear_schedule(1000, 100)
    assert by_steps(0) == pytest.approx(0.01) and by_steps(99) == pytest.approx(1.0)
    assert by_steps(550) == pytest.approx(0.5) and by_steps(1000) == 0.0
    used = {"fraction": 0.0}
    by_time = linear_schedule(1000, 100, lambda: used["fraction"])
    used["fraction"] = 0.05  # half-way through the warm-up by the clock, step 0
    assert by_time(0) == pytest.approx(0.5)
    used["fraction"] = 0.55  # the clock runs ahead of the steps: decay follows the clock
    assert by_time(10) == pytest.approx(0.5)
    used["fraction"] = 0.2  # the steps run ahead of the clock: decay follows the steps
    assert by_time(550) == pytest.approx(0.5)
    used["fraction"] = 1.0
    assert by_time(10) == 0.0


# -- the loop's parts, on a toy model (model(**batch) -> loss, as a masked LM would be) ----------

class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(4, 1)

    def forward(self, x, y):
        return ((self.encoder(x).squeeze(-1) - y) ** 2).mean()


def _toy_batches(n: int):
    def epoch_batches(epoch: int) -> list[dict]:
        g = torch.Generator().manual_seed(epoch)
        return [{"x": torch.randn(2, 4, generator=g), "y": torch.randn(2, generator=g),
                 "n_chars": 8} for _ in range(n)]
    return epoch_batches


def _toy_config(**values):
    from cner.config import TrainingConfig

    return TrainingConfig(**{"device": "cpu", "precision": "fp32", "threads": 1,
                             "early_stopping_patience": None, "batch_size": 2, **values})


def test_train_steps_yields_one_record_per_optimiser_step():
    from cner.training.schedule import Cadence, Clock
    from cner.training.steps import LoopState, Optimisation, prepare_model, train_steps

    cfg = _toy_config(epochs=2, grad_accumulation=2)
    model = _Toy()
    device, precision = prepare_model(model, cfg)
    clock = Clock(None)
    opt = Optimisation(model, cfg, total_steps=4, device=device, precision=precision, clock=clock)
    evaluated = []
    state = LoopState()
    records = list(train_steps(opt, _toy_batches(3), state, total_steps=4, accumulation=2,
                               cadence=Cadence.of(cfg), clock=clock,
                               evaluate=lambda s: evaluated.append((s.step, s.epoch))))
    assert [r.step for r in records] == [1, 2, 3, 4]
    assert [r.epoch for r in records] == [0, 0, 1, 1]
    assert [len(r.batch_losses) for r in records] == [2, 1, 2, 1]  # 3 batches, groups of 2
    assert [r.epoch_done for r in records] == [False, True, False, True]
    assert [r.chars for r in records] == [16, 8, 16, 8] and state.chars == 48
    assert [r.stop for r in records] == [None, None, None, "completed"]
    assert evaluated == [(2, 1), (4, 2)]  # each epoch's end, after the epoch count moved on
    assert records[-1].lr == 0.0 and state.finished  # the linear decay reaches 0 at the end
    assert list(train_steps(opt, _toy_batches(3), state, total_steps=4, accumulation=2,
                            cadence=Cadence.of(cfg), clock=clock, evaluate=lambda s: None)) == []


def test_time_limit_stops_after_the_first_step_and_evaluates_it(tmp_path):
    from cner.training.loop import train_loop

    saved = []
    cfg = _toy_config(epochs=5, max_minutes=1e-9, eval_every=100, log_every=1)
    result = train_loop(_Toy(), cfg=cfg, run_dir=tmp_path, epoch_batches=_toy_batches(4),
                        evaluate=lambda m: {"loss": 1.0}, save_best=lambda m, s: saved.append(s),
                        score_key="loss", progress=False)
    assert result.stopped_because == "time limit" and result.state.step == 1
    assert saved == [{"loss": 1.0}]  # the final model was evaluated although no eval was due
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["train", "eval", "end"]
    assert events[-1]["reason"] == "time limit"


@pytest.mark.parametrize("higher_is_better, best, stopped", [
    (True, 3.0, "early stopping"), (False, 1.0, "completed")])
def test_score_direction_picks_the_best_and_drives_early_stopping(
        tmp_path, higher_is_better, best, stopped):
    """A masked-LM-like task: evaluation gives a loss, lower is better."""
    from cner.training.loop import train_loop

    losses = iter([3.0, 2.0, 2.5, 1.0, 1.5, 1.2])
    saved = []
    result = train_loop(_Toy(), cfg=_toy_config(max_steps=6, eval_every=1,
                                                early_stopping_patience=3),
                        run_dir=tmp_path, epoch_batches=_toy_batches(4),
                        evaluate=lambda m: {"loss": next(losses)},
                        save_best=lambda m, s: saved.append(s["loss"]), score_key="loss",
                        higher_is_better=higher_is_better, progress=False)
    assert result.best_metrics == {"loss": best} and result.stopped_because == stopped
    assert saved == ([3.0] if higher_is_better else [3.0, 2.0, 1.0])
    assert result.state.best_step == (1 if higher_is_better else 4)
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["best"] for e in events if e["event"] == "eval"] == (
        [True, False, False, False] if higher_is_better else
        [True, True, False, True, False, False])


def test_missing_score_key_is_a_clear_error(tmp_path):
    from cner.training.loop import train_loop

    with pytest.raises(ConfigError, match="no 'f1' to keep the best model by; it gives loss"):
        train_loop(_Toy(), cfg=_toy_config(max_steps=1), run_dir=tmp_path,
                   epoch_batches=_toy_batches(2), evaluate=lambda m: {"loss": 1.0},
                   save_best=lambda m, s: None, progress=False)


def test_loop_rejects_a_length_of_no_steps_built_in_code(tmp_path):
    from cner.training.loop import train_loop

    with pytest.raises(ConfigError, match=r"'training.epochs' expects an int >= 1, found 0"):
        train_loop(_Toy(), cfg=_toy_config(epochs=0), run_dir=tmp_path,
                   epoch_batches=_toy_batches(2), evaluate=None, save_best=lambda m, s: None,
                   progress=False)
