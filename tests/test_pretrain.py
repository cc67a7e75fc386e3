"""Masked-LM pre-training: masking, packing, corpora text, vocabularies, cner pretrain (loss,
resume after kill -9, the encoder directory) and fine-tuning from its output."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.cli import main  # noqa: E402
from killed_runs import resume, straight_and_killed  # noqa: E402
from cner.config import load_config  # noqa: E402
from cner.data.formats import read_corpus  # noqa: E402
from cner.data.text import corpus_text, normalize_line, read_documents  # noqa: E402
from cner.encoding.masking import IGNORE, Masker, MaskingSpec, special_ids  # noqa: E402
from cner.encoding.packing import (LINE, BatchBuilder, MlmBatches, pack_documents,  # noqa: E402
                                   train_plan)
from cner.encoding.vocab import SPECIAL_TOKENS, CharVocab  # noqa: E402
from cner.encoding.vocab_builder import count_characters, vocab_from_counts  # noqa: E402
from cner.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
TINY = ["model.hidden_size=64", "model.num_heads=2", "model.intermediate_size=128",
        "model.embedding_size=32", "data.max_length=64", "training.precision=fp32",
        "training.threads=1", "training.batch_size=16", "pretrain.eval_fraction=0.1"]



@pytest.fixture(scope="module")
def sample_text(tmp_path_factory) -> Path:
    """The sample corpus's training sentences as pre-training text (`cner corpora text`)."""
    out = tmp_path_factory.mktemp("text") / "sample.txt"
    result = CliRunner().invoke(main, ["corpora", "text", str(SAMPLE / "train.conll"),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def sample_lines(sample_text) -> list[str]:
    return sample_text.read_text("utf-8").splitlines()


@pytest.fixture(scope="module")
def vocab(sample_lines) -> CharVocab:
    counts = count_characters(sample_lines, lowercase=True, halfwidth=True)
    return vocab_from_counts(counts, size=2000, reserved=20)[0]


def _mask_sample(vocab, lines, strategy, *, n_rows=None, pair="none"):
    """Masks of the sample text as packed sequences, row by row: (original, inputs, labels,
    starts) with the word starts of the original."""
    packed = pack_documents([lines], vocab, length=62, words=strategy != "char")
    builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(strategy=strategy), vocab), pair,
                           use_words=strategy != "char")
    rows = []
    rng = np.random.default_rng(0)
    for repeat in range(3):  # every sequence masked three times: a larger sample
        for k in range(len(packed) if n_rows is None else n_rows):
            batch = builder.build([k], rng)
            inputs, labels = batch["input_ids"][0].numpy(), batch["labels"][0].numpy()
            original = np.where(labels != IGNORE, labels, inputs)
            rows.append((original, inputs, labels, batch["attention_mask"][0].numpy()))
    return rows


# --- masking -------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy,tolerance", [("wwm", 0.005), ("char", 0.002),
                                                ("span", 0.01)])
def test_masking_selects_15_percent_and_replaces_80_10_10(vocab, sample_lines, strategy,
                                                          tolerance):
    rows = _mask_sample(vocab, sample_lines, strategy)
    never = special_ids(vocab)
    maskable = sum(int((~np.isin(o, never)).sum()) for o, *_ in rows)
    selected = np.concatenate([lab[lab != IGNORE] for _, _, lab, _ in rows])
    shown = np.concatenate([inp[lab != IGNORE] for _, inp, lab, _ in rows])
    assert maskable > 30_000
    assert abs(len(selected) / maskable - 0.15) < tolerance
    as_mask = np.mean(shown == vocab.mask_id)
    unchanged = np.mean(shown == selected)
    random = np.mean((shown != vocab.mask_id) & (shown != selected))
    spread = 0.03 if strategy == "span" else 0.015  # span decides per span, not per character
    assert abs(as_mask - 0.8) < spread and abs(random - 0.1) < spread
    assert abs(unchanged - 0.1) < spread
    assert not np.isin(shown, never[never != vocab.mask_id]).any()  # random ones: characters


