"""Reliability catalogue: a model directory that does not fit its weights is refused, not used.

A vocabulary, bigram list or label list cut short (or taken from another model) used to load
without complaint and annotate with silently worse scores; now loading checks each against
the weights' shapes and fails with one line naming the file. ``cner_model.json`` is typed
(`NerFeatures`, `ClassifierOptions`): unknown keys are refused, directories written before it
was typed (an ``extra`` dict) still load. Model directories get the modes an ordinary
``mkdir``/``open`` would give them, not `tempfile.mkdtemp`'s 0700.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reliability_catalogue import MODEL, Case, check_case
from cner.config import ModelConfig
from cner.encoding.features import Featurizer
from cner.encoding.vocab import CharVocab
from cner.errors import ModelError
from cner.inference.tagger import Tagger
from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder
from cner.models.encoders import scratch_encoder
from cner.models.metadata import ClassifierOptions, ModelMeta, NerFeatures
from cner.models.modeldir import (BIGRAMS, ENCODER_CONFIG, META, VOCAB, build_classifier,
                                  build_tagger, load_classifier_dir, load_tagger_dir, read_meta,
                                  save_model_dir)
from cner.schemes import label_set

NEWS = "张伟在北京大学工作。\n李娜去了上海。\n王芳在广州市人民医院上班。\n"
TEXTS = ["张伟在北京大学工作。", "李娜去了上海。", "王芳在广州市人民医院上班。"]


def _json_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def corrupt(model_dir: Path) -> None:
        meta = json.loads((model_dir / META).read_text("utf-8"))
        edit(meta)
        (model_dir / META).write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
    return corrupt


def _first_lines(name: str, n: int) -> Callable[[Path], None]:
    def corrupt(model_dir: Path) -> None:
        lines = (model_dir / name).read_text("utf-8").split("\n")[:n]
        (model_dir / name).write_text("\n".join(lines) + "\n", "utf-8")
    return corrupt


def _encoder_config(key: str, value) -> Callable[[Path], None]:
    def corrupt(model_dir: Path) -> None:
        config = json.loads((model_dir / ENCODER_CONFIG).read_text("utf-8"))
        config[key] = value
        (model_dir / ENCODER_CONFIG).write_text(json.dumps(config), "utf-8")
    return corrupt


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    def corrupt(model_dir: Path) -> None:
        (model_dir / name).write_bytes(content)
    return corrupt


ANNOTATE = ["annotate", "x.txt", "-m", MODEL, "-o", "out.csv", "--precision", "fp32"]
# (case, what is done to a copy of the tiny model first)
CASES = [
    (Case("vocab.txt cut to 50 lines", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: \S*vocab\.txt has 50 tokens but the model's embedding has [\d,]+ rows",
          absent=("out.csv",)),
     _first_lines(VOCAB, 50)),
    (Case("a tag dropped from cner_model.json", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: \S*cner_model\.json lists \d+ tags but the tag layer in model\.safetensors "
          r"has \d+ outputs", absent=("out.csv",)),
     _json_edit(lambda meta: meta["labels"].pop())),
    (Case("an unknown key in cner_model.json", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: \S*cner_model\.json: unknown key\(s\) 'colour'", absent=("out.csv",)),
     _json_edit(lambda meta: meta.update(colour="blue"))),
    (Case("an unknown feature in cner_model.json", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: \S*cner_model\.json features: unknown key\(s\) 'trigrams'",
          absent=("out.csv",)),
     _json_edit(lambda meta: meta["features"].update(trigrams=True))),
    (Case("a wrongly typed value in cner_model.json", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: \S*cner_model\.json: max_length must be an integer, found '128'",
          absent=("out.csv",)),
     _json_edit(lambda meta: meta.update(max_length="128"))),
    (Case("cner_model.json is not JSON", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: \S*cner_model\.json is not a cner model description", absent=("out.csv",)),
     _write(META, b"{\"task\": ")),
    (Case("vocab.txt is not UTF-8", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: vocabulary file \S*vocab\.txt is not UTF-8 \(byte 6\)", absent=("out.csv",)),
     _write(VOCAB, b"[PAD]\n\xff\xfe\n")),
    (Case("vocab.txt lacks the special tokens", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: vocabulary file \S*vocab\.txt: vocabulary lacks the special token",
          absent=("out.csv",)),
     _write(VOCAB, "甲\n乙\n".encode())),
    (Case("config.json of another size than the weights", {"x.txt": NEWS}, ANNOTATE, 2,
          r"error: weights \S*model\.safetensors do not fit the model: "
          r"\S*word_embeddings\.weight is \(\d+, 32\) in the file, \(60, 32\)",
          absent=("out.csv",)),
     _encoder_config("vocab_size", 60)),
]


@pytest.mark.parametrize("case, corrupt", CASES, ids=[str(c) for c, _ in CASES])
def test_a_broken_model_directory_is_refused(case, corrupt, tiny_model, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    corrupt(model_dir)
    check_case(case, tmp_path / "case", model_dir)


def test_a_directory_written_before_the_metadata_was_typed_still_loads(tiny_model, tmp_path):
    """The previous version's cner_model.json: an ``extra`` dict and no vocab_size."""
    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_model, legacy)
    meta = json.loads((legacy / META).read_text("utf-8"))
    assert set(meta["features"]) == {"bigrams", "word_boundaries", "lexicon",
                                     "lexicon_dictionary"}
    meta["extra"] = meta.pop("features")
    meta.pop("vocab_size")
    (legacy / META).write_text(json.dumps(meta), "utf-8")
    assert read_meta(legacy) == replace(read_meta(tiny_model), vocab_size=None)
    new = Tagger.load(tiny_model, precision="fp32")
    old = Tagger.load(legacy, precision="fp32")
    assert list(old.pipe(TEXTS)) == list(new.pipe(TEXTS))
    # and an even older one without extra at all
    meta.pop("extra")
    (legacy / META).write_text(json.dumps(meta), "utf-8")
    assert read_meta(legacy).features == NerFeatures()


