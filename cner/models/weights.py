"""The weights of a model directory: the safetensors layout, and loading it into a model.

``model.safetensors`` holds the encoder under the key names its transformers class uses
(``embeddings.word_embeddings.weight``, ``encoder.layer.0...``), so
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

This module owns that mapping (`split_state`, `join_state`), which transformers classes fit a
model (`transformers_classes`, `token_classifier_fits`), reading and writing safetensors
files, and loading tensors into a model with every missing, unexpected or misshapen tensor a
`ModelError`. It takes the files' paths: their names are `cner.models.modeldir`'s.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cner.errors import ModelError
from cner.models.metadata import NER, ModelMeta

LAYOUT_KEY = "cner_layout"
LAYOUT = "hf-1"
SAFETENSORS_METADATA = {"format": "pt", LAYOUT_KEY: LAYOUT}
HF_CLASSIFIER = "classifier."  # the tag layer, where transformers' token classifier reads it
CNER_CLASSIFIER = "cner_classifier."  # a head transformers has no class for
ENCODER_PREFIX = "encoder."  # cner's own names: TokenTagger.encoder / SequenceClassifier.encoder
POOLER_PREFIX = ENCODER_PREFIX + "pooler."


# --- which transformers classes fit ----------------------------------------------------------

def is_transformers_encoder(encoder: nn.Module) -> bool:
    from transformers import PreTrainedModel

    return isinstance(encoder, PreTrainedModel)


_CLASSES: dict[str, tuple] = {}


def transformers_classes(config) -> tuple[dict, tuple | None, str, str | None]:
    """For a transformers encoder config: the shapes of its base model's state dict, the
    ``(in, bias?)`` of the token classifier's ``classifier`` layer (None when that class has
    none, or not a plain linear layer) and the two class names (built on the meta device,
    once per config: building a real model to read names off would cost its weights)."""
    from transformers import AutoModel, AutoModelForTokenClassification

    key = config.to_json_string(use_diff=False)
    if key in _CLASSES:
        return _CLASSES[key]
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
    _CLASSES[key] = shapes, head, type(base).__name__, token_class
    return _CLASSES[key]


def token_classifier_fits(encoder: nn.Module, meta: ModelMeta) -> bool:
    """Whether transformers' ``AutoModelForTokenClassification`` reproduces this NER model's
    emissions: a transformers encoder, no extra character features, a plain linear layer
    named ``classifier`` of the same shape."""
    features = meta.features
    if meta.task != NER or not is_transformers_encoder(encoder) or (features is not None and (
            features.bigrams or features.word_boundaries or features.lexicon)):
        return False
    _, head, _, token_class = transformers_classes(encoder.config)
    return token_class is not None and head is not None and head[1]


# --- cner's names <-> the two files --------------------------------------------------------------

def split_state(model: nn.Module, meta: ModelMeta
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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
    (`cner.models.hfconfig.drop_pooler`), so that ``AutoModel`` finds every weight it needs."""
    shapes, _, _, _ = transformers_classes(encoder.config)
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


# --- safetensors files ---------------------------------------------------------------------------

def save_state(model: nn.Module, path: Path) -> None:
    """``model``'s state dict under cner's own names (training checkpoints)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors file and its metadata header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"cannot read weights {path}: {exc}") from None


def write_weights(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """A file of this layout: the metadata header marks it as such for `read_dir_state`."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=dict(SAFETENSORS_METADATA))


def is_cner_layout(path: Path) -> bool:
    """Whether the ``model.safetensors`` at ``path`` is in this layout (else: written by an
    earlier cner, every tensor under cner's own names)."""
    return read_weights(path)[1].get(LAYOUT_KEY) == LAYOUT


@dataclass
class DirState:
    """A model directory's weights under cner's names, with the file (and the name in it)
    each tensor came from; ``main`` and ``head``: the two files' paths."""

    state: dict[str, torch.Tensor]
    origin: dict[str, tuple[Path, str]]
    main: Path
    head: Path

    def where(self, name: str) -> tuple[Path, str]:
        """The file a tensor of cner's state is (or belongs) in, and its name there."""
        return self.origin.get(name, (self.main, name))

    def for_model(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The state without the untrained pooler the transformers layout writes for
        ``AutoModel`` (cner's encoders have none), unless ``model`` has one."""
        own = model.state_dict()
        return {k: v for k, v in self.state.items()
                if k in own or not k.startswith(POOLER_PREFIX)}


def read_dir_state(main: Path, head: Path) -> DirState:
    """The weights of a model directory as cner's own state dict: ``main``
    (``model.safetensors``) in the transformers layout plus ``head``
    (``cner_head.safetensors``), or (directories written before that layout) ``main`` alone
    under cner's names."""
    tensors, metadata = read_weights(main)
    if metadata.get(LAYOUT_KEY) != LAYOUT:  # an earlier cner: one file, cner's own names
        return DirState(tensors, {k: (main, k) for k in tensors}, main, head)
    head_tensors = read_weights(head)[0] if head.is_file() else {}
    state, names = join_state(tensors, head_tensors)
    origin = {k: (main, names[k]) for k in names}
    origin.update({k: (head, k) for k in head_tensors})
    return DirState(state, origin, main, head)


# --- loading into a model ------------------------------------------------------------------------

def misfit(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
           ) -> tuple[str, tuple, tuple] | None:
    """The first tensor of ``state`` whose shape differs from the one of that name in
    ``own``: ``(name, shape in state, shape in own)``; None when all fit.
    `nn.Module.load_state_dict` would say so too, but in a message of many lines."""
    for name, tensor in state.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            return name, tuple(tensor.shape), tuple(own[name].shape)
    return None


def load_state(model: nn.Module, path: Path, *, state: dict[str, torch.Tensor] | None = None
               ) -> None:
    """Load the weights at ``path`` (or ``state``, read from it) into ``model``; missing,
    unexpected or differently shaped tensors are a `ModelError`."""
    if state is None:
        state = read_weights(path)[0]
    bad = misfit(model.state_dict(), state)
    if bad:
        raise ModelError(f"weights {path} do not fit the model: {bad[0]} is {bad[1]} in the "
                         f"file, {bad[2]} in the model built from its configuration")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"weights {path} do not fit the model: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


def load_dir_state(model: nn.Module, saved: DirState, state: Mapping[str, torch.Tensor]
                   ) -> None:
    """Load ``state`` (``saved.for_model(model)``) into ``model``; a tensor missing,
    unexpected or of another shape is a `ModelError` naming the file it is (or should be)
    in, under its name there."""
    bad = misfit(model.state_dict(), state)
    if bad:
        path, key = saved.where(bad[0])
        raise ModelError(f"weights {path} do not fit the model: {key} is {bad[1]} in the "
                         f"file, {bad[2]} in the model built from its configuration")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        # the likeliest cause of missing CRF or feature tensors: a head file left behind
        lacking = (f" ({saved.head.name} is missing)" if missing and not saved.head.is_file()
                   and any(not k.startswith(("encoder.", "classifier.")) for k in missing) else "")
        raise ModelError(f"weights in {saved.main.parent} do not fit the model{lacking}: "
                         f"missing {missing[:3]}, unexpected "
                         f"{[saved.where(k)[1] for k in unexpected[:3]]}")


def saved_rows(model: nn.Module, state: Mapping[str, torch.Tensor], param: torch.Tensor) -> int:
    """Rows of ``param`` in the saved weights (the built model's when the file lacks it)."""
    name = next((n for n, p in model.named_parameters() if p is param), None)
    return int(state[name].shape[0]) if name in state else int(param.shape[0])
