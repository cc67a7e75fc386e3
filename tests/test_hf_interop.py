"""Model directories the Hugging Face ecosystem can load (issue 12).

A model directory's ``model.safetensors`` holds the encoder under transformers' key names
(``AutoModel`` loads the trained encoder, ``AutoModelForTokenClassification`` the tag layer
as its ``classifier``: its logits are cner's emissions), ``config.json`` the real labels,
``tokenizer.json`` the ids of `CharVocab.encode` one token per character; BiLSTM models say
they are cner-only; directories written before that layout still load; every directory has a
model card and provenance; ``--model`` takes a hub id (from the hub cache here, never the
network) and ``cner push`` uploads (``HfApi`` replaced here, never the network).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cner.cli import main
from cner.config import ModelConfig
from cner.encoding.features import Featurizer
from cner.encoding.vocab import CharVocab
from cner.errors import ModelError
from cner.inference.classifier import Classifier
from cner.inference.tagger import Tagger
from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder
from cner.models.encoders import pretrained_encoder, scratch_encoder
from cner.models.metadata import ClassifierOptions, ModelMeta, NerFeatures, training_provenance
from cner.models.modeldir import (CARD, ENCODER_CONFIG, HEAD_WEIGHTS, META, TOKENIZER, WEIGHTS,
                                  build_classifier, build_tagger, load_classifier_dir,
                                  load_tagger_dir, read_meta, rewrite_model_dir, save_model_dir)
from cner.models.weights import save_state
from cner.schemes import label_set

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
TEXTS = ["张伟在北京大学工作。", "李娜去了上海。", "iPhone 2024年发布，ＡＢＣ１２３。",
         "Apple公司的CEO在Beijing", "王芳 在 广州"]
TYPES = ["LOC", "ORG", "PER"]
CFG = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)


def _meta(task="ner", **kw) -> ModelMeta:
    base = dict(task=task, labels=label_set(TYPES, "bio") if task == "ner" else ["neg", "pos"],
                scheme="bio" if task == "ner" else None, head="crf" if task == "ner" else "single",
                dropout=0.0, lowercase=False, halfwidth=False, max_length=32, overlap=4)
    base.update(kw)
    return ModelMeta(**base)


def _bert_tagger_dir(directory: Path, *, lowercase=False, halfwidth=False, bigrams=False):
    torch.manual_seed(0)
    vocab = CharVocab.build(TEXTS, lowercase=lowercase, halfwidth=halfwidth)
    featurizer = Featurizer(vocab, bigrams=Featurizer.build_bigrams(TEXTS, vocab, min_count=1)
                            if bigrams else None)
    meta = _meta(lowercase=lowercase, halfwidth=halfwidth, features=NerFeatures.of(featurizer))
    model = build_tagger(scratch_encoder(CFG, vocab), meta, featurizer).eval()
    with torch.no_grad():  # a tag layer and transitions that are not all alike
        model.crf.transitions.normal_()
    save_model_dir(model, featurizer, meta, directory)
    return model, vocab


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bert") / "model"
    model, vocab = _bert_tagger_dir(directory)
    return directory, model, vocab


def _inputs(vocab: CharVocab, text: str):
    ids = torch.tensor([[vocab.cls_id, *vocab.encode(text), vocab.sep_id]])
    return ids, torch.ones_like(ids), torch.ones(1, len(text), dtype=torch.bool)


# -- weights and config.json -----------------------------------------------------------------

def test_automodel_loads_the_trained_encoder(bert_dir):
    from transformers import AutoModel

    directory, model, _ = bert_dir
    encoder, info = AutoModel.from_pretrained(str(directory), output_loading_info=True)
    assert info["missing_keys"] == set() or info["missing_keys"] == []
    # the tag layer is there for AutoModelForTokenClassification; nothing else is extra
    assert set(info["unexpected_keys"]) <= {"classifier.weight", "classifier.bias"}
    mine = model.encoder.state_dict()
    theirs = encoder.state_dict()
    for name, tensor in mine.items():
        assert torch.equal(theirs[name], tensor), name
    assert set(mine) <= set(theirs)


def test_token_classification_gives_cners_emissions(bert_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    directory, model, vocab = bert_dir
    hf, info = AutoModelForTokenClassification.from_pretrained(str(directory),
                                                               output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert set(info["unexpected_keys"]) <= {"pooler.dense.weight", "pooler.dense.bias"}
    assert hf.config.id2label == dict(enumerate(label_set(TYPES, "bio")))
    assert hf.config.label2id == {t: i for i, t in enumerate(label_set(TYPES, "bio"))}
    config = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
    assert config["architectures"] == ["BertForTokenClassification"]
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    hf.eval()
    for text in TEXTS:
        with torch.no_grad():
            logits = hf(**tokenizer(text, return_tensors="pt")).logits[:, 1:-1]
            emissions = model.emissions(*_inputs(vocab, text))
        torch.testing.assert_close(logits, emissions, rtol=1e-5, atol=1e-5)


def test_the_token_classification_pipeline_runs_on_characters(bert_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    directory, model, _ = bert_dir
    hf = AutoModelForTokenClassification.from_pretrained(str(directory))
    with torch.no_grad():  # make every character a person: one entity per run of letters
        hf.classifier.bias.copy_(torch.tensor([0.0, 0, 0, 0, 0, 100.0, 0]))  # B-PER
        hf.classifier.weight.zero_()
    ner = pipeline("token-classification", model=hf,
                   tokenizer=AutoTokenizer.from_pretrained(str(directory)),
                   aggregation_strategy="simple")
    text = "张伟在北京"
    found = ner(text)
    assert found and all(e["entity_group"] == "PER" for e in found)
    assert all(text[e["start"]:e["end"]] == e["word"].replace(" ", "") for e in found)
    assert min(e["start"] for e in found) == 0 and max(e["end"] for e in found) == len(text)


def test_weights_are_under_transformers_names(bert_dir):
    """What the issue saw: the keys are under transformers' names, not ``encoder.*``."""
    from safetensors import safe_open

    directory, _, _ = bert_dir
    with safe_open(str(directory / WEIGHTS), framework="pt") as handle:
        keys = set(handle.keys())
        assert handle.metadata()["format"] == "pt"
    assert "embeddings.word_embeddings.weight" in keys
    assert not any(k.startswith("encoder.embeddings") for k in keys)
    with safe_open(str(directory / HEAD_WEIGHTS), framework="pt") as handle:
        assert {k.split(".")[0] for k in handle.keys()} == {"crf"}


