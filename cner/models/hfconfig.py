"""``config.json``: the encoder's Hugging Face config, as the ecosystem reads it.

This module owns what goes into it and how an encoder is built back from it. Written: the
encoder's own config plus the real ``id2label``/``label2id``, the transformers class that
reads the directory (``architectures``: the token classifier when it reproduces cner's
emissions, else the base model), the ``problem_type`` of classifiers and a ``cner`` entry
saying how to load the model with cner; a BiLSTM model's config says that it is a
cner-only model. Read: an encoder of the saved architecture with empty weights (the weights
are `cner.models.weights`'). Remote code is never trusted.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

from torch import nn

from cner.errors import ModelError
from cner.models.metadata import CLASSIFICATION, NER, ModelMeta
from cner.models.weights import is_transformers_encoder, token_classifier_fits, transformers_classes

CNER_ONLY = ("a cner-only model (character BiLSTM encoder): transformers has no class for it; "
             "load it with cner: cner.Tagger.load(DIR) or cner annotate --model DIR")
BILSTM_ARCHITECTURE = "CnerBiLSTM"
# Keys only the ecosystem reads: BiLSTMConfig has no field for them.
ECOSYSTEM_KEYS = ("id2label", "label2id", "architectures", "cner_only", "cner")


def hf_labels(meta: ModelMeta) -> dict[str, dict]:
    labels = list(meta.labels) if meta.head != "regression" else []
    return {"id2label": {str(i): label for i, label in enumerate(labels)},
            "label2id": {label: i for i, label in enumerate(labels)}}


def encoder_config_values(encoder: nn.Module, meta: ModelMeta) -> dict:
    """The ``config.json`` of a model directory: the encoder's config plus the labels, the
    transformers class that reads the directory (``architectures``) and what cner adds."""
    cner_info = {"task": meta.task, "head": meta.head, "scheme": meta.scheme,
                 "load_with": "cner.Tagger.load(DIR)" if meta.task == NER
                 else "cner.Classifier.load(DIR)"}
    if not is_transformers_encoder(encoder):
        values = asdict(encoder.config)
        values.update(hf_labels(meta))
        values.update(architectures=[BILSTM_ARCHITECTURE], cner_only=CNER_ONLY, cner=cner_info)
        return values
    fits = token_classifier_fits(encoder, meta)
    values = _transformers_config(encoder, meta, fits).to_diff_dict()
    if not fits:
        cner_info["transformers"] = (
            "AutoModel.from_pretrained(DIR) loads the encoder only: "
            + ("the tag layer needs the character features cner adds to the input embeddings"
               if meta.task == NER else "the classifier reads last_hidden_state ("
               + meta.options.token_pooling + " pooling, no "
               "pooler) with the cner_classifier.* weights in model.safetensors"))
    values["cner"] = cner_info
    return values


def _transformers_config(encoder: nn.Module, meta: ModelMeta, fits: bool):
    """A copy of a transformers encoder's config with the labels, ``architectures`` (the
    token classifier where it ``fits``) and a classifier's ``problem_type``."""
    config = copy.deepcopy(encoder.config)
    labels = hf_labels(meta)
    if labels["id2label"]:
        config.id2label = {int(k): v for k, v in labels["id2label"].items()}
        config.label2id = labels["label2id"]
    elif meta.head == "regression":
        config.id2label, config.label2id = {0: "score"}, {"score": 0}
    _, _, base_class, token_class = transformers_classes(encoder.config)
    config.architectures = [token_class if fits else base_class]
    if meta.task == CLASSIFICATION:
        config.problem_type = {"multilabel": "multi_label_classification",
                               "regression": "regression"}.get(meta.head,
                                                               "single_label_classification")
    return config


def strip_cner_config(values: dict) -> dict:
    """A saved BiLSTM ``config.json`` without the keys only the ecosystem reads."""
    return {k: v for k, v in values.items() if k not in ECOSYSTEM_KEYS}


def empty_encoder(path: Path) -> nn.Module:
    """An encoder of the architecture the ``config.json`` at ``path`` describes, with
    freshly initialised weights (for the saved ones to be loaded into), without a pooler."""
    from transformers import AutoConfig, AutoModel

    from cner.models.bilstm import MODEL_TYPE, BiLSTMConfig, BiLSTMEncoder

    try:
        values = json.loads(path.read_text("utf-8"))
        if values.get("model_type") == MODEL_TYPE:
            return BiLSTMEncoder(BiLSTMConfig.from_dict(strip_cner_config(values)))
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    return drop_pooler(AutoModel.from_config(config))


def drop_pooler(encoder: nn.Module) -> nn.Module:
    """cner's heads read the [CLS] or character states directly; the pooler is dead weight."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder
