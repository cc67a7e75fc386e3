"""ONNX export (`cner export --onnx`) and the onnx backend (`Tagger.load(backend="onnx")`,
`cner annotate --backend onnx`): the exported encoder computes PyTorch's emissions (fp32) for
the scratch BERT and the BiLSTM with every feature, at any batch size and length, and
annotation through it finds the same entities; missing exports, stale exports and a missing
extra are one-line errors.

Everything is compared in fp32: onnxruntime runs fp32, while the torch backend picks bf16 on
a CPU that has it (``precision="auto"``), whose emissions differ in the third digit.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.cli import main  # noqa: E402
from cner.errors import ConfigError, ModelError  # noqa: E402
from cner.inference.tagger import Tagger  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
NEWS = [line for line in (SAMPLE / "news.txt").read_text("utf-8").splitlines() if line]
HAVE_ONNX = all(importlib.util.find_spec(name) is not None
                for name in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason='needs the onnx extra (onnx, onnxruntime, '
                                'onnxscript): pip install "cner[onnx]"')
ATOL = 1e-4  # fp32 on both sides; measured 1e-7 to 1e-6


def random_tagger(encoder: str, *, features: bool):
    """An untrained `TokenTagger` (random weights: it tags plenty of entities), its
    featurizer and metadata, built from the sample corpus's characters."""
    from cner.config import load_config
    from cner.encoding.features import Featurizer
    from cner.models.encoders import build_encoder
    from cner.models.metadata import NER, ModelMeta, NerFeatures
    from cner.models.modeldir import build_tagger

    torch.manual_seed(0)
    cfg = load_config(None, [f"model.encoder={encoder}", "model.hidden_size=32",
                             "model.num_layers=2", "model.num_heads=2", "model.embedding_size=16",
                             "model.intermediate_size=64", "model.vocab_min_count=1"])
    encoder_module, vocab = build_encoder(cfg.model, cfg.data, NEWS)
    bigrams = Featurizer.build_bigrams(NEWS, vocab, min_count=1) if features else None
    featurizer = Featurizer(vocab, bigrams=bigrams, boundaries=features, lexicon=features)
    meta = ModelMeta(task=NER, labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], scheme="bio",
                     head="crf", dropout=0.1, lowercase=False, halfwidth=False, max_length=40,
                     overlap=8, features=NerFeatures.of(featurizer))
    return build_tagger(encoder_module, meta, featurizer).eval(), featurizer, meta


def batch_of(featurizer, texts):
    from cner.encoding.batching import collate_inputs

    return collate_inputs([featurizer.window(featurizer.features(t), 0, len(t)) for t in texts],
                          featurizer)


# --- the exported graph, in PyTorch (no onnxruntime needed) ----------------------------------

@pytest.mark.parametrize("encoder,features", [("bilstm", True), ("bilstm", False),
                                              ("scratch", True), ("scratch", False)])
def test_emissions_graph_computes_the_taggers_emissions(encoder, features):
    from cner.models.onnxgraph import EmissionsGraph, graph_inputs

    model, featurizer, _ = random_tagger(encoder, features=features)
    graph = EmissionsGraph(model).eval()
    assert graph.inputs == graph_inputs(model) == ["input_ids", "attention_mask"] + (
        ["bigram_ids", "boundary_ids", "lexicon_ids"] if features else [])
    inputs = batch_of(featurizer, [NEWS[0], "上海", NEWS[1][:25], "张伟"])  # padded rows
    with torch.inference_mode():
        expected = model.emissions(**inputs)  # shape: (4, L, T)
        got = graph(*(inputs[name] for name in graph.inputs))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-5


# --- export and the onnx backend ------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_export(tiny_model, tmp_path_factory):
    """A copy of the tiny BERT tagger, exported by the command line (default location)."""
    if not HAVE_ONNX:
        pytest.skip('needs the onnx extra: pip install "cner[onnx]"')
    model_dir = tmp_path_factory.mktemp("bert") / "model"
    shutil.copytree(tiny_model, model_dir)
    result = CliRunner().invoke(main, ["export", "--onnx", str(model_dir)])
    return model_dir, result


@pytest.fixture(scope="module")
def lstm_export(tmp_path_factory):
    """A two-layer BiLSTM tagger with bigram, word-boundary and lexicon features (random
    weights), saved and exported by the library to a file of our choosing."""
    if not HAVE_ONNX:
        pytest.skip('needs the onnx extra: pip install "cner[onnx]"')
    from cner.models.modeldir import save_model_dir
    from cner.runtime.onnxexport import export_onnx

    model, featurizer, meta = random_tagger("bilstm", features=True)
    model_dir = save_model_dir(model, featurizer, meta, tmp_path_factory.mktemp("lstm") / "m")
    written = export_onnx(model_dir, model_dir.parent / "elsewhere" / "lstm.onnx", opset=18)
    return model_dir, written


