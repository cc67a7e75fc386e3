"""A masked-language-model head over any cner encoder (and the sentence-pair head).

`MaskedLanguageModel` wraps an encoder: the scratch or hub BERT gets BERT's own head (a
``BertPredictionHeadTransform`` and an output layer tied to the input embeddings plus a bias:
exactly the weights of ``BertForMaskedLM``, so the saved directory loads with
``AutoModelForMaskedLM``), the BiLSTM a linear layer. A masked position is just ``[MASK]`` at
the input; the head reads the encoder's state there. Logits are computed only at the selected
positions (15% of them), not over the whole sequence.

With a pair objective (``sop``: sentence order, ``nsp``: next sentence) a linear layer reads
the ``[CLS]`` state, as cner's classifiers do (no pooler).

Parameters are named ``encoder.*`` (the learning rate) and ``transform.*``, ``bias``,
``decoder.*``, ``pair_head.*`` (the head's rate, `cner.training.steps.param_groups`).
The tied output layer is not a parameter of its own, so the model's state dict has no tensor
twice (checkpoints are safetensors files).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cner.encoding.masking import IGNORE
from cner.errors import ModelError
from cner.models.encoderdir import BERT_HEAD, LINEAR_HEAD


def is_transformers_encoder(encoder: nn.Module) -> bool:
    from transformers import PreTrainedModel

    return isinstance(encoder, PreTrainedModel)


def head_kind(encoder: nn.Module) -> str:
    """``bert`` for a BERT-architecture transformers encoder, ``linear`` for the BiLSTM."""
    from cner.models.bilstm import BiLSTMEncoder

    if isinstance(encoder, BiLSTMEncoder):
        return LINEAR_HEAD
    if is_transformers_encoder(encoder) and getattr(encoder.config, "model_type", None) == "bert":
        return BERT_HEAD
    kind = getattr(getattr(encoder, "config", None), "model_type", type(encoder).__name__)
    raise ModelError(f"cner pretrain trains BERT-architecture encoders (bert-base-chinese, "
                     f"chinese-roberta-wwm-ext, macbert, the scratch encoder) and the BiLSTM; "
                     f"a {kind} encoder is not supported")


class MaskedLanguageModel(nn.Module):
    def __init__(self, encoder: nn.Module, *, pair_objective: str = "none",
                 tied: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.kind = head_kind(encoder)
        self.pair_objective = pair_objective
        self.transformers = is_transformers_encoder(encoder)
        config = encoder.config
        hidden = config.hidden_size
        vocab = encoder.get_input_embeddings().num_embeddings
        std = getattr(config, "initializer_range", 0.02)
        self.dropout = None
        if self.kind == BERT_HEAD:
            from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

            self.transform = BertPredictionHeadTransform(config)
            self.bias = nn.Parameter(torch.zeros(vocab))
            self.decoder = None if tied else nn.Linear(hidden, vocab, bias=False)
            _init_linear(self.transform.dense, std)
        else:
            self.transform, self.bias = None, None
            self.dropout = nn.Dropout(getattr(config, "dropout", 0.0))
            self.decoder = nn.Linear(hidden, vocab)
        if self.decoder is not None:
            _init_linear(self.decoder, std)
        self.pair_head = nn.Linear(hidden, 2) if pair_objective != "none" else None
        if self.pair_head is not None:
            _init_linear(self.pair_head, std)

    @property
    def tied(self) -> bool:
        return self.kind == BERT_HEAD and self.decoder is None

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's states ``(B, L, H)``."""
        if self.transformers:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def mlm_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Vocabulary scores ``(N, V)`` of the states ``(N, H)`` of selected positions."""
        if self.kind == BERT_HEAD:
            weight = (self.decoder.weight if self.decoder is not None
                      else self.encoder.get_input_embeddings().weight)
            return F.linear(self.transform(states), weight, self.bias)
        return self.decoder(self.dropout(states))

    def outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor, token_type_ids: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logits (N, V) float, targets (N,), pair logits (B, 2) float or None)`` for the
        ``N`` positions whose label is not `IGNORE`."""
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        selected = labels != IGNORE
        logits = self.mlm_logits(hidden[selected]).float()
        pair = self.pair_head(hidden[:, 0]).float() if self.pair_head is not None else None
        return logits, labels[selected], pair

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                pair_labels: torch.Tensor | None = None,
                mlm_per_row: torch.Tensor | None = None,
                pair_per_row: torch.Tensor | None = None) -> torch.Tensor:
        """The mean cross-entropy over the selected positions, plus the pair objective's
        mean cross-entropy when there is one.

        ``mlm_per_row`` / ``pair_per_row`` (0-dim, from `BatchBuilder.build`): the whole
        batch's selected positions / pair labels per row. With them each sum is divided by
        that ratio times this call's rows instead of by this call's own count: the same mean
        on a whole batch, and on a DDP rank's row slice a share that the ranks' row-weighted
        average (`row_slice`'s ``loss_weight``) turns into the whole batch's mean."""
        logits, targets, pair = self.outputs(input_ids, attention_mask, labels, token_type_ids)
        rows = input_ids.size(0)
        loss = F.cross_entropy(logits, targets, reduction="sum") / _units(
            mlm_per_row, rows, len(targets))
        if pair is not None and pair_labels is not None and bool((pair_labels != IGNORE).any()):
            pairs = int((pair_labels != IGNORE).sum())
            loss = loss + F.cross_entropy(pair, pair_labels, ignore_index=IGNORE,
                                          reduction="sum") / _units(pair_per_row, rows, pairs)
        return loss

    @torch.inference_mode()
    def score(self, batch: dict) -> dict[str, float]:
        """Sums over one batch for evaluation: ``loss`` (summed cross-entropy), ``masked``,
        ``correct``, and with a pair objective ``pair_loss``, ``pairs``, ``pair_correct``."""
        keys = ("input_ids", "attention_mask", "labels", "token_type_ids")
        device = next(self.parameters()).device
        inputs = {k: batch[k].to(device) for k in keys if k in batch}
        logits, targets, pair = self.outputs(**inputs)
        out = {"loss": float(F.cross_entropy(logits, targets, reduction="sum")) if len(targets)
               else 0.0, "masked": float(len(targets)),
               "correct": float((logits.argmax(-1) == targets).sum())}
        if pair is not None and "pair_labels" in batch:
            labels = batch["pair_labels"].to(device)
            valid = labels != IGNORE
            out["pairs"] = float(valid.sum())
            out["pair_loss"] = float(F.cross_entropy(pair[valid], labels[valid], reduction="sum")
                                     ) if bool(valid.any()) else 0.0
            out["pair_correct"] = float((pair[valid].argmax(-1) == labels[valid]).sum())
        return out