def test_legacy_extra_with_an_unknown_key_names_the_file(tiny_model, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_model, legacy)
    meta = json.loads((legacy / META).read_text("utf-8"))
    meta["extra"] = {**meta.pop("features"), "pooling": "mean"}
    (legacy / META).write_text(json.dumps(meta), "utf-8")
    with pytest.raises(ModelError, match=rf"{META} extra: unknown key\(s\) 'pooling'"):
        Tagger.load(legacy)


# -- models built here in milliseconds, for what the tiny model does not have -----------------

def _vocab() -> CharVocab:
    return CharVocab.build(TEXTS)


def _bigram_tagger_dir(directory: Path) -> Path:
    torch.manual_seed(0)
    vocab = _vocab()
    featurizer = Featurizer(vocab, bigrams=Featurizer.build_bigrams(TEXTS, vocab, min_count=1))
    tags = label_set(["LOC", "PER"], "bio")
    meta = ModelMeta(task="ner", labels=tags, scheme="bio", head="crf", dropout=0.0,
                     lowercase=False, halfwidth=False, max_length=32, overlap=4,
                     features=NerFeatures.of(featurizer))
    encoder = BiLSTMEncoder(BiLSTMConfig(vocab_size=len(vocab), embedding_size=8, hidden_size=8))
    return save_model_dir(build_tagger(encoder, meta, featurizer), featurizer, meta, directory)


def _classifier_dir(directory: Path, *, labels=("neg", "pos"), encoder_vocab=None,
                    meta_extra: dict | None = None) -> Path:
    torch.manual_seed(0)
    vocab = _vocab()
    cfg = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    meta = ModelMeta(task="classification", labels=list(labels), scheme=None, head="single",
                     dropout=0.0, lowercase=False, halfwidth=False, max_length=32, overlap=0,
                     options=ClassifierOptions(task="toy", truncation="head", head_chars=16,
                                               pooling="max", positive="pos",
                                               token_pooling="mean"))
    model = build_classifier(scratch_encoder(cfg, encoder_vocab or vocab), meta)
    return save_model_dir(model, vocab, meta, directory)


def test_a_bigram_list_cut_short_is_refused(tmp_path):
    model_dir = _bigram_tagger_dir(tmp_path / "model")
    model, featurizer, meta = load_tagger_dir(model_dir)
    assert meta.features.bigrams and len(featurizer.bigrams) == \
        model.bigram_embeddings.num_embeddings
    n = len(featurizer.bigrams)
    _first_lines(BIGRAMS, 10)(model_dir)
    with pytest.raises(ModelError, match=rf"{BIGRAMS} has 10 bigrams but the model's bigram "
                                         rf"embedding has {n} rows"):
        load_tagger_dir(model_dir)


def test_a_missing_bigram_list_is_refused(tmp_path):
    model_dir = _bigram_tagger_dir(tmp_path / "model")
    (model_dir / BIGRAMS).unlink()
    with pytest.raises(ModelError, match=f"lacks {BIGRAMS}, which its model uses"):
        load_tagger_dir(model_dir)


def test_classifier_options_round_trip_and_labels_must_fit_the_head(tmp_path):
    model_dir = _classifier_dir(tmp_path / "model")
    _, _, meta = load_classifier_dir(model_dir)
    assert meta.options == ClassifierOptions("toy", "head", 16, "max", "pos", "mean")
    assert meta.features is None and meta.vocab_size == len(_vocab())
    _json_edit(lambda m: m["labels"].append("neutral"))(model_dir)
    with pytest.raises(ModelError, match=rf"{META} lists 3 labels but the classifier layer in "
                                         r"model\.safetensors has 2 outputs"):
        load_classifier_dir(model_dir)


