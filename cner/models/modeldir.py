"""The model directory: everything needed to reload a model with no network.

This module owns the directory: its file names (a run directory reuses them for the files it
keeps beside its checkpoints), writing it (`save_model_dir`), reading it back
(`load_tagger_dir`, `load_classifier_dir`), the builders that turn its metadata into a
`TokenTagger` or `SequenceClassifier` (used both when training starts and when a saved model
is loaded, so both build the same model) and writing a directory of an earlier cner again in
the current layout (`rewrite_model_dir`).

``model.safetensors`` (the encoder under the names transformers uses, and the tag or class
layer), ``cner_head.safetensors`` (CRF transitions, feature embeddings): `cner.models.weights`.
``config.json`` (the encoder's Hugging Face config with the labels): `cner.models.hfconfig`.
``vocab.txt``; ``tokenizer.json`` and ``tokenizer_config.json`` (the same vocabulary for
transformers' ``AutoTokenizer``): `cner.models.tokenizer`. ``bigrams.txt`` (models with
bigram features). ``cner_model.json``: `cner.models.metadata.ModelMeta`. ``README.md``: the
model card, `cner.models.card`. ``cner_config.yaml`` (the run's config) and ``metrics.json``
(from training). ``onnx/model.onnx`` and ``onnx/model.onnx.json``: `cner export --onnx`
(`cner.runtime.onnxexport`), optional.

A directory is written under a temporary name and renamed into place, so a crash never
leaves a half-written model; it gets the modes a plain ``mkdir``/``open`` would give it.
Loading checks that the vocabulary, the bigram list and the labels fit the weights, so a
truncated or mismatched file is a one-line `ModelError` naming it, not silently worse output.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from cner.encoding.features import Featurizer
from cner.encoding.vocab import CharVocab, read_utf8
from cner.errors import ModelError
from cner.fileio import atomic_write
from cner.models.card import PLACEHOLDER, model_card
from cner.models.hfconfig import empty_encoder, encoder_config_values
from cner.models.metadata import (CLASSIFICATION, NER, ClassifierOptions, ModelMeta, NerFeatures,
                                  Provenance, meta_from_dict, package_versions, utc_now)
from cner.models.tokenizer import save_tokenizer
from cner.models.weights import (load_dir_state, read_dir_state, saved_rows, split_state,
                                 write_weights)

WEIGHTS = "model.safetensors"
ENCODER_CONFIG = "config.json"
VOCAB = "vocab.txt"
BIGRAMS = "bigrams.txt"
META = "cner_model.json"
RUN_CONFIG = "cner_config.yaml"
METRICS = "metrics.json"
HEAD_WEIGHTS = "cner_head.safetensors"
CARD = "README.md"
TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
# cner export --onnx (`cner.runtime.onnxexport`): the encoder and tag layer as ONNX, in a
# subfolder, with a sidecar naming its inputs, opset and the checksums of the weights it came
# from (model.onnx.json). Optional; not among MODEL_FILES.
ONNX_DIR = "onnx"
ONNX_MODEL = "model.onnx"
ONNX_META_SUFFIX = ".json"
REQUIRED = (WEIGHTS, ENCODER_CONFIG, VOCAB, META)
# Every file a model directory may hold (what `cner push` uploads, and downloads read).
MODEL_FILES = [WEIGHTS, HEAD_WEIGHTS, ENCODER_CONFIG, VOCAB, BIGRAMS, META, RUN_CONFIG, METRICS,
               CARD, TOKENIZER, TOKENIZER_CONFIG]


def read_meta(directory: str | Path) -> ModelMeta:
    """The `ModelMeta` of a model directory, after checking that the directory has every
    file a model needs (the usual mistake: pointing at the run directory, not its model)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} not found",)
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"model directory {directory} lacks {', '.join(missing)}; point --model "
                         "at the 'model' folder that cner train wrote")
    path = directory / META
    try:
        values = json.loads(path.read_text("utf-8"))
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path} is not a cner model description: {exc}") from None
    return meta_from_dict(values, str(path))


# --- building models from metadata ------------------------------------------------------------

