"""Character-level token tagger: encoder -> dropout -> linear -> CRF or softmax head.

Batches are right-padded: ``input_ids`` ``(B, L + 2)`` hold ``[CLS] chars [SEP] [PAD]...``;
``char_mask`` ``(B, L)`` marks the real characters, so emission ``i`` belongs to character
``i`` of the window (position ``i + 1`` in the encoder).
"""
from __future__ import annotations

import torch
from torch import nn

from cner.models.crf import CRF, transition_constraints

HEADS = ("crf", "softmax")


class TokenTagger(nn.Module):
    """Parameters are named ``encoder.*`` (the transformer), ``classifier.*`` (the head) and
    ``crf.*`` (transitions), which the training loop uses to set learning rates."""

    def __init__(self, encoder: nn.Module, tags: list[str], *, scheme: str, head: str = "crf",
                 dropout: float = 0.1) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.encoder = encoder
        self.tags = list(tags)
        self.scheme = scheme
        self.head = head
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, len(tags))
        start, trans, end = transition_constraints(self.tags, scheme)
        self.crf = CRF(len(tags), allowed_transitions=trans, allowed_start=start, allowed_end=end)
        if head == "softmax":
            # Zero, frozen transitions: decoding is the constrained argmax of the softmax.
            for param in self.crf.parameters():
                nn.init.zeros_(param)
                param.requires_grad_(False)

    def emissions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  char_mask: torch.Tensor) -> torch.Tensor:
        """Tag scores per character.

        Args: ``input_ids`` long ``(B, L + 2)``, ``attention_mask`` bool/long ``(B, L + 2)``,
        ``char_mask`` bool ``(B, L)``. Returns float ``(B, L, T)``.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden[:, 1:1 + char_mask.size(1)]  # shape: (B, L, H); drop [CLS]
        return self.classifier(self.dropout(hidden))  # shape: (B, L, T)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                char_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean training loss per sequence; ``labels`` long ``(B, L)`` (padding ignored)."""
        scores = self.emissions(input_ids, attention_mask, char_mask)
        if self.head == "crf":
            return self.crf(scores, labels, char_mask, reduction="mean")
        flat = scores.float()[char_mask]  # shape: (N, T)
        return nn.functional.cross_entropy(flat, labels[char_mask], reduction="sum") / labels.size(0)

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                char_mask: torch.Tensor, *, with_marginals: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Best tag ids ``(B, L)`` (-1 on padding) and, optionally, marginal probabilities
        ``(B, L, T)`` of every tag at every character."""
        scores = self.emissions(input_ids, attention_mask, char_mask).float()
        best = self.crf.decode(scores, char_mask)
        if not with_marginals:
            return best, None
        if self.head == "crf":
            probs = self.crf.marginals(scores, char_mask)
        else:
            probs = scores.softmax(-1) * char_mask.unsqueeze(-1)
        return best, probs