@pytest.mark.parametrize("strategy", ["wwm", "span"])
def test_whole_word_masking_never_selects_part_of_a_jieba_word(vocab, sample_lines, strategy):
    import jieba

    word_of = []  # the jieba word of each character of the text, segmented line by line
    for line in sample_lines:
        for word in jieba.cut(line, HMM=True):
            word_of += [len(word_of)] * len(word)  # a word's id: where it starts
    word_of = np.array(word_of)
    packed = pack_documents([sample_lines], vocab, length=62)
    builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(strategy=strategy), vocab))
    rng = np.random.default_rng(1)
    checked = 0
    for k in range(len(packed)):
        start, end = int(packed.bounds[k]), int(packed.bounds[k + 1])
        chosen = (builder.build([k], rng)["labels"][0, 1:1 + end - start] != IGNORE).numpy()
        words = word_of[start:end]
        inside = set(words) - {words[0], words[-1]}  # words a sequence boundary may cut
        for word in inside:
            here = chosen[words == word]
            assert here.all() or not here.any(), (k, word)
        checked += int(chosen.sum())
    assert checked > 1000


def test_special_tokens_and_padding_are_never_selected(vocab):
    lines = ["张三在ＸＹＺ公司 工作，年薪100万。", "李四说：“今天天气很好”，我们去公园吧！",
             "𠀋𠀌是罕见字，㐀也是。" * 3, "短"]
    never = special_ids(vocab)
    for strategy in ("wwm", "char", "span"):
        for pair in ("none", "sop", "nsp"):
            packed = pack_documents([lines, lines[:2]], vocab, length=20)
            builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(strategy=strategy), vocab),
                                   pair, use_words=strategy != "char")
            for seed in range(40):
                batch = builder.build(list(range(len(packed))), np.random.default_rng(seed))
                labels, inputs = batch["labels"], batch["input_ids"]
                original = torch.where(labels != IGNORE, labels, inputs)
                assert (labels[batch["attention_mask"] == 0] == IGNORE).all()
                assert not np.isin(labels[labels != IGNORE].numpy(), never).any()
                assert (original[:, 0] == vocab.cls_id).all()


def test_masks_are_new_each_epoch_and_the_same_for_the_same_epoch(vocab, sample_lines):
    packed = pack_documents([sample_lines], vocab, length=62)
    builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(), vocab))
    sequences = np.arange(len(packed))

    def epoch(e):
        return MlmBatches(builder, train_plan(packed, sequences, batch_size=8, seed=3, epoch=e),
                          seed=3, epoch=e)

    a, b, c = epoch(0), epoch(0), epoch(1)
    for key in ("input_ids", "labels"):
        assert torch.equal(a[2][key], b[2][key])
        assert torch.equal(a[0:3][1][key], a[1][key])  # slices as the loop takes them
    first = {tuple(r) for i in range(len(a)) for r in a[i]["labels"].tolist()}
    second = {tuple(r) for i in range(len(c)) for r in c[i]["labels"].tolist()}
    assert first != second


def test_packing_fills_sequences_within_documents():
    docs = [["一二三四五", "六七八"], ["甲乙丙丁戊己庚辛壬癸"], ["子"]]
    vocab = CharVocab.build(line for doc in docs for line in doc)
    packed = pack_documents(docs, vocab, length=4, words=False)
    got = ["".join(vocab.tokens[i] for i in packed.sequence(k)[0]) for k in range(len(packed))]
    assert got == ["一二三四", "五六七八", "甲乙丙丁", "戊己庚辛", "壬癸", "子"]
    assert packed.characters == 19 and packed.documents == 3 and packed.lines == 4
    assert [int(f & LINE > 0) for f in packed.sequence(1)[1]] == [0, 1, 0, 0]