def build_tagger(encoder: nn.Module, meta: ModelMeta, featurizer: Featurizer, *,
                 unk_dropout: float = 0.0, unk_id: int = 0, tagger_class: type | None = None):
    """The `TokenTagger` ``meta`` describes over ``encoder`` (bigram embeddings sized by
    ``featurizer``'s bigram list); the same call at training time and at load time.
    ``tagger_class``: a subclass with another training loss and the same parameters (the
    student of `cner distill`), saved and loaded as a plain `TokenTagger`."""
    from cner.models.tagger import TokenTagger

    tagger_class = tagger_class or TokenTagger
    features = meta.features or NerFeatures()
    if features.bigrams != bool(featurizer.bigrams):
        raise ModelError(f"the model {'uses' if features.bigrams else 'has no'} bigram "
                         f"features but its featurizer {'has none' if features.bigrams else 'has'}")
    return tagger_class(encoder, meta.labels, scheme=meta.scheme or "bio", head=meta.head,
                       dropout=meta.dropout, n_bigrams=len(featurizer.bigrams or ()),
                       boundaries=features.word_boundaries, lexicon=features.lexicon,
                       unk_dropout=unk_dropout, unk_id=unk_id)


def build_classifier(encoder: nn.Module, meta: ModelMeta):
    """The `SequenceClassifier` ``meta`` describes over ``encoder``."""
    from cner.models.classifier import SequenceClassifier

    options = meta.options or ClassifierOptions()
    return SequenceClassifier(encoder, max(1, len(meta.labels)), kind=meta.head,
                              dropout=meta.dropout, pooling=options.pooling,
                              token_pooling=options.token_pooling)


def featurizer_for(vocab: CharVocab, features: NerFeatures,
                   bigrams: Sequence[str] | None = None) -> Featurizer:
    return Featurizer(vocab, bigrams=bigrams if features.bigrams else None,
                      boundaries=features.word_boundaries, lexicon=features.lexicon)


def as_featurizer(vocab: CharVocab | Featurizer) -> Featurizer:
    return vocab if isinstance(vocab, Featurizer) else Featurizer(vocab)


# --- files beside the weights -------------------------------------------------------------------

def save_bigrams(bigrams: Sequence[str], path: Path) -> None:
    with atomic_write(path) as handle:
        handle.write("\n".join(bigrams) + "\n")


def read_bigrams(path: Path) -> list[str]:
    return read_utf8(path, str(path)).split("\n")[:-1]


def save_json(values: dict, path: Path) -> None:
    with atomic_write(path) as handle:
        handle.write(json.dumps(values, indent=1))


def read_run_config(directory: Path):
    """The run's config saved in ``directory``, or None."""
    if not (directory / RUN_CONFIG).is_file():
        return None
    from cner.config import load_config  # on use: loading a model needs no YAML parser

    return load_config(directory / RUN_CONFIG)


def render_card(directory: str | Path, *, model_ref: str = PLACEHOLDER) -> str:
    """The model card of an existing model directory, from its files (``model_ref``: how its
    snippets name the model, e.g. its hub id)."""
    directory = Path(directory)
    meta = read_meta(directory)
    config = json.loads((directory / ENCODER_CONFIG).read_text("utf-8"))
    metrics = None
    if (directory / METRICS).is_file():
        metrics = json.loads((directory / METRICS).read_text("utf-8"))
    return model_card(meta, config, metrics, run_config=read_run_config(directory),
                      model_ref=model_ref)


# --- writing -------------------------------------------------------------------------------------