def test_a_model_with_features_keeps_transformers_off_the_tag_layer(tmp_path):
    """Emissions of a bigram model need cner's features: transformers gets the encoder only,
    and its token classifier gets a fresh layer (loudly) instead of a silently wrong one."""
    from transformers import AutoModel, AutoModelForTokenClassification

    directory = tmp_path / "model"
    model, _ = _bert_tagger_dir(directory, bigrams=True)
    config = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
    assert config["architectures"] == ["BertModel"] and "character features" in \
        config["cner"]["transformers"]
    _, info = AutoModel.from_pretrained(str(directory), output_loading_info=True)
    assert not info["missing_keys"]
    assert set(info["unexpected_keys"]) == {"cner_classifier.weight", "cner_classifier.bias"}
    _, info = AutoModelForTokenClassification.from_pretrained(str(directory),
                                                              output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    loaded, _, _ = load_tagger_dir(directory)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert "bigram" in (directory / CARD).read_text("utf-8")


def test_a_classifier_directory(tmp_path):
    from transformers import AutoModel, AutoModelForSequenceClassification

    torch.manual_seed(0)
    vocab = CharVocab.build(TEXTS)
    meta = _meta("classification", options=ClassifierOptions(task="toy"))
    model = build_classifier(scratch_encoder(CFG, vocab), meta).eval()
    directory = save_model_dir(model, vocab, meta, tmp_path / "model")
    assert not (directory / HEAD_WEIGHTS).exists()
    config = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert config["architectures"] == ["BertModel"]
    encoder, info = AutoModel.from_pretrained(str(directory), output_loading_info=True)
    assert not info["missing_keys"]
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], tensor), name
    # the head reads [CLS] without BERT's pooler: transformers' class must not pretend to be it
    _, info = AutoModelForSequenceClassification.from_pretrained(str(directory),
                                                                 output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    loaded, _, _ = load_classifier_dir(directory)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    card = (directory / CARD).read_text("utf-8")
    assert "`neg`, `pos`" in card and "cner_classifier.weight" in card


# -- the tokenizer ---------------------------------------------------------------------------

def _hf_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


def test_iphone_2024_is_one_token_per_character(bert_dir):
    directory, _, vocab = bert_dir
    tokenizer = _hf_tokenizer(directory)
    text = "iPhone 2024年"
    encoded = tokenizer(text, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "i", "P", "h", "o", "n", "e", "[SPACE]", "2", "0", "2", "4", "年",
                      "[SEP]"]
    assert encoded["input_ids"] == [vocab.cls_id, *vocab.encode(text), vocab.sep_id]
    assert encoded["offset_mapping"][1:-1] == [(i, i + 1) for i in range(len(text))]
    assert encoded["token_type_ids"] == [0] * len(tokens)


SPECIAL_LIKE = ["[", "]", "C", "L", "S", "P", "A", "E", "U", "N", "K"]
ALPHABET = st.sampled_from(
    list("张伟在北京大学工作李娜去了上海王芳广州年发布公司的") + list("abcxyzABCXYZiPhone")
    + list("0123456789") + list("ＡＢＣａｂｃ１２３，。！？（）") + [" ", "\t", "\n", "\u3000", "\xa0"]
    + list("İıΣσςßẞÅå") + ["\U0001F600", "é", "e\u0301", "ﬁ", "Ⅻ", "①"] + SPECIAL_LIKE)


@pytest.mark.parametrize("lowercase, halfwidth", [(False, False), (True, False), (False, True),
                                                  (True, True)])
def test_tokenizer_ids_equal_cners_on_arbitrary_text(tmp_path, lowercase, halfwidth):
    directory = tmp_path / "model"
    _, vocab = _bert_tagger_dir(directory, lowercase=lowercase, halfwidth=halfwidth)
    loaded = CharVocab.load(directory / "vocab.txt", lowercase=lowercase, halfwidth=halfwidth)
    tokenizer = _hf_tokenizer(directory)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(ALPHABET, max_size=40).map("".join))
    def check(text):
        encoded = tokenizer(text, return_offsets_mapping=True)
        assert encoded["input_ids"] == [vocab.cls_id, *loaded.encode(text), vocab.sep_id], text
        assert encoded["offset_mapping"][1:-1] == [(i, i + 1) for i in range(len(text))]

    check()
    for text in ("ＡＢＣ１２３ abc", "Σσ İ ß", "A\u3000B\tC", "   ", ""):
        assert tokenizer(text)["input_ids"] == [vocab.cls_id, *loaded.encode(text), vocab.sep_id]