def test_sentence_order_pairs_split_a_sequence_and_swap_half(vocab, sample_lines):
    packed = pack_documents([sample_lines], vocab, length=61)
    for objective in ("sop", "nsp"):
        builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(), vocab), objective)
        batch = builder.build(list(range(len(packed))), np.random.default_rng(0))
        labels = batch["pair_labels"]
        assert 0.35 < labels.float().mean() < 0.65
        types = batch["token_type_ids"]
        for row in range(len(labels)):
            n = int(batch["attention_mask"][row].sum())
            seps = (batch["input_ids"][row, :n] == vocab.sep_id).nonzero().flatten().tolist()
            assert len(seps) == 2 and seps[1] == n - 1
            assert types[row, :seps[0] + 1].sum() == 0 and (types[row, seps[0] + 1:n] == 1).all()


@pytest.mark.parametrize("objective", ["none", "sop", "nsp"])
def test_batch_counts_every_character_once_whatever_the_pair_objective(objective):
    # the one-character sequence gets no pair ([CLS] x [SEP]): it must count as one character
    docs = [["一二三四五", "六七八"], ["甲乙丙丁戊己庚辛壬癸"], ["子"]]
    vocab = CharVocab.build(line for doc in docs for line in doc)
    packed = pack_documents(docs, vocab, length=4, words=False)
    builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(), vocab), objective)
    batch = builder.build(list(range(len(packed))), np.random.default_rng(0))
    assert batch["n_chars"] == packed.characters == 19

# --- corpora text and vocabularies -----------------------------------------------------------

def test_corpora_text_exclude_removes_exactly_the_listed_lines(tmp_path):
    train = [ex.text for ex in read_corpus(SAMPLE / "train.conll").examples]
    listed = train[3:40:3]
    exclude = tmp_path / "dev.tsv"  # a classification file: the text column only is read
    exclude.write_text("label\ttext\n" + "".join(f"1\t  {t}\u3000\n" for t in listed), "utf-8")
    out = tmp_path / "out.txt"
    result = CliRunner().invoke(main, ["corpora", "text", str(SAMPLE / "train.conll"),
                                       "--exclude", str(exclude), "-o", str(out)])
    assert result.exit_code == 0, result.output
    wanted = {normalize_line(t) for t in listed}
    expected = [normalize_line(t) for t in train if normalize_line(t) not in wanted]
    assert out.read_text("utf-8").splitlines() == expected
    removed = len(train) - len(expected)
    assert removed >= len(listed)
    assert f"removed {removed:,} lines" in result.output


def test_corpora_text_of_a_registered_task_excludes_its_dev_split(corpus_file, tmp_path):
    corpus_file("afqmc/dev.txt")
    from cner.data.task_registry import load_split

    dev = {normalize_line(t) for ex in load_split("afqmc", "dev")
           for t in (ex.text, ex.text_pair)}
    train = [normalize_line(t) for ex in load_split("afqmc", "train")
             for t in (ex.text, ex.text_pair)]
    report = corpus_text(["afqmc:train"], tmp_path / "afqmc.txt", exclude=["afqmc:dev"])
    lines = (tmp_path / "afqmc.txt").read_text("utf-8").splitlines()
    assert lines == [t for t in train if t not in dev]
    assert report.removed == len(train) - len(lines) > 0 and not set(lines) & dev