def _units(per_row: torch.Tensor | None, rows: int, count: int) -> torch.Tensor | float:
    """The denominator of a loss sum: the whole batch's count per row times ``rows`` when
    given, else this call's own ``count``; never zero (an empty sum stays 0)."""
    if per_row is None:
        return float(max(count, 1))
    return (per_row * rows).clamp_min(1e-6)


def _init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _load_hint(name: str, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(name).exists():
        return f"cannot load a masked-LM encoder from {name}: {first}"
    return (f"cannot load {name!r} from the Hugging Face hub (offline, or no such model); "
            "download it once with network access, or pass a local directory to --from")


def mlm_from_pretrained(name: str, *, pair_objective: str = "none") -> MaskedLanguageModel:
    """A masked LM that continues pre-training ``name``: a hub id or a local directory.

    A cner model directory (a fine-tuned tagger or classifier) gives its trained encoder with
    a new head; a directory written by ``cner pretrain`` gives its encoder and head (the BiLSTM
    as cner saves it, a BERT through transformers); any other BERT-architecture model loads
    with ``AutoModelForMaskedLM``, its pre-trained head included. A pair head saved with the
    directory is reused when ``pair_objective`` asks for one."""
    from cner.models import encoderdir

    path = Path(name)
    if (path / "cner_model.json").is_file():
        from cner.models.encoders import cner_encoder

        return MaskedLanguageModel(cner_encoder(name), pair_objective=pair_objective)
    if encoderdir.is_bilstm_dir(path):
        model = MaskedLanguageModel(encoderdir.load_bilstm_encoder(path),
                                    pair_objective=pair_objective)
        encoderdir.load_head(model, path)
        return model
    from transformers import AutoModelForMaskedLM

    try:
        hf = AutoModelForMaskedLM.from_pretrained(name, use_safetensors=True,
                                                  trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(_load_hint(name, exc)) from None
    if not (hasattr(hf, "bert") and hasattr(getattr(hf, "cls", None), "predictions")):
        raise ModelError(f"{name} is a {type(hf).__name__}; cner pretrain continues "
                         "BERT-architecture masked LMs (BertForMaskedLM)")
    predictions = hf.cls.predictions
    tied = predictions.decoder.weight is hf.bert.get_input_embeddings().weight
    model = MaskedLanguageModel(hf.bert, pair_objective=pair_objective, tied=tied)
    model.transform.load_state_dict(predictions.transform.state_dict())
    with torch.no_grad():
        model.bias.copy_(predictions.bias)
        if not tied:
            model.decoder.weight.copy_(predictions.decoder.weight)
    if path.is_dir():
        encoderdir.load_head(model, path, pair_only=True)
    return model


def describe(model: MaskedLanguageModel) -> dict:
    """What the encoder is, for the model card."""
    config = model.encoder.config
    if model.kind == LINEAR_HEAD:
        return {"encoder": "bilstm", "embedding_size": config.embedding_size,
                "hidden_size": config.hidden_size, "num_layers": config.num_layers,
                "vocab_size": config.vocab_size}
    values = json.loads(config.to_json_string(use_diff=False))
    return {"encoder": values.get("model_type", "bert"), "hidden_size": values["hidden_size"],
            "num_layers": values["num_hidden_layers"],
            "num_heads": values["num_attention_heads"],
            "intermediate_size": values["intermediate_size"],
            "vocab_size": values["vocab_size"],
            "max_position_embeddings": values["max_position_embeddings"]}