def test_spaces_are_tokens_and_literal_special_tokens_are_the_documented_difference(bert_dir):
    directory, _, vocab = bert_dir
    tokenizer = _hf_tokenizer(directory)
    text = "王芳 在\t广州\u3000。"
    ids = tokenizer(text)["input_ids"]
    assert ids == [vocab.cls_id, *vocab.encode(text), vocab.sep_id]
    assert [tokenizer.convert_ids_to_tokens(i) for i in ids].count("[SPACE]") == 3
    assert tokenizer.decode(ids, skip_special_tokens=True) == "王芳 在 广州 。"
    pair = tokenizer("王芳", "广州")
    assert pair["input_ids"] == [vocab.cls_id, *vocab.encode("王芳"), vocab.sep_id,
                                 *vocab.encode("广州"), vocab.sep_id]
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    # as every BERT tokenizer, a special token written in the text is that token (cner: chars)
    assert tokenizer("[CLS]")["input_ids"] == [vocab.cls_id, vocab.cls_id, vocab.sep_id]
    assert len(vocab.encode("[CLS]")) == 5


# -- BiLSTM: cner-only --------------------------------------------------------------------------

def test_a_bilstm_directory_says_it_is_cner_only(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    vocab = CharVocab.build(TEXTS)
    meta = _meta()
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=len(vocab), embedding_size=8, hidden_size=8))
    model = build_tagger(encoder, meta, Featurizer(vocab)).eval()
    directory = save_model_dir(model, vocab, meta, tmp_path / "model")
    config = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
    assert config["model_type"] == "cner-bilstm" and "cner-only" in config["cner_only"]
    assert "Tagger.load" in config["cner_only"]
    assert config["id2label"]["1"] == "B-LOC"
    with pytest.raises(ValueError, match="cner-bilstm"):
        AutoModel.from_pretrained(str(directory))
    card = (directory / CARD).read_text("utf-8")
    assert "**This is a cner-only model.**" in card
    tokenizer = AutoTokenizer.from_pretrained(str(directory))  # the vocabulary still is usable
    assert tokenizer("北京")["input_ids"] == [vocab.cls_id, *vocab.encode("北京"), vocab.sep_id]
    loaded, _, _ = load_tagger_dir(directory)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


# -- directories written before this layout -------------------------------------------------------

def _legacy_copy(directory: Path, target: Path) -> Path:
    """``directory`` as the previous cner wrote it: one model.safetensors under cner's names
    (no metadata), the encoder's own config.json, no head file, tokenizer or card."""
    model, _, meta = (load_tagger_dir if read_meta(directory).task == "ner"
                      else load_classifier_dir)(directory)
    target.mkdir()
    for name in ("vocab.txt", META, "bigrams.txt"):
        if (directory / name).is_file():
            shutil.copy(directory / name, target / name)
    values = json.loads((directory / META).read_text("utf-8"))
    values.pop("provenance")
    (target / META).write_text(json.dumps(values), "utf-8")
    model.encoder.config.to_json_file(str(target / ENCODER_CONFIG))
    save_state(model, target / WEIGHTS)
    return target