def test_vocab_build_gives_an_autotokenizer_with_one_token_per_character(tmp_path):
    from transformers import AutoTokenizer

    text = tmp_path / "t.txt"
    text.write_text("北京欢迎你，Beijing 2008！\n\n上海ABC123，明天见。\n北京北京北\n", "utf-8")
    out = tmp_path / "vocab"
    result = CliRunner().invoke(main, ["vocab", "build", str(text), "--size", "40",
                                       "--reserved", "5", "--output", str(out)])
    assert result.exit_code == 0, result.output
    tokens = (out / "vocab.txt").read_text("utf-8").splitlines()
    assert tokens[:6] == list(SPECIAL_TOKENS) and tokens[-5:] == [f"[unused{i}]" for i in range(5)]
    assert tokens[6] == "北"  # the most frequent character first
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    vocab = CharVocab.load(out / "vocab.txt", lowercase=True, halfwidth=True)
    for sample in ("北京2008年欢迎你", "ABC123 beijing", "上海，明天见。"):
        ids = tokenizer(sample)["input_ids"]
        assert len(ids) == len(sample) + 2
        assert ids[1:-1] == vocab.encode(sample)
    info = json.loads((out / "cner_vocab.json").read_text("utf-8"))
    assert info["size"] == len(tokens) and info["reserved"] == 5


def test_pretrain_config_values_are_checked():
    with pytest.raises(ConfigError, match="did you mean 'wwm'"):
        load_config(None, ["pretrain.masking=wwn"])
    with pytest.raises(ConfigError, match="pretrain.mask_ratio"):
        load_config(None, ["pretrain.mask_ratio=1.5"])


# --- cner pretrain -------------------------------------------------------------------------

def _eval_losses(run: Path) -> list[float]:
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [e["mlm_loss"] for e in events if e["event"] == "eval"]


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory, sample_text) -> Path:
    from cner.tasks.pretrain import pretrain

    out = tmp_path_factory.mktemp("pretrain") / "bert"
    cfg = load_config(ROOT / "configs" / "pretrain-small.yaml", [
        *TINY, "model.num_layers=2", "training.epochs=6", "training.lr=0.003",
        "training.eval_every=20", "training.warmup_ratio=0.05", "training.max_minutes=null",
        f"data.train={sample_text}"])
    pretrain(cfg, text=[sample_text], output=out, progress=False)
    return out


def test_scratch_bert_learns_a_masked_lm_task_that_needs_its_context():
    """Each character is written twice (``ab`` -> ``aabb``) and 15% are masked: the answer is
    always next door. A scratch BERT that can use its context drops far below ln(V) (3.7);
    one that cannot stays there (with a trainable token-type row it did, for 1,800+ steps of
    real pre-training: benchmarks/mlm_copy_task.py)."""
    from cner.config import ModelConfig
    from cner.models.encoders import scratch_encoder
    from cner.models.mlm import MaskedLanguageModel

    torch.manual_seed(0)
    chars = CharVocab.build(["".join(chr(0x4E00 + i) for i in range(40))])
    encoder = scratch_encoder(ModelConfig(encoder="scratch", hidden_size=64, num_layers=2,
                                          num_heads=2, intermediate_size=128, dropout=0.1),
                              chars, max_positions=64)
    model = MaskedLanguageModel(encoder)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    mask_id, n = chars.tokens.index("[MASK]"), len(chars)
    draw, losses = torch.Generator().manual_seed(1), []
    for _ in range(800):
        # shape: (32, 32), each drawn character twice in a row
        ids = torch.randint(n - 40, n, (32, 16), generator=draw).repeat_interleave(2, dim=1)
        selected = torch.rand(ids.shape, generator=draw) < 0.15
        labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
        inputs = torch.where(selected, torch.full_like(ids, mask_id), ids)
        loss = model(inputs, torch.ones_like(ids), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[:20]) > 3.5
    assert np.mean(losses[-50:]) < 1.5, np.mean(losses[-50:])
    # held at zero: the cure (cner.models.encoders.scratch_encoder)
    assert encoder.embeddings.token_type_embeddings.weight.abs().sum() == 0


