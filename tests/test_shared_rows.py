"""Several windows to a model row: the row plan, and the same scores and entities as each
window padded alone, for every encoder type the engine lets share rows."""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.encoding.batching import collate_inputs  # noqa: E402
from cner.encoding.features import Featurizer  # noqa: E402
from cner.encoding.shared_rows import (collate_shared_rows, gather_windows,  # noqa: E402
                                       layout_cost, share_rows)
from cner.encoding.vocab import CharVocab  # noqa: E402
from cner.inference.tagger import Tagger  # noqa: E402
from cner.models.tagger import TokenTagger  # noqa: E402
from cner.runtime.engine import SHARED_ROW_ENCODERS, can_share_rows, prepare_engine  # noqa: E402

TEXTS = ["张伟在北京大学工作。", "上海", "李娜去了上海，😀住在𠀋村。", "a\u2028b", "我", "王小明和\u200d李四"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(3, 200), min_size=1, max_size=60), st.integers(1, 256))
def test_every_window_lands_once_in_a_row_that_holds_it(widths, min_width):
    widths = sorted(widths, reverse=True)
    rows = share_rows(widths, min_width=min_width)
    assert sorted(k for row in rows for k in row) == list(range(len(widths)))
    for row in rows:
        assert row == sorted(row)  # a row holds its windows widest first
        assert sum(widths[k] for k in row) <= max(min_width, widths[row[0]])


def test_rows_are_filled_not_one_window_each():
    assert share_rows([40] * 10, min_width=128) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    # best fit: the 30 goes to the row with 30 left, not the first with room
    assert share_rows([100, 90, 30], min_width=128) == [[0], [1, 2]]
    with pytest.raises(ValueError, match="widest first"):
        share_rows([3, 5])


def _vocab() -> CharVocab:
    return CharVocab.build(TEXTS)


def _tagger(model_type: str, vocab: CharVocab, **features) -> TokenTagger:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(model_type, vocab_size=len(vocab), hidden_size=32,
                                  num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64,
                                  embedding_size=32, pad_token_id=vocab.pad_id)
    torch.manual_seed(0)
    encoder = AutoModel.from_config(config, add_pooling_layer=False) if model_type != "electra" \
        else AutoModel.from_config(config)
    return TokenTagger(encoder, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], scheme="bio",
                       **features)


def _both_ways(model: TokenTagger, featurizer: Featurizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Emissions of TEXTS, each window alone (padded) and all in shared rows of width 24."""
    engine = prepare_engine(model, precision="fp32")
    windows = [featurizer.window(featurizer.features(t), 0, len(t)) for t in TEXTS]
    alone = engine.emissions(collate_inputs(windows, featurizer))  # shape: (N, L, T)
    order = sorted(range(len(windows)), key=lambda k: -len(windows[k]["input_ids"]))
    rows = [[order[i] for i in row]
            for row in share_rows([len(windows[k]["input_ids"]) for k in order], min_width=24)]
    assert len(rows) < len(windows)  # some windows do share a row
    inputs, where, char_mask = collate_shared_rows(windows, rows, featurizer, engine.mask_dtype)
    shared = gather_windows(engine.shared_row_emissions(inputs), where)  # shape: (N, L, T)
    mask = collate_inputs(windows, featurizer)["char_mask"]
    assert torch.equal(char_mask, mask)
    return alone[mask], shared[char_mask]


@pytest.mark.parametrize("model_type", sorted(SHARED_ROW_ENCODERS))
def test_a_window_scores_the_same_alone_or_sharing_a_row(model_type):
    vocab = _vocab()
    model = _tagger(model_type, vocab)
    assert can_share_rows(model)
    alone, shared = _both_ways(model, Featurizer(vocab))
    torch.testing.assert_close(shared, alone, rtol=1e-5, atol=1e-5)


def test_shared_rows_carry_the_bigram_boundary_and_lexicon_features():
    vocab = _vocab()
    bigrams = Featurizer.build_bigrams(TEXTS, vocab, min_count=1)
    featurizer = Featurizer(vocab, bigrams=bigrams, boundaries=True, lexicon=True)
    model = _tagger("bert", vocab, n_bigrams=len(bigrams), boundaries=True, lexicon=True)
    alone, shared = _both_ways(model, featurizer)
    torch.testing.assert_close(shared, alone, rtol=1e-5, atol=1e-5)


def test_roberta_positions_do_not_restart_so_it_pads():
    """RoBERTa numbers positions from its padding id + 1: restarted at 0 they would be other
    positions, and a window's scores change. The engine keeps it padded."""
    vocab = _vocab()
    model = _tagger("roberta", vocab)
    assert not can_share_rows(model)
    alone, shared = _both_ways(model, Featurizer(vocab))
    assert not torch.allclose(shared, alone, atol=1e-3)


def _count_calls(engine) -> dict[str, int]:
    calls = {"emissions": 0, "shared_row_emissions": 0}
    for name in calls:
        original = getattr(engine, name)

        def counted(inputs, name=name, original=original):
            calls[name] += 1
            return original(inputs)
        setattr(engine, name, counted)
    return calls


def test_a_tagger_finds_the_same_entities_in_shared_rows(tiny_model, sample_dir):
    from cner.data.formats import read_corpus

    texts = [ex.text for ex in read_corpus(sample_dir / "test.conll").examples][:200]
    texts += TEXTS + ["", "张伟在北京大学工作。" * 30]  # a text of several windows
    tagger = Tagger.load(tiny_model, precision="fp32", batch_size=4)
    assert tagger.engine.shares_rows
    # the tiny encoder's attention is dear next to its other products: price it as free,
    # so that every chunk runs in shared rows
    tagger.predictor.attention_width = float("inf")
    calls = _count_calls(tagger.engine)
    shared = [list(tagger.pipe(texts[i:i + 16])) for i in range(0, len(texts), 16)]
    assert calls == {"emissions": 0, "shared_row_emissions": calls["shared_row_emissions"]} \
        and calls["shared_row_emissions"] > 0
    tagger.engine.shares_rows = False
    padded = [list(tagger.pipe(texts[i:i + 16])) for i in range(0, len(texts), 16)]
    shared, padded = sum(shared, []), sum(padded, [])
    assert sum(map(len, padded)) > 20
    assert [[(e.start, e.end, e.label) for e in doc] for doc in shared] == \
        [[(e.start, e.end, e.label) for e in doc] for doc in padded]
    scores = [(e.score, f.score) for a, b in zip(shared, padded) for e, f in zip(a, b)]
    assert max(abs(x - y) for x, y in scores) < 1e-4
    for text, doc in zip(texts, shared):
        assert all(text[e.start:e.end] == e.text for e in doc)


def test_the_cheaper_layout_runs(tiny_model):
    """Windows of many widths in one call: shared rows save padding. Windows of one width:
    nothing to save, and wider rows only cost attention: padded."""
    tagger = Tagger.load(tiny_model, precision="fp32")
    calls = _count_calls(tagger.engine)
    list(tagger.pipe(["北" * n for n in (60, 50, 40, 30, 20, 15, 10, 5)]))
    assert calls == {"emissions": 0, "shared_row_emissions": 1}
    list(tagger.pipe(["北" * 40] * 16))
    assert calls == {"emissions": 1, "shared_row_emissions": 1}


def test_layout_cost_prices_padding_and_width():
    # one batch of 3 rows padded to 10: overhead + 3 x 10 x (1 + 10 / 20)
    assert layout_cost([[10, 4, 2]], overhead=5, attention_width=20) == 5 + 45
    # windows of 8 and 6: padded to 8 in two rows, or one row of 14; cheaper shared without
    # attention, padded when attention dominates
    assert layout_cost([[14]], overhead=5, attention_width=float("inf")) < \
        layout_cost([[8, 8]], overhead=5, attention_width=float("inf"))
    assert layout_cost([[14]], overhead=5, attention_width=1) > \
        layout_cost([[8, 8]], overhead=5, attention_width=1)
