"""Batch planning and the compiled encoder: exact cuts, same entities as the eager model."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.cli import main  # noqa: E402
from cner.config import load_config  # noqa: E402
from cner.data.formats import read_corpus  # noqa: E402
from cner.errors import ModelError  # noqa: E402
from cner.inference.tagger import Tagger  # noqa: E402
from cner.encoding.batching import plan_batches  # noqa: E402
from cner.tasks.ner import train_ner  # noqa: E402
from hardware import needs_bf16, needs_bf16_packing, needs_compiler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"


def _cost(widths, cuts, overhead):
    return sum(overhead + (end - start) * widths[start] for start, end in cuts)


def _feasible(widths, cuts, max_rows, max_positions):
    return all(end - start <= max_rows and
               (end - start == 1 or (end - start) * widths[start] <= max_positions)
               for start, end in cuts)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(3, 40), min_size=1, max_size=8), st.integers(1, 5),
       st.integers(20, 120), st.integers(0, 60))
def test_plan_batches_is_the_cheapest_feasible_cut(widths, max_rows, max_positions, overhead):
    widths = sorted(widths, reverse=True)
    plan = plan_batches(widths, max_rows=max_rows, max_positions=max_positions, overhead=overhead)
    assert [i for b in plan for i in range(*b)] == list(range(len(widths)))  # in order, once each
    assert _feasible(widths, plan, max_rows, max_positions)
    n = len(widths)
    best = min(_cost(widths, cuts, overhead)
               for mask in itertools.product((0, 1), repeat=n - 1)
               for cuts in [list(zip([0] + [i + 1 for i in range(n - 1) if mask[i]],
                                     [i + 1 for i in range(n - 1) if mask[i]] + [n]))]
               if _feasible(widths, cuts, max_rows, max_positions))
    assert _cost(widths, plan, overhead) == best


def test_plan_batches_trades_padding_for_calls():
    widths = [100] * 4 + [20] * 40
    cheap_calls = plan_batches(widths, max_rows=64, max_positions=4096, overhead=10)
    assert cheap_calls == [(0, 4), (4, 44)]  # no window padded to 100
    dear_calls = plan_batches(widths, max_rows=64, max_positions=8192, overhead=10_000)
    assert dear_calls == [(0, 44)]  # one call, padding accepted
    assert plan_batches([], max_rows=4, max_positions=10, overhead=1) == []


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "run"
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        "data.test=null", "model.hidden_size=64", "model.num_heads=2",
        "model.intermediate_size=128", "training.epochs=3", "training.threads=1"])
    run_dir, _ = train_ner(cfg, output=out, progress=False)
    return run_dir / "model"


def spans(entities):
    return [(e.start, e.end, e.label) for e in entities]


@needs_bf16
@needs_compiler
def test_compiled_tagger_finds_the_same_entities(tiny_model):
    texts = [ex.text for ex in read_corpus(SAMPLE / "test.conll").examples]
    texts += ["北京", "张伟在北京大学工作。" * 30]  # one short text alone, one windowed text
    eager = Tagger.load(tiny_model, precision="bf16")
    compiled = Tagger.load(tiny_model, precision="bf16", compile=True)
    assert compiled.engine.compiled
    a = [spans(x) for x in eager.pipe(texts)]
    b = [spans(x) for x in compiled.pipe(texts)]
    assert sum(map(len, a)) > 0  # the comparison is not between two empty lists
    assert sum(x == y for x, y in zip(a, b)) >= len(texts) - 2  # bf16 kernels may differ
    assert spans(compiled("北京")) == a[-2]  # a batch of one row


def test_compile_failure_is_one_clear_error(tiny_model, monkeypatch):
    def broken(fn, **_):
        def run(*args, **kwargs):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\ndetails")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(ModelError, match="compiling the model failed .*InvalidCxxCompiler"):
        Tagger.load(tiny_model, compile=True)
    result = CliRunner().invoke(main, ["annotate", str(SAMPLE / "news.txt"), "-m",
                                       str(tiny_model), "--compile"])
    assert result.exit_code == 2 and "run without --compile" in result.output
    assert "Traceback" not in result.output


def test_auto_compile_depends_on_input_size_and_model(tiny_model):
    from cner.inference.annotate import AUTO_COMPILE_MIN_FLOPS, worth_compiling
    from cner.runtime.engine import encoder_flops_per_position

    tagger = Tagger.load(tiny_model, precision="fp32")  # the decision does not depend on it
    per_char = encoder_flops_per_position(tagger.predictor.model)
    assert per_char > 0
    enough = int(3 * AUTO_COMPILE_MIN_FLOPS / per_char) + 3
    assert worth_compiling(tagger, enough) and not worth_compiling(tagger, enough // 2)
    tagger.engine.compiled = True  # already compiled: nothing to do
    assert not worth_compiling(tagger, enough)


def test_auto_compile_failure_only_warns(tiny_model, monkeypatch, tmp_path):
    import cner.inference.annotate

    def broken(fn, **_):
        def run(*args, **kwargs):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(cner.inference.annotate, "AUTO_COMPILE_MIN_FLOPS", 1.0)  # any input is large
    out = tmp_path / "news.csv"
    runner = CliRunner()
    result = runner.invoke(main, ["annotate", str(SAMPLE / "news.txt"), "-m", str(tiny_model),
                                  "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "compiling the model for this large input" in result.output
    assert "annotating uncompiled" in result.output and out.read_text().startswith("doc_id,")
    plain = runner.invoke(main, ["annotate", str(SAMPLE / "news.txt"), "-m", str(tiny_model),
                                 "--no-compile"])
    assert plain.exit_code == 0 and "compiling" not in plain.output
    assert plain.output.startswith("doc_id,start,end,label,text,score")


def _packed_layers(tagger) -> int:
    return sum("forward" in vars(m) for m in tagger.predictor.model.encoder.modules()
               if isinstance(m, torch.nn.Linear))


@needs_bf16_packing
def test_packed_bf16_linears_find_the_same_entities(tiny_model):
    texts = [ex.text for ex in read_corpus(SAMPLE / "test.conll").examples]
    packed = Tagger.load(tiny_model, precision="bf16")
    assert _packed_layers(packed) > 0
    assert _packed_layers(Tagger.load(tiny_model, precision="fp32")) == 0
    plain = Tagger.load(tiny_model, precision="bf16")
    plain.engine.unpack()
    assert _packed_layers(plain) == 0
    a = [spans(x) for x in plain.pipe(texts)]
    b = [spans(x) for x in packed.pipe(texts)]
    assert sum(map(len, a)) > 0  # the comparison is not between two empty lists
    assert sum(x == y for x, y in zip(a, b)) >= len(texts) - 1  # bf16 kernels may differ


@needs_bf16_packing
@pytest.mark.parametrize("rows", [1, 31, 32, 33, 100])
def test_a_packed_linear_pads_its_rows_and_returns_only_the_real_ones(rows):
    """The packed op sees rows padded to a multiple of ROW_BUCKET (fewer oneDNN kernels to
    build); the caller gets exactly its rows, equal to F.linear's."""
    from cner.runtime import packing

    layer = torch.nn.Linear(24, 40).to(torch.bfloat16)
    seen = []
    real = torch.ops.mkldnn

    class Spy:  # records the row count the op is handed
        def __getattr__(self, name):
            return getattr(real, name)

        def _linear_pointwise(self, x, *args):
            seen.append(x.size(0))
            return real._linear_pointwise(x, *args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(packing.torch.ops, "mkldnn", Spy(), raising=False)
        undo = packing.pack_linear_layers(layer)
        assert "forward" in vars(layer)
        x = torch.randn(rows, 3, 24).to(torch.bfloat16)
        seen.clear()
        y = layer(x)
    undo()
    assert y.shape == (rows, 3, 40)
    assert seen == [-(-rows * 3 // packing.ROW_BUCKET) * packing.ROW_BUCKET]
    torch.testing.assert_close(y.float(), layer(x).float(), atol=2e-2, rtol=2e-2)


@needs_bf16_packing
@needs_compiler
def test_packed_bf16_linears_give_way_to_compile(tiny_model):
    packed = Tagger.load(tiny_model, precision="bf16")
    assert _packed_layers(packed) > 0
    packed.compile()
    assert _packed_layers(packed) == 0 and packed.engine.compiled


@needs_bf16
def test_packing_falls_back_when_the_onednn_ops_fail(tiny_model, monkeypatch):
    from cner.runtime.packing import pack_linear_layers

    reference = Tagger.load(tiny_model, precision="bf16")
    reference.engine.unpack()  # plain F.linear

    def broken(*args, **kwargs):
        raise RuntimeError("no such kernel")
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", broken)
    tagger = Tagger.load(tiny_model, precision="bf16")
    assert _packed_layers(tagger) == 0
    pack_linear_layers(tagger.predictor.model.encoder)()  # nothing packed, nothing to undo
    texts = [ex.text for ex in read_corpus(SAMPLE / "test.conll").examples]
    expected = list(reference.pipe(texts))
    assert sum(map(len, expected)) > 0  # the comparison is not between two empty lists
    assert list(tagger.pipe(texts)) == expected