def test_a_directory_written_before_the_hf_layout_still_loads(bert_dir, tmp_path):
    from safetensors.torch import load_file

    directory, model, vocab = bert_dir
    legacy = _legacy_copy(directory, tmp_path / "legacy")
    assert any(k.startswith("encoder.embeddings.") for k in load_file(str(legacy / WEIGHTS)))
    loaded, _, meta = load_tagger_dir(legacy)
    assert meta.provenance is None
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    new = Tagger.load(directory, precision="fp32")
    old = Tagger.load(legacy, precision="fp32")
    assert list(old.pipe(TEXTS)) == list(new.pipe(TEXTS))
    # as model.encoder to train from, either layout gives the trained encoder
    for source in (legacy, directory):
        encoder = pretrained_encoder(str(source))
        for name, tensor in model.encoder.state_dict().items():
            assert torch.equal(encoder.state_dict()[name], tensor), (source, name)
    # and can be written again in the current layout
    again = rewrite_model_dir(legacy, tmp_path / "again")
    assert (again / HEAD_WEIGHTS).is_file() and (again / TOKENIZER).is_file()
    assert list(Tagger.load(again, precision="fp32").pipe(TEXTS)) == list(new.pipe(TEXTS))


def test_a_missing_head_file_is_named(bert_dir, tmp_path):
    directory, _, _ = bert_dir
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    (copy / HEAD_WEIGHTS).unlink()
    with pytest.raises(ModelError, match=rf"\({HEAD_WEIGHTS} is missing\).*missing \['crf\."):
        load_tagger_dir(copy)


# -- provenance and the model card -----------------------------------------------------------------

def test_a_trained_model_records_its_provenance_and_card(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    argv = ["train", "-c", str(ROOT / "configs" / "tiny-cpu.yaml"),
            "--train", str(SAMPLE / "train.conll"), "--dev", str(SAMPLE / "dev.conll"),
            "--set", "data.test=null", "--set", "model.hidden_size=16",
            "--set", "model.num_layers=1", "--set", "model.num_heads=2",
            "--set", "model.intermediate_size=32", "--set", "training.max_steps=4",
            "--set", "training.eval_every=4", "--set", "training.precision=fp32",
            "--set", "training.threads=1", "-o", str(run_dir), "-q"]
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/cner", *argv])
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    model_dir = run_dir / "model"
    meta = read_meta(model_dir)
    provenance = meta.provenance
    assert provenance.command == ["cner", *argv]
    digest = hashlib.sha256((SAMPLE / "train.conll").read_bytes()).hexdigest()
    assert [(d.split, Path(d.path).name, d.sha256) for d in provenance.data][0] == \
        ("train", "train.conll", digest)
    assert {d.split for d in provenance.data} == {"train", "dev"}
    assert {"torch", "transformers", "cner", "python"} <= set(provenance.versions)
    card = (model_dir / CARD).read_text("utf-8")
    metrics = json.loads((model_dir / "metrics.json").read_text("utf-8"))
    for needle in (digest, "cner train -c", "Entity types", "`B-PER`", "`BIO`",
                   "Tagger.load", "AutoModelForTokenClassification", "| precision |",
                   f"| {provenance.versions['transformers']} |", "trained from scratch"):
        assert needle in card, needle
    for label in metrics["per_type"]:
        assert f"| {label} |" in card
    # cner_model.json round-trips through the typed reader
    assert json.loads((model_dir / META).read_text("utf-8"))["provenance"]["data"][0]["sha256"] \
        == digest


def test_the_api_records_no_command(tmp_path):
    provenance = training_provenance({"train": SAMPLE / "train.conll", "dev": None,
                                      "test": tmp_path / "absent.conll"})
    assert provenance.command is None and [d.split for d in provenance.data] == ["train"]
    model, vocab = _bert_tagger_dir(tmp_path / "plain")
    card = (tmp_path / "plain" / CARD).read_text("utf-8")
    assert "Not recorded" in card and "Python API" in card


# -- hub ids --------------------------------------------------------------------------------------

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(cache: Path, repo: str, directory: Path) -> Path:
    owner, name = repo.split("/")
    root = cache / f"models--{owner}--{name}"
    snapshot = root / "snapshots" / REVISION
    shutil.copytree(directory, snapshot)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(REVISION)
    return snapshot


def test_a_hub_id_loads_from_the_hub_cache(bert_dir, tmp_path, monkeypatch):
    directory, _, _ = bert_dir
    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/cner-tiny", directory)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    local = Tagger.load(directory, precision="fp32")
    remote = Tagger.load("someone/cner-tiny", precision="fp32")
    assert list(remote.pipe(TEXTS)) == list(local.pipe(TEXTS))
    (tmp_path / "x.txt").write_text("张伟在北京大学工作。\n", "utf-8")
    result = CliRunner().invoke(main, ["annotate", "x.txt", "--model", "someone/cner-tiny",
                                       "-o", "out.jsonl", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.jsonl").is_file()


def test_a_classifier_hub_id_loads_from_the_hub_cache(tmp_path, monkeypatch):
    vocab = CharVocab.build(TEXTS)
    meta = _meta("classification", options=ClassifierOptions(task="toy"))
    model = build_classifier(scratch_encoder(CFG, vocab), meta)
    directory = save_model_dir(model, vocab, meta, tmp_path / "model")
    _hub_cache(tmp_path / "hub", "someone/cner-senti", directory)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clf = Classifier.load("someone/cner-senti", precision="fp32")
    assert clf("很好").probabilities == Classifier.load(directory, precision="fp32")(
        "很好").probabilities


def test_an_uncached_hub_id_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="not in the hub cache while HF_HUB_OFFLINE is set") as exc:
        Tagger.load("someone/not-cached")
    assert "\n" not in str(exc.value)
    (tmp_path / "x.txt").write_text("北京\n", "utf-8")
    result = CliRunner().invoke(main, ["annotate", "x.txt", "-m", "someone/not-cached",
                                       "-o", "out.csv"])
    assert result.exit_code == 2
    assert result.output.startswith("error: no directory someone/not-cached here")
    assert len(result.output.strip().splitlines()) == 1
    # a path that does not look like a hub id is still just a missing directory
    with pytest.raises(ModelError, match="model directory runs/x/model not found"):
        Tagger.load("runs/x/model")


# -- cner push -----------------------------------------------------------------------------------

class FakeApi:
    """`HfApi.create_repo` and `HfApi.upload_folder`, recording what would be sent."""

    calls: list = []

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        FakeApi.calls.append(("upload_folder", kw, files))


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: FakeApi.create_repo(self, repo_id, **kw))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kw: FakeApi.upload_folder(self, **kw))
    return FakeApi.calls


