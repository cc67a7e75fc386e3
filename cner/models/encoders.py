"""Encoders: a Hugging Face model by hub name or local directory (a cner model directory
gives its trained encoder), or one built from sizes.

Hub loading is real code for users with a network; with ``HF_HUB_OFFLINE=1`` (the tests)
an uncached hub name fails with a one-line `ModelError`. Weights load only from safetensors
and remote code is never trusted.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from cner.config import DataConfig, ModelConfig
from cner.encoding.vocab import CharVocab
from cner.errors import ModelError

SCRATCH = "scratch"
BILSTM = "bilstm"
LOCAL_KINDS = (SCRATCH, BILSTM)  # built here from sizes, with a vocabulary from the corpus


def scratch_encoder(cfg: ModelConfig, vocab: CharVocab, *, max_positions: int = 512) -> nn.Module:
    """A randomly initialised BERT of the configured size over ``vocab``."""
    from transformers import BertConfig, BertModel

    if cfg.hidden_size % cfg.num_heads:
        raise ModelError(f"model.hidden_size ({cfg.hidden_size}) must be a multiple of "
                         f"model.num_heads ({cfg.num_heads})")
    config = BertConfig(vocab_size=len(vocab), hidden_size=cfg.hidden_size,
                        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                        intermediate_size=cfg.intermediate_size, hidden_dropout_prob=cfg.dropout,
                        attention_probs_dropout_prob=cfg.dropout,
                        max_position_embeddings=max_positions, pad_token_id=vocab.pad_id)
    model = BertModel(config, add_pooling_layer=False)
    # A trainable token-type row is a constant added at every position: from random weights
    # it drifts and swamps the characters once the embeddings' LayerNorm rescales them; a
    # masked-LM task whose answer is next door then stays unlearnt (benchmarks/
    # mlm_copy_task.py: at ln V after 600 steps with it, solved by step 400 without). On real
    # text pre-training the held-out accuracy was ~15% at step 600 either way. Held at zero
    # it is what BERT without segments computes; a pair's second segment is still marked by
    # [SEP], and an encoder loaded back from its directory for fine-tuning trains the rows.
    types = model.embeddings.token_type_embeddings.weight
    with torch.no_grad():
        types.zero_()
    types.requires_grad_(False)
    return model


def local_encoder(cfg: ModelConfig, vocab: CharVocab, *, max_positions: int = 512) -> nn.Module:
    """A randomly initialised ``scratch`` BERT or ``bilstm`` encoder over ``vocab``."""
    if cfg.encoder == BILSTM:
        from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder

        if cfg.hidden_size % 2:
            raise ModelError(f"model.hidden_size ({cfg.hidden_size}) must be even for a bilstm "
                             "encoder (it is both directions together)")
        return BiLSTMEncoder(BiLSTMConfig(
            vocab_size=len(vocab), embedding_size=cfg.embedding_size,
            hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, dropout=cfg.dropout,
            pad_token_id=vocab.pad_id))
    return scratch_encoder(cfg, vocab, max_positions=max_positions)


def pretrained_vocab(name: str, data: DataConfig) -> CharVocab:
    """The ``vocab.txt`` of a hub model or local directory, used one character at a time."""
    from transformers.utils import cached_file

    try:
        path = cached_file(name, "vocab.txt")
    except OSError as exc:
        raise ModelError(_load_hint(name, exc)) from None
    if path is None:
        raise ModelError(f"{name} has no vocab.txt; cner needs a WordPiece (BERT-style) "
                         "vocabulary to encode one character per position")
    return CharVocab.load(path, lowercase=data.lowercase, halfwidth=data.halfwidth)


def pretrained_encoder(name: str) -> nn.Module:
    """The encoder of a hub model or local directory, without its pooler. A cner model
    directory gives its trained encoder, whichever layout it was saved in (`cner_encoder`);
    an encoder whose weights are not all in the checkpoint is a warning, not silently random."""
    import warnings

    from transformers import AutoModel

    from cner.models.hfconfig import drop_pooler
    from cner.models.modeldir import META

    if (Path(name) / META).is_file():
        return cner_encoder(name)
    from cner.models.encoderdir import is_bilstm_dir, load_bilstm_encoder

    if is_bilstm_dir(name):  # a BiLSTM pre-trained by cner pretrain (a BERT loads below)
        return load_bilstm_encoder(name)
    try:
        encoder, info = AutoModel.from_pretrained(name, use_safetensors=True,
                                                  trust_remote_code=False,
                                                  output_loading_info=True)
    except OSError as exc:
        raise ModelError(_load_hint(name, exc)) from None
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))
    if missing:
        more = ", ..." if len(missing) > 3 else ""
        warnings.warn(f"{name}: {len(missing)} encoder weight(s) are not in its checkpoint and "
                      f"start random ({', '.join(missing[:3])}{more})", stacklevel=2)
    return drop_pooler(encoder)


def cner_encoder(directory: str | Path) -> nn.Module:
    """The trained encoder of a cner model directory (either weight layout: see
    `cner.models.weights.read_dir_state`), to train a new model from."""
    from cner.models.hfconfig import empty_encoder
    from cner.models.modeldir import ENCODER_CONFIG, HEAD_WEIGHTS, WEIGHTS
    from cner.models.weights import ENCODER_PREFIX, POOLER_PREFIX, misfit, read_dir_state

    directory = Path(directory)
    encoder = empty_encoder(directory / ENCODER_CONFIG)
    own = encoder.state_dict()
    saved = read_dir_state(directory / WEIGHTS, directory / HEAD_WEIGHTS)
    cut = len(ENCODER_PREFIX)
    state = {k[cut:]: v for k, v in saved.state.items() if k.startswith(ENCODER_PREFIX)
             and (k[cut:] in own or not k.startswith(POOLER_PREFIX))}
    bad = misfit(own, state)
    if bad:
        raise ModelError(f"weights {directory / WEIGHTS} do not fit the encoder in "
                         f"{directory}: {bad[0]} is {bad[1]} in the file, {bad[2]} in its "
                         "config.json")
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"weights {directory / WEIGHTS} do not fit the encoder in {directory}: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return encoder


def _load_hint(name: str, exc: Exception) -> str:
    if Path(name).exists():
        return f"cannot load the encoder from directory {name}: {str(exc).splitlines()[0]}"
    return (f"cannot load {name!r} from the Hugging Face hub (offline, or no such model); "
            "download it once with network access, pass a local directory as model.encoder, "
            "or use model.encoder=scratch or bilstm")


def build_encoder(cfg: ModelConfig, data: DataConfig, texts: Iterable[str]
                  ) -> tuple[nn.Module, CharVocab]:
    """The encoder and its vocabulary; a local encoder's vocabulary is made from ``texts``."""
    if cfg.encoder in LOCAL_KINDS:
        vocab = CharVocab.build(texts, min_count=cfg.vocab_min_count, lowercase=data.lowercase,
                                halfwidth=data.halfwidth)
        return local_encoder(cfg, vocab, max_positions=max(512, data.max_length)), vocab
    vocab = pretrained_vocab(cfg.encoder, data)
    encoder = pretrained_encoder(cfg.encoder)
    limit = getattr(encoder.config, "max_position_embeddings", None)
    if limit is not None and data.max_length > limit:
        raise ModelError(f"data.max_length={data.max_length} exceeds the encoder's "
                         f"max_position_embeddings={limit}")
    return encoder, vocab