@needs_onnx
def test_cli_export_writes_the_file_and_its_description(bert_export):
    model_dir, result = bert_export
    assert result.exit_code == 0, result.output
    path = model_dir / "onnx" / "model.onnx"
    assert result.stdout.startswith(f"wrote {path} (")
    meta = json.loads((model_dir / "onnx" / "model.onnx.json").read_text("utf-8"))
    assert meta["inputs"] == ["input_ids", "attention_mask"]
    assert meta["output"] == "emissions" and meta["opset"] >= 18
    assert set(meta["weights"]) <= {"model.safetensors", "cner_head.safetensors"}
    assert meta["max_abs_diff"] < ATOL
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model.onnx.json"]


@needs_onnx
def test_library_export_to_a_chosen_file_with_every_feature(lstm_export):
    model_dir, written = lstm_export
    assert written.path == model_dir.parent / "elsewhere" / "lstm.onnx"
    assert written.meta_path == written.path.with_name("lstm.onnx.json")
    assert written.meta.opset == 18
    assert written.meta.inputs == ["input_ids", "attention_mask", "bigram_ids", "boundary_ids",
                                   "lexicon_ids"]
    assert not (model_dir / "onnx").exists()
    assert sorted(p.name for p in written.path.parent.iterdir()) == ["lstm.onnx",
                                                                     "lstm.onnx.json"]


def _taggers(which, bert_export, lstm_export):
    if which == "bert":
        model_dir = bert_export[0]
        return (Tagger.load(model_dir, precision="fp32"),
                Tagger.load(model_dir, backend="onnx"))
    model_dir, written = lstm_export
    return (Tagger.load(model_dir, precision="fp32"),
            Tagger.load(model_dir, backend="onnx", onnx_file=written.path))


@needs_onnx
@pytest.mark.parametrize("which", ["bert", "lstm"])
def test_onnx_emissions_equal_pytorchs_at_any_batch_size_and_length(which, bert_export,
                                                                    lstm_export):
    torch_tagger, onnx_tagger = _taggers(which, bert_export, lstm_export)
    assert onnx_tagger.engine.backend == "onnx" and onnx_tagger.precision == "fp32"
    assert torch_tagger.precision == "fp32"
    options = onnx_tagger.engine.session.get_session_options()
    assert options.intra_op_num_threads == torch.get_num_threads()
    featurizer = onnx_tagger.predictor.featurizer
    cuts = [t[:n] for t, n in zip(NEWS, (1, 7, 38, 2, 20))]
    for texts in ([NEWS[0][:38]], [NEWS[3][:3]], [t[:38] for t in NEWS[:5]], cuts):
        inputs = batch_of(featurizer, texts)  # batch 1 or 5; widths 3 to 40
        expected = torch_tagger.engine.emissions(inputs)
        got = onnx_tagger.engine.emissions(inputs)
        assert got.dtype == expected.dtype == torch.float32
        assert got.shape == expected.shape == (len(texts), inputs["char_mask"].size(1),
                                               len(torch_tagger.meta.labels))
        assert (got - expected).abs().max().item() < ATOL


@needs_onnx
@pytest.mark.parametrize("which", ["bert", "lstm"])
def test_onnx_backend_finds_the_same_entities_on_the_sample_text(which, bert_export,
                                                                 lstm_export):
    torch_tagger, onnx_tagger = _taggers(which, bert_export, lstm_export)
    long_text = "".join(NEWS)  # many windows: merging and offsets are the shared code
    texts = NEWS + [long_text, ""]
    found = 0
    for text, a, b in zip(texts, torch_tagger.pipe(texts, batch_size=5),
                          onnx_tagger.pipe(texts, batch_size=5)):
        assert [(e.start, e.end, e.label, e.text) for e in a] == \
            [(e.start, e.end, e.label, e.text) for e in b]
        assert all(abs(x.score - y.score) < 1e-4 for x, y in zip(a, b))
        assert all(text[e.start:e.end] == e.text for e in b)
        found += len(a)
    assert found > 0  # not a comparison of empty lists


@needs_onnx
def test_cli_annotate_with_the_onnx_backend_writes_what_torch_writes(bert_export, tmp_path):
    model_dir = bert_export[0]
    runner = CliRunner()
    outputs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.csv"
        result = runner.invoke(main, ["annotate", str(SAMPLE / "news.txt"), "-m", str(model_dir),
                                      "--backend", backend, "--precision", "fp32", "-o", str(out)])
        assert result.exit_code == 0, result.output
        outputs[backend] = out.read_text("utf-8")
    assert outputs["onnx"] == outputs["torch"] and outputs["onnx"].count("\n") > 1


# --- errors ----------------------------------------------------------------------------------

def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@needs_onnx
def test_annotate_without_an_export_says_to_run_cner_export(tiny_model, tmp_path):
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["annotate", str(SAMPLE / "news.txt"), "-m",
                                       str(tiny_model), "--backend", "onnx", "-o", str(out)])
    _one_line_error(result, "not found", f"cner export --onnx {tiny_model}")
    assert not out.exists()
    with pytest.raises(ModelError, match="cner export --onnx"):
        Tagger.load(tiny_model, backend="onnx")


