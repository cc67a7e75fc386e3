"""The Hugging Face side of a model directory: what transformers and the hub read from it.

Weights. ``model.safetensors`` holds the encoder under the key names its transformers class
uses (``embeddings.word_embeddings.weight``, ``encoder.layer.0...``), so
``AutoModel.from_pretrained(DIR)`` loads the trained encoder; a pooler the transformers class
expects but cner never uses is written as an identity layer (``pooler_output`` is then
``tanh`` of the ``[CLS]`` state: it was not trained). The linear tag layer is saved as
``classifier.*`` when ``AutoModelForTokenClassification.from_pretrained(DIR)`` computes
exactly cner's emissions with it (a transformers encoder, no bigram, word-boundary or lexicon
inputs); otherwise, and for sequence classifiers (their head reads the ``[CLS]`` state, not
BERT's pooler), it is ``cner_classifier.*``, which transformers leaves alone rather than
misuse. The rest of cner's model (CRF transitions, feature embeddings) is in
``cner_head.safetensors``. Files carry ``{"format": "pt", "cner_layout": "hf-1"}`` as
safetensors metadata; a ``model.safetensors`` without it was written by an earlier cner
(every tensor under cner's own names, ``encoder.`` first) and is converted when read.

``config.json`` carries the real ``id2label``/``label2id`` and ``architectures``; a BiLSTM
model's says that it is a cner-only model. ``tokenizer.json`` (a `tokenizers` WordLevel
model over ``vocab.txt``) gives the ids of `CharVocab.encode`, one token per character.

Hub ids: `resolve_model_dir` turns ``owner/name`` (when no such directory exists here) into a
downloaded snapshot (`huggingface_hub.snapshot_download`: the hub cache and ``HF_HUB_OFFLINE``
are honoured); `push_model_dir` uploads a directory (`HfApi.upload_folder`).
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from cner.encoding.vocab import CLS, MASK, PAD, SEP, UNK, CharVocab, normalize_char
from cner.errors import ModelError

LAYOUT_KEY = "cner_layout"
LAYOUT = "hf-1"
SAFETENSORS_METADATA = {"format": "pt", LAYOUT_KEY: LAYOUT}
HF_CLASSIFIER = "classifier."  # the tag layer, where transformers' token classifier reads it
CNER_CLASSIFIER = "cner_classifier."  # a head transformers has no class for
ENCODER_PREFIX = "encoder."  # cner's own names: TokenTagger.encoder / SequenceClassifier.encoder

TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"

CNER_ONLY = ("a cner-only model (character BiLSTM encoder): transformers has no class for it; "
             "load it with cner: cner.Tagger.load(DIR) or cner annotate --model DIR")


# --- which transformers classes fit ----------------------------------------------------------

def is_transformers_encoder(encoder: nn.Module) -> bool:
    from transformers import PreTrainedModel

    return isinstance(encoder, PreTrainedModel)


_EXPECTED: dict[str, tuple] = {}


def _expected(config) -> tuple[dict, tuple | None, str, str | None]:
    """For a transformers encoder config: the shapes of its base model's state dict, the
    ``(in, bias?)`` of the token classifier's ``classifier`` layer (None when that class has
    none, or not a plain linear layer) and the two class names (built on the meta device,
    once per config)."""
    from transformers import AutoModel, AutoModelForTokenClassification

    key = config.to_json_string(use_diff=False)
    if key in _EXPECTED:
        return _EXPECTED[key]
    with torch.device("meta"):
        base = AutoModel.from_config(copy.deepcopy(config))
        shapes = {k: tuple(v.shape) for k, v in base.state_dict().items()}
        head, token_class = None, None
        tagged = copy.deepcopy(config)
        tagged.id2label, tagged.label2id = {0: "A", 1: "B"}, {"A": 0, "B": 1}
        try:
            model = AutoModelForTokenClassification.from_config(tagged)
        except (ValueError, KeyError, AttributeError, TypeError):  # no token-classification class
            model = None
        layer = getattr(model, "classifier", None)
        if isinstance(layer, nn.Linear) and layer.in_features == config.hidden_size:
            head, token_class = (layer.in_features, layer.bias is not None), type(model).__name__
    _EXPECTED[key] = shapes, head, type(base).__name__, token_class
    return _EXPECTED[key]


def token_classifier_fits(encoder: nn.Module, meta) -> bool:
    """Whether transformers' ``AutoModelForTokenClassification`` reproduces this NER model's
    emissions: a transformers encoder, no extra character features, a plain linear layer
    named ``classifier`` of the same shape."""
    features = meta.features
    if meta.task != "ner" or not is_transformers_encoder(encoder) or (features is not None and (
            features.bigrams or features.word_boundaries or features.lexicon)):
        return False
    _, head, _, token_class = _expected(encoder.config)
    return token_class is not None and head is not None and head[1]


# --- weights ---------------------------------------------------------------------------------

def split_state(model: nn.Module, meta) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(model.safetensors, cner_head.safetensors)`` tensors of a cner model (see the module
    docstring)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    main: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    layer_prefix = HF_CLASSIFIER if token_classifier_fits(model.encoder, meta) else CNER_CLASSIFIER
    for name, tensor in state.items():
        if name.startswith(ENCODER_PREFIX):
            main[name[len(ENCODER_PREFIX):]] = tensor
        elif name.startswith("classifier."):
            main[layer_prefix + name[len("classifier."):]] = tensor
        else:
            head[name] = tensor
    if is_transformers_encoder(model.encoder):
        main.update(_untrained_pooler(model.encoder, main))
    return main, head


def _untrained_pooler(encoder: nn.Module, main: Mapping[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
    """Identity weights for the pooler the transformers base class expects and cner dropped
    (`drop_pooler`), so that ``AutoModel`` finds every weight it needs."""
    shapes, _, _, _ = _expected(encoder.config)
    out = {}
    for name, shape in shapes.items():
        if name in main or not name.startswith("pooler."):
            continue
        dtype = encoder.get_input_embeddings().weight.dtype
        if len(shape) == 2 and shape[0] == shape[1]:
            out[name] = torch.eye(shape[0], dtype=dtype)
        elif len(shape) == 1:
            out[name] = torch.zeros(shape, dtype=dtype)
        else:  # a pooler of another form: leave it to transformers' initialisation
            return {}
    return out


def join_state(main: Mapping[str, torch.Tensor], head: Mapping[str, torch.Tensor]
               ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """cner's own state dict from the two files of this layout (the inverse of `split_state`;
    the untrained pooler is left for the caller to drop), and for each tensor from
    ``model.safetensors`` its name there."""
    state: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}
    for name, tensor in main.items():
        if name.startswith(HF_CLASSIFIER):
            own = "classifier." + name[len(HF_CLASSIFIER):]
        elif name.startswith(CNER_CLASSIFIER):
            own = "classifier." + name[len(CNER_CLASSIFIER):]
        else:
            own = ENCODER_PREFIX + name
        state[own], names[own] = tensor, name
    state.update(head)
    return state, names


# --- config.json -----------------------------------------------------------------------------

def hf_labels(meta) -> dict[str, dict]:
    labels = list(meta.labels) if meta.head != "regression" else []
    return {"id2label": {str(i): label for i, label in enumerate(labels)},
            "label2id": {label: i for i, label in enumerate(labels)}}


def encoder_config_values(encoder: nn.Module, meta) -> dict:
    """The ``config.json`` of a model directory: the encoder's config plus the labels, the
    transformers class that reads the directory (``architectures``) and what cner adds."""
    cner_info = {"task": meta.task, "head": meta.head, "scheme": meta.scheme,
                 "load_with": "cner.Tagger.load(DIR)" if meta.task == "ner"
                 else "cner.Classifier.load(DIR)"}
    if not is_transformers_encoder(encoder):
        from dataclasses import asdict

        values = asdict(encoder.config)
        values.update(hf_labels(meta))
        values.update(architectures=["CnerBiLSTM"], cner_only=CNER_ONLY, cner=cner_info)
        return values
    config = copy.deepcopy(encoder.config)
    labels = hf_labels(meta)
    if labels["id2label"]:
        config.id2label = {int(k): v for k, v in labels["id2label"].items()}
        config.label2id = labels["label2id"]
    elif meta.head == "regression":
        config.id2label, config.label2id = {0: "score"}, {"score": 0}
    _, _, base_class, token_class = _expected(encoder.config)
    fits = token_classifier_fits(encoder, meta)
    config.architectures = [token_class if fits else base_class]
    if meta.task == "classification":
        config.problem_type = {"multilabel": "multi_label_classification",
                               "regression": "regression"}.get(meta.head,
                                                               "single_label_classification")
    values = config.to_diff_dict()
    if not fits:
        cner_info["transformers"] = (
            "AutoModel.from_pretrained(DIR) loads the encoder only: "
            + ("the tag layer needs the character features cner adds to the input embeddings"
               if meta.task == "ner" else "the classifier reads last_hidden_state[:, 0] (no "
               "pooler) with the cner_classifier.* weights in model.safetensors"))
    values["cner"] = cner_info
    return values


def strip_cner_config(values: dict) -> dict:
    """A saved BiLSTM ``config.json`` without the keys only the ecosystem reads."""
    return {k: v for k, v in values.items()
            if k not in ("id2label", "label2id", "architectures", "cner_only", "cner")}


# --- tokenizer -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _whitespace() -> tuple[str, ...]:
    """Every character `str.isspace` accepts (all below U+3001)."""
    return tuple(chr(c) for c in range(0x3001) if chr(c).isspace())


@functools.lru_cache(maxsize=4)
def _changed_by(lowercase: bool, halfwidth: bool) -> tuple[tuple[str, str], ...]:
    """``(char, look-up form)`` for every non-space character `normalize_char` changes, when
    the form is a fixed point (so one replacement step gives cner's look-up form)."""
    candidates: set[str] = set()
    if lowercase:
        candidates.update(c for c in map(chr, range(0x110000)) if c.lower() != c)
    if halfwidth:
        candidates.update(map(chr, range(0xFF01, 0xFF5F)))
    out = []
    for char in sorted(candidates):
        norm = normalize_char(char, lowercase=lowercase, halfwidth=halfwidth)
        if norm != char and not char.isspace() and normalize_char(
                norm, lowercase=lowercase, halfwidth=halfwidth) == norm:
            out.append((char, norm))
    return tuple(out)


def _char_class(chars) -> str:
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"


def build_tokenizer(vocab: CharVocab):
    """A `tokenizers.Tokenizer` that gives `CharVocab.encode`'s ids, one token per character.

    A WordLevel model over the vocabulary; the normaliser replaces each character by cner's
    look-up form where that form is in the vocabulary (full-width -> half-width and lower-case
    only if the model was trained so; a character whose look-up form is not in the vocabulary
    is looked up as it is, as cner does), and every whitespace character by the vocabulary's
    space token (``[SPACE]``, or ``[unused1]`` in hub vocabularies; ``[UNK]`` when it has
    neither). The pre-tokeniser splits every character; the post-processor adds
    ``[CLS] ... [SEP]`` (a pair: ``[CLS] a [SEP] b [SEP]``, type ids 0 then 1).

    How it differs from cner, which reads every character of the text as text: the special
    tokens written literally in a text (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``
    and the space token) are read as that one token, as every BERT tokenizer does; cner reads
    them character by character. Whitespace is never dropped: a space is one token, like any
    other character, so token ``i + 1`` is character ``i`` of the text.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    tokens = list(vocab.tokens)
    index = {tok: i for i, tok in enumerate(tokens)}
    if len(index) != len(tokens):
        # a duplicated line: cner looks up its last occurrence, so must the tokenizer
        tokens = [tok if index[tok] == i else f"[cner-duplicate-{i}]" for i, tok in
                  enumerate(tokens)]
    tokenizer = Tokenizer(models.WordLevel({tok: i for i, tok in enumerate(tokens)},
                                           unk_token=UNK))
    space = tokens[vocab.space_id]
    steps = []
    if vocab.space_id != vocab.unk_id:
        steps.append(normalizers.Replace(Regex(_char_class(_whitespace())), space))
    else:  # a character the vocabulary lacks reads as [UNK]
        absent = next(c for c in map(chr, range(0xE000, 0xF900)) if c not in index)
        steps.append(normalizers.Replace(Regex(_char_class(_whitespace())), absent))
    targets: dict[str, list[str]] = {}
    for char, norm in _changed_by(vocab.lowercase, vocab.halfwidth):
        if norm in index:
            targets.setdefault(norm, []).append(char)
    for norm, chars in sorted(targets.items()):
        steps.append(normalizers.Replace(Regex(_char_class(chars)), norm))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    specials = [tok for tok in (PAD, UNK, CLS, SEP, MASK) if tok in index]
    tokenizer.add_special_tokens([AddedToken(tok, special=True, normalized=False)
                                  for tok in specials])
    if vocab.space_id != vocab.unk_id:
        tokenizer.add_tokens([AddedToken(space, special=False, normalized=True)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, vocab.cls_id), (SEP, vocab.sep_id)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace(space, " "), decoders.Fuse()])
    return tokenizer


def tokenizer_config(vocab: CharVocab, max_length: int) -> dict:
    values = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
              "padding_side": "right", "clean_up_tokenization_spaces": False}
    for key, tok in (("pad_token", PAD), ("unk_token", UNK), ("cls_token", CLS),
                     ("sep_token", SEP), ("mask_token", MASK)):
        if tok in vocab.tokens:
            values[key] = tok
    return values


def save_tokenizer(vocab: CharVocab, max_length: int, directory: Path) -> None:
    from cner.fileio import atomic_write

    with atomic_write(directory / TOKENIZER) as handle:
        handle.write(build_tokenizer(vocab).to_str(pretty=False))
    with atomic_write(directory / TOKENIZER_CONFIG) as handle:
        handle.write(json.dumps(tokenizer_config(vocab, max_length), ensure_ascii=False,
                                indent=1))


# --- the hub: download and upload --------------------------------------------------------------

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[\w./-]+)?")
# What cner reads from a model repository (nothing else is downloaded).
MODEL_FILES = ["model.safetensors", "cner_head.safetensors", "config.json", "vocab.txt",
               "bigrams.txt", "cner_model.json", "cner_config.yaml", "metrics.json", "README.md",
               TOKENIZER, TOKENIZER_CONFIG]


def looks_like_repo_id(name: str) -> bool:
    """``owner/name`` (optionally ``@revision``): what a hub model id looks like. A path that
    exists here is never read as one (`resolve_model_dir` checks first)."""
    return bool(REPO_ID.fullmatch(name)) and not name.startswith((".", "-"))


def _offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value is not None:
        return value.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """The local directory for ``model``: itself when it exists (or does not look like a hub
    id), else a snapshot of the hub repository ``owner/name[@revision]``, downloaded into the
    hub cache (``HF_HUB_CACHE``) or found there. Offline (``HF_HUB_OFFLINE=1``) with no
    cached copy, or no such repository, is a one-line `ModelError`."""
    path = Path(model)
    name = os.fspath(model)
    if path.exists() or not isinstance(model, str) or not looks_like_repo_id(name):
        return path
    repo_id, _, revision = name.partition("@")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError,
                                            LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
    except ImportError as exc:  # pragma: no cover - a transformers dependency
        raise ModelError(f"no directory {name} here, and huggingface_hub, needed to download "
                         f"it from the hub, cannot be imported: {exc}") from None
    offline = _offline()
    cache = os.environ.get("HF_HUB_CACHE") or None  # read now, not when the hub was imported
    try:
        folder = snapshot_download(repo_id, revision=revision or None, cache_dir=cache,
                                   allow_patterns=MODEL_FILES, local_files_only=offline)
    except LocalEntryNotFoundError:
        if offline:
            raise ModelError(f"no directory {name} here, and the Hugging Face model {repo_id} is "
                             "not in the hub cache while HF_HUB_OFFLINE is set: download it "
                             "once with network access, or pass a local model directory"
                             ) from None
        raise ModelError(f"no directory {name} here, and the Hugging Face hub cannot be reached "
                         f"to download {repo_id} (no cached copy either)") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise ModelError(f"no directory {name} here, and no Hugging Face model {repo_id} "
                         "(or it is private or gated: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise ModelError(f"the Hugging Face model {repo_id} has no revision {revision!r}"
                         ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot download the Hugging Face model {repo_id}: {first}") from None
    folder = Path(folder)
    if not (folder / "cner_model.json").is_file():
        raise ModelError(f"the Hugging Face model {repo_id} is not a cner model (no "
                         "cner_model.json); cner loads directories written by cner train")
    return folder


def is_cner_layout(path: Path) -> bool:
    """Whether the ``model.safetensors`` at ``path`` is in this layout (else: written by an
    earlier cner, every tensor under cner's own names)."""
    from cner.models.modeldir import read_weights

    return read_weights(path)[1].get(LAYOUT_KEY) == LAYOUT


def _link_or_copy(source: Path, target: Path) -> None:
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def push_model_dir(directory: str | os.PathLike, repo_id: str, *, private: bool = False,
                   token: str | None = None, commit_message: str | None = None, api=None) -> str:
    """Upload the model directory ``directory`` to the hub repository ``repo_id`` (created
    if missing, `HfApi.create_repo`; files sent by `HfApi.upload_folder`); returns the
    repository's URL.

    What is uploaded is the directory's own files (`MODEL_FILES`), with the model card written
    again to name ``repo_id`` in its examples; a directory saved by an earlier cner is written
    in the current layout first (so that transformers can read the upload). cner files the
    repository holds but the directory does not (a ``bigrams.txt`` of an earlier upload) are
    deleted in the same commit."""
    import shutil
    import tempfile

    from cner.models.card import render_card
    from cner.models.modeldir import WEIGHTS, read_meta, rewrite_model_dir

    directory = Path(directory)
    meta = read_meta(directory)  # a complete model directory, or a one-line ModelError
    if not REPO_ID.fullmatch(repo_id) or "@" in repo_id:
        raise ModelError(f"{repo_id!r} is not a hub repository id; expected owner/name")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".cner-push-", dir=directory.parent))
    except OSError:  # a read-only parent (the hub cache): the system's temporary folder
        staging = Path(tempfile.mkdtemp(prefix="cner-push-"))
    try:
        stage = staging / "model"
        if is_cner_layout(directory / WEIGHTS):
            stage.mkdir()
            for name in MODEL_FILES:
                if name != "README.md" and (directory / name).is_file():
                    _link_or_copy(directory / name, stage / name)
        else:
            rewrite_model_dir(directory, stage)
            (stage / "README.md").unlink(missing_ok=True)
        (stage / "README.md").write_text(render_card(stage, model_ref=repo_id), "utf-8")
        present = sorted(p.name for p in stage.iterdir() if p.is_file())
        stale = [name for name in MODEL_FILES if name not in present]
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        from huggingface_hub.errors import HfHubHTTPError

        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, token=token,
                                  repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=str(stage), repo_type="model",
                              token=token, allow_patterns=present, delete_patterns=stale or None,
                              commit_message=commit_message or f"cner {meta.task} model")
        except (HfHubHTTPError, OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot upload {directory} to {repo_id}: {first}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(url)