def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:  # Linux: os.umask would change the process-wide value, if only for a moment
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def ordinary_modes(directory: Path) -> None:
    """Give ``directory`` (made by `tempfile.mkdtemp`, 0700) and everything in it the modes a
    plain ``mkdir``/``open`` would under the current umask: 0777/0666 less the umask."""
    umask = current_umask()
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(Path(root) / name, 0o777 & ~umask)
        for name in files:
            os.chmod(Path(root) / name, 0o666 & ~umask)
    os.chmod(directory, 0o777 & ~umask)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place, replacing any previous one."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def new_dir(directory: Path) -> Iterator[Path]:
    """A temporary folder beside ``directory`` (whose parent must exist) to write its files
    in: when the block ends it gets ordinary modes and replaces ``directory``; when the block
    fails it is removed and ``directory`` is left as it was. Model and encoder directories
    (`cner.models.encoderdir`) are written so."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        yield tmp
        ordinary_modes(tmp)
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

def save_model_dir(model: nn.Module, vocab: CharVocab | Featurizer, meta: ModelMeta,
                   directory: str | Path, *, run_config=None, metrics: dict | None = None,
                   provenance: Provenance | None = None) -> Path:
    """Write a model directory (see the module docstring). ``provenance`` (training files,
    command: `training_provenance`) is recorded in ``cner_model.json`` and the model card;
    without it, and without one in ``meta``, only the package versions and the time are."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    featurizer = as_featurizer(vocab)
    meta = _meta_to_save(model, featurizer, meta, provenance)
    config_values = encoder_config_values(model.encoder, meta)
    with new_dir(directory) as tmp:
        _write_model(tmp, model, featurizer, meta, config_values)
        if run_config is not None:
            run_config.save(tmp / RUN_CONFIG)
        if metrics is not None:
            save_json(metrics, tmp / METRICS)
        with atomic_write(tmp / CARD) as handle:
            handle.write(model_card(meta, config_values, metrics, run_config=run_config))
    return directory


def _meta_to_save(model: nn.Module, featurizer: Featurizer, meta: ModelMeta,
                  provenance: Provenance | None) -> ModelMeta:
    """``meta`` with the vocabulary size (when not set) and the provenance, saved now."""
    rows = model.encoder.get_input_embeddings().num_embeddings
    if len(featurizer.vocab) > rows:
        raise ModelError(f"the vocabulary has {len(featurizer.vocab):,} tokens but the model's "
                         f"embedding has {rows:,} rows")
    if meta.vocab_size is None:
        meta = replace(meta, vocab_size=len(featurizer.vocab))
    provenance = provenance or meta.provenance or Provenance(versions=package_versions())
    return replace(meta, provenance=replace(provenance, created=utc_now()))


def _write_model(tmp: Path, model: nn.Module, featurizer: Featurizer, meta: ModelMeta,
                 config_values: dict) -> None:
    """The files a model needs to load: weights, config, vocabulary, tokenizer, bigrams and
    ``cner_model.json``."""
    main, head = split_state(model, meta)
    write_weights(main, tmp / WEIGHTS)
    if head:
        write_weights(head, tmp / HEAD_WEIGHTS)
    save_json(config_values, tmp / ENCODER_CONFIG)
    featurizer.vocab.save(tmp / VOCAB)
    save_tokenizer(featurizer.vocab, meta.max_length, tokenizer=tmp / TOKENIZER,
                   config=tmp / TOKENIZER_CONFIG)
    if featurizer.bigrams:
        save_bigrams(featurizer.bigrams, tmp / BIGRAMS)
    with atomic_write(tmp / META) as handle:
        handle.write(meta.to_json())


def rewrite_model_dir(source: str | Path, directory: str | Path) -> Path:
    """Write the model directory ``source`` again as ``directory`` in the current layout (a
    directory written by an earlier cner becomes loadable by transformers); its run config and
    metrics are kept."""
    source = Path(source)
    meta = read_meta(source)
    load = load_tagger_dir if meta.task == NER else load_classifier_dir
    model, featurizer, meta = load(source)
    metrics = None
    if (source / METRICS).is_file():
        try:
            metrics = json.loads((source / METRICS).read_text("utf-8"))
        except (OSError, ValueError):  # the model matters, its old scores do not
            metrics = None
    return save_model_dir(model, featurizer, meta, directory,
                          run_config=read_run_config(source), metrics=metrics)


# --- loading -----------------------------------------------------------------------------------

def load_featurizer(directory: Path, meta: ModelMeta) -> Featurizer:
    vocab = CharVocab.load(directory / VOCAB, lowercase=meta.lowercase, halfwidth=meta.halfwidth)
    features = meta.features or NerFeatures()
    bigrams = None
    if features.bigrams:
        if not (directory / BIGRAMS).is_file():
            raise ModelError(f"model directory {directory} lacks {BIGRAMS}, which its model uses")
        bigrams = read_bigrams(directory / BIGRAMS)
    saved = features.lexicon_dictionary
    if features.lexicon and saved:
        from cner.encoding.lexicon import dictionary_fingerprint
        if saved != dictionary_fingerprint():
            warnings.warn(f"{directory} was trained with another jieba dictionary ({saved}, "
                          f"installed: {dictionary_fingerprint()}): its lexicon features will "
                          "differ; install the jieba version it was trained with", stacklevel=2)
    return featurizer_for(vocab, features, bigrams)