def test_pretraining_lowers_the_mlm_loss_and_writes_a_masked_lm(bert_run):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from cner.models.mlm import mlm_from_pretrained

    model_dir = bert_run / "model"
    vocab_size = len((model_dir / "vocab.txt").read_text("utf-8").splitlines())
    losses = _eval_losses(bert_run)
    assert losses[-1] < losses[0] and losses[-1] < math.log(vocab_size) - 0.4
    info = json.loads((model_dir / "cner_pretrain.json").read_text("utf-8"))
    assert info["steps"] > 0 and info["metrics"]["mlm_loss"] == pytest.approx(min(losses))
    assert info["text"][0]["characters"] == info["characters"] > 10_000
    card = (model_dir / "README.md").read_text("utf-8")
    assert info["text"][0]["sha256"] in card and "MLM loss" in card and "whole-word" in card

    hf = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ours = mlm_from_pretrained(str(model_dir)).eval()
    inputs = tokenizer("张伟在北京[MASK]学工作。", return_tensors="pt")
    with torch.no_grad():
        states = ours.encode(inputs["input_ids"], inputs["attention_mask"],
                             inputs["token_type_ids"])
        torch.testing.assert_close(hf(**inputs).logits[0], ours.mlm_logits(states[0]))
    encoder = AutoModel.from_pretrained(str(model_dir))
    assert encoder.config.vocab_size == vocab_size


def test_pretrained_encoder_fine_tunes_with_cner_train(bert_run, tmp_path):
    """`cner train --set model.encoder=DIR` starts from the pre-trained weights (a frozen
    encoder stays exactly them) and keeps the pre-trained vocabulary."""
    from safetensors.torch import load_file

    model_dir = bert_run / "model"
    out = tmp_path / "ner"
    result = CliRunner().invoke(main, [
        "train", "-c", str(ROOT / "configs" / "tiny-cpu.yaml"), "-o", str(out), "-q",
        "--set", f"model.encoder={model_dir}", "--set", "training.epochs=1",
        "--set", "training.freeze_encoder=true", "--set", "training.precision=fp32",
        "--set", "data.max_length=64", "--set", "data.test=null"])
    assert result.exit_code == 0, result.output
    assert (out / "model" / "vocab.txt").read_text() == (model_dir / "vocab.txt").read_text()
    tuned = load_file(str(out / "model" / "model.safetensors"))
    pre = load_file(str(model_dir / "model.safetensors"))
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        torch.testing.assert_close(tuned[key], pre["bert." + key], rtol=0, atol=0)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, sample_text):
    settings = ["pretrain", "-c", str(ROOT / "configs" / "pretrain-small.yaml"),
                "--text", str(sample_text), "-q", "--set", "training.epochs=10",
                "--set", "training.checkpoint_every=5", "--set", "training.eval_every=25",
                "--set", "model.num_layers=1", "--set", "training.max_minutes=null",
                "--set", "pretrain.masking=span", "--set", "pretrain.pair_objective=nsp",
                *[arg for item in TINY for arg in ("--set", item)]]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight_and_killed(settings, straight, killed, 30)
    resume("pretrain", killed)

    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert (a["steps"], a["best_step"]) == (b["steps"], b["best_step"])
    assert b["best"]["mlm_loss"] == pytest.approx(a["best"]["mlm_loss"], abs=1e-6)
    from safetensors.torch import load_file
    for name in ("model.safetensors", "cner_mlm_head.safetensors"):
        wa, wb = (load_file(str(run / "model" / name)) for run in (straight, killed))
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)
    assert _eval_losses(killed) == pytest.approx(_eval_losses(straight), abs=1e-6)