def test_a_legacy_classifier_directory_gets_its_options(tmp_path):
    model_dir = _classifier_dir(tmp_path / "model")
    meta = json.loads((model_dir / META).read_text("utf-8"))
    meta["extra"] = meta.pop("options")
    del meta["extra"]["token_pooling"]  # written before classifiers could pool positions
    meta.pop("vocab_size")
    (model_dir / META).write_text(json.dumps(meta), "utf-8")
    model, _, loaded = load_classifier_dir(model_dir)
    assert loaded.options == ClassifierOptions("toy", "head", 16, "max", "pos", "cls")
    assert model.pooling == "max" and model.token_pooling == "cls"


@pytest.mark.parametrize("field,value", [("token_pooling", "auto"), ("token_pooling", "sum"),
                                         ("pooling", "median"), ("truncation", "middle")])
def test_an_unknown_classifier_option_value_names_the_file(tmp_path, field, value):
    """"auto" is a config choice, resolved before saving: never a saved value."""
    model_dir = _classifier_dir(tmp_path / "model")
    _json_edit(lambda m: m["options"].update({field: value}))(model_dir)
    with pytest.raises(ModelError, match=rf"{META} options: {field} must be one of "
                                         rf".*found '{value}'"):
        load_classifier_dir(model_dir)


def test_an_embedding_with_spare_rows_loads_but_a_cut_vocabulary_does_not(tmp_path):
    """Pretrained encoders may have more embedding rows than vocab.txt has tokens: what
    cner_model.json records (vocab_size) is then what vocab.txt must hold."""
    vocab = _vocab()
    padded = CharVocab(vocab.tokens + tuple(f"[unused{i}]" for i in range(8)))
    model_dir = _classifier_dir(tmp_path / "model", encoder_vocab=padded)
    model, featurizer, meta = load_classifier_dir(model_dir)
    assert meta.vocab_size == len(featurizer.vocab) == len(vocab)
    assert model.encoder.get_input_embeddings().num_embeddings == len(vocab) + 8
    _first_lines(VOCAB, 10)(model_dir)
    with pytest.raises(ModelError, match=rf"{VOCAB} has 10 tokens but the model's embedding "
                                         rf"has {len(vocab) + 8} rows"):
        load_classifier_dir(model_dir)


def test_save_refuses_a_vocabulary_larger_than_the_embedding(tmp_path):
    vocab = _vocab()
    small = CharVocab(vocab.tokens[:8])
    cfg = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    meta = ModelMeta(task="classification", labels=["a", "b"], scheme=None, head="single",
                     dropout=0.0, lowercase=False, halfwidth=False, max_length=32, overlap=0)
    model = build_classifier(scratch_encoder(cfg, small), meta)
    with pytest.raises(ModelError, match=f"has {len(vocab)} tokens but the model's embedding "
                                         "has 8 rows"):
        save_model_dir(model, vocab, meta, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind


# -- modes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, dir_mode, file_mode",
                         [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640), (0o002, 0o775, 0o664)])
def test_a_model_directory_gets_ordinary_modes(tmp_path, umask, dir_mode, file_mode):
    before = os.umask(umask)
    try:
        model_dir = _bigram_tagger_dir(tmp_path / "model")
        again = _bigram_tagger_dir(tmp_path / "model")  # replacing one keeps them too
    finally:
        os.umask(before)
    assert again == model_dir
    assert stat.S_IMODE(model_dir.stat().st_mode) == dir_mode
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == sorted(["model.safetensors", "cner_head.safetensors", "config.json", VOCAB,
                            BIGRAMS, META, "README.md", "tokenizer.json", "tokenizer_config.json"])
    for path in model_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path.name
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary or old copy left


def test_the_trained_tiny_model_has_ordinary_modes(tiny_model):
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(tiny_model.stat().st_mode) == 0o777 & ~umask
    for path in tiny_model.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


# -- the run directory --------------------------------------------------------------------------

def test_run_bigrams_use_the_model_directory_name_and_survive_resume(tmp_path):
    from cner.config import Config
    from cner.data.example import Example
    from cner.tasks.ner import run_featurizer

    cfg = Config()
    cfg.model.bigrams = True
    cfg.model.bigram_min_count = 1
    vocab = _vocab()
    train = [Example(text=t, spans=[]) for t in TEXTS]
    fresh = run_featurizer(tmp_path, vocab, cfg, train, fresh=True)
    assert [p.name for p in tmp_path.iterdir()] == [BIGRAMS]  # written atomically: no leftovers
    resumed = run_featurizer(tmp_path, vocab, cfg, [], fresh=False)
    assert resumed.bigrams == fresh.bigrams and len(fresh.bigrams) > 2


def test_vocab_with_crlf_line_ends_reads_the_same_tokens(tmp_path):
    vocab = _vocab()
    path = tmp_path / VOCAB
    path.write_bytes(("\r\n".join(vocab.tokens) + "\r\n").encode())
    assert CharVocab.load(path).tokens == vocab.tokens