def check_sizes(directory: Path, model: nn.Module, featurizer: Featurizer, meta: ModelMeta,
                state: Mapping[str, torch.Tensor], *, layer_file: str = WEIGHTS) -> None:
    """The vocabulary, the bigram list and the labels must fit the saved weights: a file cut
    short or taken from another model would otherwise load and give silently worse output.
    ``layer_file``: the file holding the tag or class layer, for the messages."""
    n_vocab = len(featurizer.vocab)
    rows = saved_rows(model, state, model.encoder.get_input_embeddings().weight)
    # cner's own encoders have one row per token; a pretrained encoder may have more rows
    # than its vocab.txt has tokens, which cner_model.json then records as vocab_size.
    expected = rows if meta.vocab_size is None else meta.vocab_size
    if n_vocab != rows and (n_vocab > rows or n_vocab != expected):
        raise ModelError(f"{directory / VOCAB} has {n_vocab:,} tokens but the model's embedding "
                         f"has {rows:,} rows")
    if n_vocab != expected:
        raise ModelError(f"{directory / VOCAB} has {n_vocab:,} tokens but {directory / META} "
                         f"records {expected:,}")
    bigram_embeddings = getattr(model, "bigram_embeddings", None)
    if bigram_embeddings is not None:
        n_bigrams = len(featurizer.bigrams or ())
        rows = saved_rows(model, state, bigram_embeddings.weight)
        if n_bigrams != rows:
            raise ModelError(f"{directory / BIGRAMS} has {n_bigrams:,} bigrams but the model's "
                             f"bigram embedding has {rows:,} rows")
    outputs = saved_rows(model, state, model.classifier.weight)
    if meta.task == NER:
        if len(meta.labels) != outputs:
            raise ModelError(f"{directory / META} lists {len(meta.labels)} tags but the tag "
                             f"layer in {layer_file} has {outputs} outputs")
    else:
        wanted = 1 if meta.head == "regression" else max(1, len(meta.labels))
        if wanted != outputs:
            raise ModelError(f"{directory / META} lists {len(meta.labels)} labels but the "
                             f"classifier layer in {layer_file} has {outputs} outputs")


def load_weights(directory: Path, model: nn.Module, featurizer: Featurizer, meta: ModelMeta
                 ) -> None:
    """Fill ``model`` with a directory's weights (either layout) after `check_sizes`."""
    saved = read_dir_state(directory / WEIGHTS, directory / HEAD_WEIGHTS)
    state = saved.for_model(model)
    check_sizes(directory, model, featurizer, meta, state,
                layer_file=saved.where("classifier.weight")[0].name)
    load_dir_state(model, saved, state)


def _load_dir(directory: str | Path, task: str, what: str, device: str | torch.device,
              build: Callable[[nn.Module, ModelMeta, Featurizer], nn.Module]):
    """``(model, Featurizer, ModelMeta)`` of a directory that must hold a ``task`` model,
    ``build`` over the saved encoder, in eval mode on ``device``."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta.task != task:
        raise ModelError(f"{directory} holds a {meta.task} model, not {what}")
    featurizer = load_featurizer(directory, meta)
    model = build(empty_encoder(directory / ENCODER_CONFIG), meta, featurizer)
    load_weights(directory, model, featurizer, meta)
    return model.to(device).eval(), featurizer, meta


def load_tagger_dir(directory: str | Path, *, device: str | torch.device = "cpu"):
    """``(TokenTagger, Featurizer, ModelMeta)`` from a model directory, in eval mode."""
    return _load_dir(directory, NER, "a NER tagger", device, build_tagger)


def load_classifier_dir(directory: str | Path, *, device: str | torch.device = "cpu"):
    """``(SequenceClassifier, Featurizer, ModelMeta)`` from a model directory, in eval mode."""
    return _load_dir(directory, CLASSIFICATION, "a classifier", device,
                     lambda encoder, meta, _featurizer: build_classifier(encoder, meta))