def test_push_uploads_the_model_directory(bert_dir, tmp_path, fake_hub):
    directory, _, _ = bert_dir
    result = CliRunner().invoke(main, ["push", str(directory), "someone/cner-tiny", "--private",
                                       "--token", "hf_xxx"])
    assert result.exit_code == 0, result.output
    assert "https://huggingface.co/someone/cner-tiny" in result.output
    (create, repo_id, kw), (upload, args, files) = fake_hub
    assert (create, repo_id) == ("create_repo", "someone/cner-tiny")
    assert kw["private"] is True and kw["exist_ok"] is True and kw["token"] == "hf_xxx"
    assert args["repo_id"] == "someone/cner-tiny" and args["token"] == "hf_xxx"
    assert sorted(files) == sorted(p.name for p in directory.iterdir())
    assert sorted(args["allow_patterns"]) == sorted(files)
    assert "bigrams.txt" in args["delete_patterns"] and "model.safetensors" not in \
        args["delete_patterns"]
    for name, content in files.items():
        if name != CARD:
            assert content == (directory / name).read_bytes(), name
    assert 'Tagger.load("someone/cner-tiny")' in files[CARD].decode()
    assert not list(directory.parent.glob(".cner-push-*"))  # the staging folder is gone


def test_push_converts_an_earlier_layout_and_refuses_bad_input(bert_dir, tmp_path, fake_hub):
    directory, _, _ = bert_dir
    legacy = _legacy_copy(directory, tmp_path / "legacy")
    result = CliRunner().invoke(main, ["push", str(legacy), "someone/old"])
    assert result.exit_code == 0, result.output
    files = fake_hub[-1][2]
    assert {HEAD_WEIGHTS, TOKENIZER, CARD} <= set(files)
    assert b"cner_layout" in files[WEIGHTS][:2000]
    result = CliRunner().invoke(main, ["push", str(directory), "not a repo"])
    assert result.exit_code == 2 and "is not a hub repository id" in result.output
    result = CliRunner().invoke(main, ["push", str(tmp_path / "nothing"), "someone/x"])
    assert result.exit_code == 2 and "not found" in result.output