def test_bad_model_directory_is_one_line(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nope"
    _one_line_error(runner.invoke(main, ["export", "--onnx", str(missing)]), "not found")
    _one_line_error(runner.invoke(main, ["export", str(missing)]), "--onnx")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["annotate", str(SAMPLE / "news.txt"), "-m", str(empty),
                                  "--backend", "onnx"])
    if HAVE_ONNX:
        _one_line_error(result, "lacks")
    else:
        _one_line_error(result, 'pip install "cner[onnx]"')
    assert not list(empty.iterdir())


def test_missing_extra_is_one_line_naming_the_extra(tiny_model, tmp_path, monkeypatch):
    for name in ("onnx", "onnxruntime", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "cner\[onnx\]"'):
        Tagger.load(tiny_model, backend="onnx")
    result = CliRunner().invoke(main, ["export", "--onnx", str(tiny_model)])
    _one_line_error(result, "onnxscript", 'pip install "cner[onnx]"')
    assert not (tiny_model / "onnx").exists()


@needs_onnx
def test_stale_or_damaged_export_is_refused(bert_export, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(bert_export[0], model_dir)
    meta_file = model_dir / "onnx" / "model.onnx.json"
    meta = json.loads(meta_file.read_text("utf-8"))
    meta_file.write_text(json.dumps({**meta, "weights": {"model.safetensors": "0" * 64}}), "utf-8")
    with pytest.raises(ModelError, match="other weights"):
        Tagger.load(model_dir, backend="onnx")
    meta_file.write_text(json.dumps({**meta, "onnx_sha256": "0" * 64}), "utf-8")
    with pytest.raises(ModelError, match="checksum"):
        Tagger.load(model_dir, backend="onnx")
    meta_file.unlink()
    with pytest.raises(ModelError, match="model.onnx.json not found"):
        Tagger.load(model_dir, backend="onnx")


@needs_onnx
def test_onnx_backend_refuses_what_it_cannot_do(bert_export):
    model_dir = bert_export[0]
    with pytest.raises(ConfigError, match="runs fp32"):
        Tagger.load(model_dir, backend="onnx", precision="bf16")
    with pytest.raises(ConfigError, match="TorchInductor"):
        Tagger.load(model_dir, backend="onnx", compile=True)
    with pytest.raises(ConfigError, match="backend must be one of"):
        Tagger.load(model_dir, backend="tensorrt")


@needs_onnx
def test_failed_export_leaves_nothing_behind(bert_export, tmp_path, monkeypatch):
    from cner.runtime import onnxexport

    model_dir = tmp_path / "model"
    shutil.copytree(bert_export[0], model_dir)
    shutil.rmtree(model_dir / "onnx")
    data = (bert_export[0] / "onnx" / "model.onnx").read_bytes()
    monkeypatch.setattr(onnxexport, "_trace", lambda *a: data)  # a real graph, no re-trace
    monkeypatch.setattr(onnxexport, "max_difference", lambda *a: (0.5, 2.0))
    with pytest.raises(ModelError, match="nothing was written"):
        onnxexport.export_onnx(model_dir)

    def broken(*args):
        raise RuntimeError("\x1b[96mstep 1\x1b[0m\n## Exception summary\n\n<class 'X'>: bad op")

    monkeypatch.setattr(onnxexport, "_trace", broken)
    with pytest.raises(ModelError, match="<class 'X'>: bad op"):
        onnxexport.export_onnx(model_dir)
    leftovers = list((model_dir / "onnx").iterdir()) if (model_dir / "onnx").exists() else []
    assert leftovers == []


@needs_onnx
def test_export_after_an_lstm_was_traced_keeps_the_sequence_axis(lstm_export, tmp_path):
    """A static trace first leaves aten.lstm's unrolling decomposition in the op's dispatch
    cache, where it used to win over the exporter's while-loop one and fix the length."""
    import onnx

    from cner.models.modeldir import load_tagger_dir
    from cner.models.onnxgraph import EmissionsGraph
    from cner.runtime.onnxexport import check_inputs, export_onnx

    model_dir, _ = lstm_export
    model, featurizer, meta = load_tagger_dir(model_dir)
    graph = EmissionsGraph(model.float().eval()).eval()
    inputs = check_inputs(featurizer, meta.max_length - 2)
    torch.export.export(graph, tuple(inputs[name] for name in graph.inputs), strict=False)
    written = export_onnx(model_dir, tmp_path / "again.onnx")
    proto = onnx.load(str(written.path))
    assert [[d.dim_param for d in i.type.tensor_type.shape.dim] for i in proto.graph.input] \
        == [["batch", "sequence"]] * 5
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 4  # 2 layers x 2 directions
