"""Sequence classification: encoding, the four heads, the pipeline, the CLI and its errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.inference.classifier import Classifier  # noqa: E402
from cner.tasks.classification import evaluate_classifier  # noqa: E402
from cner.encoding.classification import encode_pair, encode_single, truncate  # noqa: E402
from cner.cli import main  # noqa: E402
from cner.config import load_config  # noqa: E402
from cner.encoding.vocab import CharVocab  # noqa: E402
from cner.errors import InputError  # noqa: E402
from cner.tasks.classification import train_classifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOCAB = CharVocab.build(["好坏酒店服务房间干净吵闹价格便宜贵我们他们喜欢讨厌今天明天abc"])

POS = ["酒店很干净服务好", "房间干净价格便宜", "我们喜欢这家酒店", "服务好价格便宜", "今天房间很干净",
       "他们喜欢服务", "干净便宜好", "喜欢喜欢很好", "价格便宜房间好", "明天还来这家酒店"]
NEG = ["酒店很吵闹服务坏", "房间脏价格贵", "我们讨厌这家酒店", "服务坏价格贵", "今天房间很吵闹",
       "他们讨厌服务", "吵闹贵坏", "讨厌讨厌很坏", "价格贵房间坏", "明天不来这家酒店"]


def test_head_tail_keeps_exactly_the_configured_characters():
    text = "".join(chr(0x4E00 + i) for i in range(1000))
    kept = truncate(text, 510, strategy="head+tail", head_chars=128)
    assert kept == text[:128] + text[-382:]
    assert truncate(text, 10, strategy="head") == text[:10]
    assert truncate(text, 10, strategy="tail") == text[-10:]
    assert truncate("短文本", 10, strategy="head+tail") == "短文本"
    [chunk] = encode_single(text, VOCAB, max_length=512, strategy="head+tail", head_chars=128)
    assert len(chunk["input_ids"]) == 512
    chunks = encode_single(text, VOCAB, max_length=102, strategy="chunks", overlap=0)
    assert [len(c["input_ids"]) - 2 for c in chunks] == [100] * 10


def test_pair_encoding_segment_ids():
    enc = encode_pair("今天好", "明天坏啊", VOCAB, max_length=32)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    assert ids[0] == VOCAB.cls_id and ids[4] == VOCAB.sep_id and ids[-1] == VOCAB.sep_id
    assert types == [0] * 5 + [1] * 5
    assert ids[1:4] == VOCAB.encode("今天好") and ids[5:9] == VOCAB.encode("明天坏啊")
    cut = encode_pair("一" * 50, "二" * 5, VOCAB, max_length=20)
    assert len(cut["input_ids"]) == 20 and cut["token_type_ids"].count(1) == 6


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows),
                    "utf-8")
    return path


def _tiny(tmp: Path, train: Path, *extra: str):
    return load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"data.train={train}", f"data.dev={train}", "data.test=null", "data.max_length=32",
        "model.hidden_size=64", "model.num_heads=2", "model.intermediate_size=128",
        "training.precision=fp32", "training.threads=1", "training.epochs=40", "training.batch_size=5",
        "training.lr=0.002", "training.early_stopping_patience=null", "training.warmup_ratio=0.05",
        *extra])


@pytest.mark.parametrize("kind", ["single", "pair", "multilabel", "regression"])
def test_each_head_overfits_twenty_examples(tmp_path, kind):
    if kind == "single":
        rows = [[t, 1] for t in POS] + [[t, 0] for t in NEG]
        header, extra = ["text", "label"], []
    elif kind == "pair":
        rows = [[a, b, 1] for a, b in zip(POS, POS[1:] + POS[:1])] + \
               [[a, b, 0] for a, b in zip(POS, NEG)]
        header, extra = ["text", "text2", "label"], ["classify.text_pair_column=text2"]
    elif kind == "multilabel":
        rows = [[t, "pos,hotel" if "酒店" in t else "pos"] for t in POS] + \
               [[t, "neg,hotel" if "酒店" in t else "neg"] for t in NEG]
        header, extra = ["text", "label"], []
    else:
        rows = [[t, 4.5 - 0.1 * i] for i, t in enumerate(POS)] + \
               [[t, 0.5 + 0.1 * i] for i, t in enumerate(NEG)]
        header, extra = ["text", "label"], []
    train = _write(tmp_path / "train.tsv", header, rows)
    cfg = _tiny(tmp_path, train, f"classify.kind={kind}", *extra)
    run_dir, result = train_classifier(cfg, output=tmp_path / "run", progress=False)
    key = {"single": "accuracy", "pair": "accuracy", "multilabel": "exact_match",
           "regression": "pearson"}[kind]
    threshold = 0.95 if kind != "regression" else 0.9
    assert result.best_metrics[key] >= threshold, result.best_metrics
    # The saved model reproduces its dev score through the public API, at the run's precision.
    clf = Classifier.load(run_dir / "model", precision="fp32")
    from cner.tasks.classification import load_task_data
    scores = evaluate_classifier(clf, load_task_data(cfg).dev)
    assert scores[key] == pytest.approx(result.best_metrics[key], abs=1e-6)
    pred = clf(POS[0], POS[1] if kind == "pair" else None)
    if kind in ("single", "pair"):
        assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    if kind == "regression":
        assert isinstance(pred.label, float)


def test_chunk_pooling_trains_on_long_documents(tmp_path):
    rows = [[t * 12, 1] for t in POS] + [[t * 12, 0] for t in NEG]  # ~100 chars, windows of 30
    train = _write(tmp_path / "long.tsv", ["text", "label"], rows)
    cfg = _tiny(tmp_path, train, "classify.truncation=chunks", "classify.pooling=max",
                "data.overlap=4")
    _, result = train_classifier(cfg, output=tmp_path / "run", progress=False)
    assert result.best_metrics["accuracy"] >= 0.95


def test_unseen_dev_label_and_missing_column_are_one_line_errors(tmp_path):
    train = _write(tmp_path / "train.tsv", ["text", "label"], [[t, 1] for t in POS])
    dev = _write(tmp_path / "dev.tsv", ["text", "label"], [["好", 1], ["坏", 7]])
    runner = CliRunner()
    result = runner.invoke(main, ["glue", "train", "--task", "none", "--train", str(train),
                                  "--dev", str(dev), "-o", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 2
    assert "dev.tsv:3" in result.output and "'7'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["glue", "train", "--task", "none", "--train", str(train),
                                  "--text-column", "review", "-o", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 2 and "review" in result.output and "text" in result.output
    one_col = _write(tmp_path / "pairs.tsv", ["a", "b", "label"], [["好", "坏", 1]])
    one_col.write_text("a\tb\tlabel\n好\n", "utf-8")
    result = runner.invoke(main, ["glue", "train", "--task", "none", "--train", str(one_col),
                                  "--text-column", "a", "--text-pair-column", "b",
                                  "--kind", "pair", "-o", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 2 and "pairs.tsv:2" in result.output


def test_cli_train_evaluate_predict_round_trip(tmp_path):
    train = _write(tmp_path / "train.tsv", ["text", "label"],
                   [[t, "pos"] for t in POS] + [[t, "neg"] for t in NEG])
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, ["sentiment", "train", "--train", str(train), "--dev", str(train),
                                  "-o", str(out), "-q", "-c", str(ROOT / "configs" / "tiny-cpu.yaml"),
                                  "--set", "training.epochs=2", "--set", "data.max_length=32",
                                  "--set", "data.test=null"])
    assert result.exit_code == 0, result.output
    scores_path = tmp_path / "scores.json"
    result = runner.invoke(main, ["sentiment", "evaluate", "-m", str(out / "model"), "--data",
                                  str(train), "--json", str(scores_path)])
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads(scores_path.read_text())["accuracy"] <= 1.0
    pred_path = tmp_path / "pred.jsonl"
    result = runner.invoke(main, ["sentiment", "predict", "-m", str(out / "model"), "--input",
                                  str(train), "-o", str(pred_path)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in pred_path.read_text("utf-8").splitlines()]
    assert len(rows) == 20
    assert all(set(r["probabilities"]) == {"neg", "pos"} and r["label"] in ("neg", "pos") for r in rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)


def test_predict_frame_and_missing_column(tmp_path):
    import pandas as pd

    train = _write(tmp_path / "train.tsv", ["text", "label"], [[t, 1] for t in POS] + [[t, 0] for t in NEG])
    run_dir, _ = train_classifier(_tiny(tmp_path, train, "training.epochs=1"), output=tmp_path / "r",
                                  progress=False)
    clf = Classifier.load(run_dir / "model")
    frame = clf.predict_frame(pd.DataFrame({"review": POS[:3]}), text_column="review")
    assert list(frame.columns) == ["review", "label", "prob_0", "prob_1"]
    assert torch.allclose(torch.tensor((frame.prob_0 + frame.prob_1).values), torch.ones(3, dtype=torch.float64), atol=1e-4)
    with pytest.raises(InputError, match="review"):
        clf.predict_frame(pd.DataFrame({"review": ["x"]}), text_column="text")


@pytest.mark.parametrize("kind", ["single", "pair"])
def test_bilstm_encoder_classifies_single_texts_and_pairs(tmp_path, kind):
    """The BiLSTM takes the segment ids a classifier passes (and ignores them)."""
    if kind == "single":
        rows, header, extra = [[t, 1] for t in POS] + [[t, 0] for t in NEG], ["text", "label"], []
    else:
        rows = [[a, b, 1] for a, b in zip(POS, POS[1:] + POS[:1])] + \
               [[a, b, 0] for a, b in zip(POS, NEG)]
        header, extra = ["text", "text2", "label"], ["classify.text_pair_column=text2"]
    train = _write(tmp_path / "train.tsv", header, rows)
    cfg = _tiny(tmp_path, train, f"classify.kind={kind}", "model.encoder=bilstm",
                "model.hidden_size=32", "model.embedding_size=32", "training.epochs=30", *extra)
    _, result = train_classifier(cfg, output=tmp_path / "run", progress=False)
    assert result.best_metrics["accuracy"] >= 0.9, result.best_metrics
    # token_pooling auto: a BiLSTM pools over positions, recorded so that a reload does too
    clf = Classifier.load(tmp_path / "run" / "model")
    assert clf.meta.options.token_pooling == "max"
    assert clf.engine.model.token_pooling == "max"


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_token_pooling_reads_real_positions_only(pooling):
    """A chunk's vector does not change with the padding after it; cls is the first state."""
    from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder
    from cner.models.classifier import SequenceClassifier

    torch.manual_seed(0)
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=30, embedding_size=8, hidden_size=12,
                                         dropout=0.0))
    model = SequenceClassifier(encoder, 2, dropout=0.0, token_pooling=pooling).eval()
    hidden = torch.randn(2, 6, 12)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    vectors = model.chunk_vectors(hidden, mask)
    expected = {"cls": hidden[0, 0], "mean": hidden[0, :4].mean(0),
                "max": hidden[0, :4].amax(0)}[pooling]
    torch.testing.assert_close(vectors[0], expected)
    padded = hidden.clone()
    padded[0, 4:] = 1e4  # whatever an encoder leaves on padding
    torch.testing.assert_close(model.chunk_vectors(padded, mask), vectors)
