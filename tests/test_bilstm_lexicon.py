"""The BiLSTM encoder and jieba-lexicon features: padding, training, save/load, offsets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.config import load_config  # noqa: E402
from cner.data.formats import read_corpus  # noqa: E402
from cner.inference.tagger import Tagger  # noqa: E402
from cner.encoding.lexicon import (CATEGORIES, MAX_WORD, N_BITS, lexicon_bits,  # noqa: E402
                                   load_lexicon)
from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder  # noqa: E402
from cner.tasks.ner import train_ner  # noqa: E402
from hardware import needs_bf16  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"


def _bits(text: str, char: int) -> set[str]:
    value = lexicon_bits(text)[char]
    return {f"{'BMES'[k // len(CATEGORIES)]}-{CATEGORIES[k % len(CATEGORIES)]}"
            for k in range(N_BITS) if value >> k & 1}


def test_lexicon_marks_dictionary_words_by_position_and_kind():
    text = "我在北京工作"
    assert {"B-place"} <= _bits(text, 2) and {"E-place"} <= _bits(text, 3)
    assert "B-place" not in _bits(text, 0)  # 我 starts no place name
    assert lexicon_bits("") == []
    assert lexicon_bits("😀😀") == [0, 0]


def test_lexicon_is_case_insensitive_and_keeps_one_value_per_character():
    # U+0130 lower-cases to two code points; the features must still align with the text.
    text = "İ在ＡＢＣ北京"
    assert len(lexicon_bits(text)) == len(text)
    assert lexicon_bits("B超") == lexicon_bits("b超") != [0, 0]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_lexicon_bits_align_with_any_text(text):
    bits = lexicon_bits(text)
    assert len(bits) == len(text)
    assert all(0 <= b < 2 ** N_BITS for b in bits)


def _every_substring_bits(text: str) -> list[int]:
    """The oracle: every substring of at most MAX_WORD characters looked up in the dictionary."""
    words, lowered, n_cat = load_lexicon(), text.lower(), len(CATEGORIES)
    if len(lowered) != len(text):
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    bits = [0] * len(text)
    for first in range(len(text)):
        for last in range(first, min(len(text), first + MAX_WORD)):
            cats = words.get(lowered[first:last + 1], 0)
            if first == last:
                bits[first] |= cats << 3 * n_cat
            elif cats:
                bits[first] |= cats
                bits[last] |= cats << 2 * n_cat
                for k in range(first + 1, last):
                    bits[k] |= cats << n_cat
    return bits


def test_lexicon_bits_equal_a_look_up_of_every_substring():
    texts = [ex.text for ex in read_corpus(SAMPLE / "train.conll").examples]
    texts += ["中华人民共和国国务院总理李克强在ＡＢＣ大厦", "İstanbul Straße 北京大学B超"]
    assert sum(map(any, map(lexicon_bits, texts))) > 0.9 * len(texts)
    for text in texts:
        assert lexicon_bits(text) == _every_substring_bits(text), text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["中华", "人民", "共和国", "北京", "大学", "生", "李", "克强",
                                 "İ", "Ａ", "b超", "😀", "工作", "在"]), max_size=12))
def test_lexicon_bits_equal_the_oracle_on_word_soup(pieces):
    text = "".join(pieces)
    assert lexicon_bits(text) == _every_substring_bits(text)


def test_bilstm_output_ignores_padding():
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=50, embedding_size=8, hidden_size=12)).eval()
    short = torch.tensor([[2, 5, 6, 7, 3]])
    padded = torch.tensor([[2, 5, 6, 7, 3, 0, 0, 0], [2, 9, 9, 9, 9, 9, 9, 3]])
    mask = (padded != 0).long()
    alone = encoder(input_ids=short, attention_mask=torch.ones_like(short)).last_hidden_state
    batch = encoder(input_ids=padded, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(batch[0, :5], alone[0])
    assert batch[0, 5:].abs().sum() == 0  # padding positions stay zero


@pytest.mark.parametrize("layers", [1, 2])
def test_bilstm_inference_without_packing_equals_the_packed_training_path(layers):
    """Inference runs each direction unpacked (the backward one on rows reversed within their
    length); training packs. With dropout 0 both must give the same states, padding zero."""
    torch.manual_seed(layers)
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=50, embedding_size=8, hidden_size=12,
                                         num_layers=layers, dropout=0.0))
    lengths = torch.tensor([9, 1, 6, 9, 3])
    ids = torch.randint(4, 50, (5, 9))
    mask = (torch.arange(9)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    packed = encoder.train()(input_ids=ids, attention_mask=mask).last_hidden_state
    with torch.inference_mode():
        unpacked = encoder.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
    assert unpacked.shape == packed.shape
    torch.testing.assert_close(unpacked, packed.detach(), atol=1e-6, rtol=1e-5)
    assert unpacked[mask == 0].abs().sum() == 0
    # the backward direction really starts at each row's last real position
    alone = encoder(input_ids=ids[1:2, :1], attention_mask=mask[1:2, :1]).last_hidden_state
    torch.testing.assert_close(unpacked[1, :1], alone[0], atol=1e-6, rtol=1e-5)


def test_bilstm_config_needs_an_even_hidden_size():
    from cner.errors import ModelError
    from cner.models.encoders import build_encoder

    cfg = load_config(None, ["model.encoder=bilstm", "model.hidden_size=33"])
    with pytest.raises(ModelError, match="must be even"):
        build_encoder(cfg.model, cfg.data, ["北京"])


@pytest.fixture(scope="module")
def bilstm_run(tmp_path_factory):
    lines = (SAMPLE / "train.conll").read_text("utf-8").split("\n\n")
    ten = tmp_path_factory.mktemp("ten") / "ten.conll"
    ten.write_text("\n\n".join([b for b in lines if "B-" in b][:10]) + "\n", "utf-8")
    out = tmp_path_factory.mktemp("bilstm") / "run"
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"data.train={ten}", f"data.dev={ten}", "data.test=null", "model.encoder=bilstm",
        "model.hidden_size=64", "model.embedding_size=32", "model.num_layers=1",
        "model.dropout=0.0", "model.bigrams=true", "model.bigram_min_count=1",
        "model.word_boundaries=true", "model.lexicon=true", "training.epochs=40",
        "training.batch_size=4", "training.lr=1e-2", "training.crf_lr_multiplier=10",
        "training.early_stopping_patience=null", "training.precision=fp32",
        "training.threads=1"])
    run_dir, result = train_ner(cfg, output=out, progress=False)
    return run_dir, result, ten


def test_bilstm_tagger_with_all_features_overfits_and_reloads(bilstm_run):
    run_dir, result, ten = bilstm_run
    assert result.best_metrics["f1"] == 1.0
    assert (run_dir / "model" / "config.json").read_text().count("cner-bilstm") == 1
    tagger = Tagger.load(run_dir / "model", precision="fp32")
    gold = read_corpus(ten).examples
    for ex, ents in zip(gold, tagger.pipe(ex.text for ex in gold)):
        assert [(e.start, e.end, e.label) for e in ents] == [(s.start, s.end, s.label)
                                                             for s in ex.spans]


@needs_bf16
def test_bilstm_tagger_in_bf16_agrees_and_keeps_offsets(bilstm_run):
    run_dir, _, ten = bilstm_run
    texts = [ex.text for ex in read_corpus(ten).examples] + ["İ在ＡＢＣ北京😀\u200b上海 ", ""]
    full = Tagger.load(run_dir / "model", precision="fp32")
    half = Tagger.load(run_dir / "model", precision="bf16")
    same = found = 0
    for text, a, b in zip(texts, full.pipe(texts), half.pipe(texts)):
        for e in a + b:
            assert text[e.start:e.end] == e.text
        same += [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]
        found += len(a)
    assert found > 0  # the comparison is not between empty lists
    assert same >= len(texts) - 1


def test_model_records_the_dictionary_and_warns_when_it_changed(bilstm_run, tmp_path):
    import json
    import shutil

    from cner.encoding.lexicon import dictionary_fingerprint

    run_dir, _, _ = bilstm_run
    meta = json.loads((run_dir / "model" / "cner_model.json").read_text("utf-8"))
    assert meta["features"]["lexicon_dictionary"] == dictionary_fingerprint()
    copy = tmp_path / "model"
    shutil.copytree(run_dir / "model", copy)
    meta["features"]["lexicon_dictionary"] = "0" * 16
    (copy / "cner_model.json").write_text(json.dumps(meta), "utf-8")
    with pytest.warns(UserWarning, match="another jieba dictionary"):
        Tagger.load(copy, precision="fp32")


def test_unk_dropout_replaces_characters_in_training_only():
    from cner.models.tagger import TokenTagger

    torch.manual_seed(0)
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=50, embedding_size=8, hidden_size=12,
                                         dropout=0.0))
    model = TokenTagger(encoder, ["O", "B-PER", "I-PER"], scheme="bio", dropout=0.0,
                        unk_dropout=1.0, unk_id=1)
    ids = torch.tensor([[2, 5, 6, 7, 3, 0]])
    attention = (ids != 0).long()
    chars = torch.tensor([[True, True, True, False]])
    all_unk = torch.tensor([[2, 1, 1, 1, 3, 0]])  # [CLS], [SEP] and padding kept
    model.train()
    torch.testing.assert_close(model.emissions(ids, attention, chars),
                               model.emissions(all_unk, attention, chars))
    model.eval()
    assert not torch.allclose(model.emissions(ids, attention, chars),
                              model.emissions(all_unk, attention, chars))


def test_zeroed_feature_embeddings_leave_a_pretrained_encoder_its_own_inputs():
    """Over a pre-trained encoder, the features start at zero: the emissions are those of the
    encoder alone until training moves them (and the features still get gradients)."""
    from cner.models.tagger import TokenTagger

    torch.manual_seed(0)
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=50, embedding_size=8, hidden_size=12,
                                         dropout=0.0))
    model = TokenTagger(encoder, ["O", "B-PER", "I-PER"], scheme="bio", dropout=0.0,
                        n_bigrams=30, boundaries=True, lexicon=True).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    attention = torch.ones_like(ids)
    chars = torch.ones(1, 3, dtype=torch.bool)
    features = {"bigram_ids": torch.tensor([[0, 4, 9, 11, 0]]),
                "boundary_ids": torch.tensor([[0, 1, 2, 3, 0]]),
                "lexicon_ids": torch.tensor([[0, 5, 2, 9, 0]])}
    alone = model.classifier(model.encoder(input_ids=ids, attention_mask=attention)
                             .last_hidden_state[:, 1:4])
    assert not torch.allclose(model.emissions(ids, attention, chars, **features), alone)
    model.zero_feature_embeddings()
    scores = model.emissions(ids, attention, chars, **features)
    torch.testing.assert_close(scores, alone)
    scores.sum().backward()
    for module in (model.bigram_embeddings, model.boundary_embeddings, model.lexicon_projection):
        assert module.weight.grad.abs().sum() > 0