def test_bilstm_pretrains_and_fine_tunes(tmp_path, sample_text):
    from safetensors.torch import load_file

    from cner.tasks.ner import train_ner
    from cner.tasks.pretrain import pretrain

    run = tmp_path / "bilstm"
    cfg = load_config(ROOT / "configs" / "pretrain-bilstm-cpu.yaml", [
        *TINY, "training.epochs=4", "training.lr=0.005", "training.eval_every=15",
        "training.max_minutes=null", "pretrain.pair_objective=sop"])
    pretrain(cfg, text=[sample_text], output=run, progress=False)
    losses = _eval_losses(run)
    model_dir = run / "model"
    vocab_size = len((model_dir / "vocab.txt").read_text("utf-8").splitlines())
    assert losses[-1] < losses[0] and losses[-1] < math.log(vocab_size) - 0.4
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "cner-bilstm"
    assert (model_dir / "cner_mlm_head.safetensors").is_file()

    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"model.encoder={model_dir}", "training.epochs=1", "training.freeze_encoder=true",
        "training.precision=fp32", "data.max_length=64", "data.test=null"])
    out, _ = train_ner(cfg, output=tmp_path / "ner", progress=False)
    tuned = load_file(str(out / "model" / "model.safetensors"))
    pre = load_file(str(model_dir / "model.safetensors"))
    torch.testing.assert_close(tuned["embeddings.weight"], pre["embeddings.weight"], rtol=0,
                               atol=0)

    from cner.models.mlm import mlm_from_pretrained  # --from continues it, head included
    again = mlm_from_pretrained(str(model_dir), pair_objective="sop")
    head = load_file(str(model_dir / "cner_mlm_head.safetensors"))
    for key, tensor in head.items():
        torch.testing.assert_close(again.state_dict()[key], tensor, rtol=0, atol=0)


def test_pretrain_refuses_missing_text_and_leaves_nothing(tmp_path):
    result = CliRunner().invoke(main, ["pretrain", "--text", str(tmp_path / "none.txt"),
                                       "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and "file not found" in result.output
    assert not (tmp_path / "run").exists()
    text = tmp_path / "t.txt"
    text.write_text("一些文字\n", "utf-8")
    result = CliRunner().invoke(main, ["pretrain", "--text", str(text), "--from",
                                       "no-such/model", "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and "hub" in result.output
    assert not (tmp_path / "run").exists()


def test_read_documents_splits_on_blank_lines(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("一\n二\n\n  \n三\r\n四  \n\n", "utf-8")
    assert list(read_documents([path])) == [["一", "二"], ["三", "四"]]


def test_from_continues_a_hub_style_bert_with_its_vocabulary_and_head(tmp_path, sample_lines,
                                                                       sample_text):
    """A directory laid out as a hub BERT (``save_pretrained``, a WordPiece vocab.txt with
    [unusedN] slots and ##pieces) is continued with its own vocabulary and pre-trained head."""
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

    from cner.encoding.masking import replacement_ids
    from cner.models.mlm import mlm_from_pretrained

    chars = sorted(set("".join(sample_lines)) - {" "})
    tokens = ["[PAD]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars,
              *(f"##{c}" for c in chars[:50]), "the"]
    hub = tmp_path / "hub-bert"
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(hub)
    (hub / "vocab.txt").write_text("\n".join(tokens) + "\n", "utf-8")
    hf = AutoModelForMaskedLM.from_pretrained(str(hub))
    ours = mlm_from_pretrained(str(hub))
    assert ours.tied
    torch.testing.assert_close(ours.bias, hf.cls.predictions.bias)
    torch.testing.assert_close(ours.transform.dense.weight,
                               hf.cls.predictions.transform.dense.weight)
    vocab = CharVocab.load(hub / "vocab.txt")
    assert all(len(vocab.tokens[i]) == 1 for i in replacement_ids(vocab))

    result = CliRunner().invoke(main, [
        "pretrain", "--text", str(sample_text), "--from", str(hub), "-o", str(tmp_path / "run"),
        "-q", "--set", "training.max_steps=3", "--set", "training.precision=fp32",
        "--set", "data.max_length=64", "--set", "pretrain.eval_fraction=0.05"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "run" / "model"
    assert (out / "vocab.txt").read_text("utf-8") == (hub / "vocab.txt").read_text("utf-8")
    info = json.loads((out / "cner_pretrain.json").read_text("utf-8"))
    assert info["initialised_from"] == str(hub) and info["steps"] == 3
    assert AutoModelForMaskedLM.from_pretrained(str(out)).config.vocab_size == len(tokens)
