"""Sequence classification heads: single sentence, sentence pair, multi-label (an independent
sigmoid per label) and regression (STS-B style).

A chunk's vector is the encoder's state at ``[CLS]`` (``token_pooling="cls"``, BERT's way) or
the mean or maximum of its states over the real positions (``"mean"``, ``"max"``): a BiLSTM's
state at ``[CLS]`` holds only the backward direction's summary, so its classifiers pool.

Long documents may arrive as several chunks; ``doc_index`` ``(C,)`` maps each chunk to its
document and chunk logits are pooled (mean or max) into document logits before the loss.
"""
from __future__ import annotations

import torch
from torch import nn

from cner.config.checks import CHOICES, TOKEN_POOLINGS

# The config's choices are the one list ("auto" token pooling is resolved before a model is built).
KINDS = CHOICES["classify.kind"]
POOLING = CHOICES["classify.pooling"]


def resolve_token_pooling(requested: str, encoder: nn.Module) -> str:
    """``auto``: the ``[CLS]`` state for a transformer (what it is pre-trained and exported
    with), the maximum over positions for a BiLSTM, whose state at ``[CLS]`` has seen the text
    in one direction only (its forward half has read nothing but ``[CLS]``)."""
    if requested != "auto":
        return requested
    from cner.models.weights import is_transformers_encoder

    return "cls" if is_transformers_encoder(encoder) else "max"


class SequenceClassifier(nn.Module):
    """Parameters are named ``encoder.*`` and ``classifier.*`` (learning-rate groups)."""

    def __init__(self, encoder: nn.Module, num_labels: int, *, kind: str = "single",
                 dropout: float = 0.1, pooling: str = "mean", token_pooling: str = "cls") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
        if token_pooling not in TOKEN_POOLINGS:
            raise ValueError(f"token_pooling must be one of {TOKEN_POOLINGS}, "
                             f"got {token_pooling!r}")
        self.encoder = encoder
        self.kind = kind
        self.pooling = pooling
        self.token_pooling = token_pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, 1 if kind == "regression" else num_labels)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor, doc_index: torch.Tensor | None = None) -> torch.Tensor:
        """Document logits ``(D, K)`` (``K = 1`` for regression).

        Args: ``input_ids``, ``attention_mask``, ``token_type_ids`` long ``(C, L)`` for ``C``
        chunks; ``doc_index`` long ``(C,)`` (``None``: one chunk per document).
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        chunk_logits = self.classifier(self.dropout(self.chunk_vectors(hidden, attention_mask))
                                       ).float()  # shape: (C, K)
        if doc_index is None:
            return chunk_logits
        n_docs = int(doc_index.max()) + 1
        index = doc_index[:, None].expand_as(chunk_logits)  # shape: (C, K)
        init = torch.zeros(n_docs, chunk_logits.size(1), dtype=chunk_logits.dtype,
                           device=chunk_logits.device)
        reduce = "mean" if self.pooling == "mean" else "amax"
        return init.scatter_reduce(0, index, chunk_logits, reduce=reduce, include_self=False)

    def chunk_vectors(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` float ``(C, L, H)``, ``attention_mask`` ``(C, L)`` -> float ``(C, H)``:
        the state at ``[CLS]``, or the mean or maximum over the real positions."""
        if self.token_pooling == "cls":
            return hidden[:, 0]
        real = attention_mask.bool().unsqueeze(-1)  # shape: (C, L, 1)
        if self.token_pooling == "max":
            return hidden.masked_fill(~real, float("-inf")).amax(1)
        total = hidden.masked_fill(~real, 0.0).sum(1)  # shape: (C, H)
        return total / real.sum(1).clamp(min=1).to(hidden.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor, labels: torch.Tensor,
                doc_index: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss. ``labels``: long ``(D,)`` (single/pair), float ``(D, K)`` multi-hot
        (multilabel: per-label BCE summed over labels), float ``(D,)`` (regression: MSE)."""
        logits = self.logits(input_ids, attention_mask, token_type_ids, doc_index)
        if self.kind == "regression":
            return nn.functional.mse_loss(logits.squeeze(-1), labels.float())
        if self.kind == "multilabel":
            per_label = nn.functional.binary_cross_entropy_with_logits(
                logits, labels.float(), reduction="none")  # shape: (D, K)
            return per_label.sum(-1).mean()
        return nn.functional.cross_entropy(logits, labels)

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor, doc_index: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Probabilities ``(D, K)`` (softmax; sigmoid for multilabel) or values ``(D,)``."""
        logits = self.logits(input_ids, attention_mask, token_type_ids, doc_index)
        if self.kind == "regression":
            return logits.squeeze(-1)
        if self.kind == "multilabel":
            return logits.sigmoid()
        return logits.softmax(-1)
