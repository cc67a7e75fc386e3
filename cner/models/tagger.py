"""Character-level token tagger: encoder -> dropout -> linear -> CRF or softmax head.

Batches are right-padded: ``input_ids`` ``(B, L + 2)`` hold ``[CLS] chars [SEP] [PAD]...``;
``char_mask`` ``(B, L)`` marks the real characters, so emission ``i`` belongs to character
``i`` of the window (position ``i + 1`` in the encoder).
"""
from __future__ import annotations

import torch
from torch import nn

from cner.encoding.lexicon import N_BITS
from cner.models.crf import CRF, transition_constraints

HEADS = ("crf", "softmax")


class TokenTagger(nn.Module):
    """Parameters are named ``encoder.*`` (the transformer), ``classifier.*`` (the head) and
    ``crf.*`` (transitions), which the training loop uses to set learning rates."""

    def __init__(self, encoder: nn.Module, tags: list[str], *, scheme: str, head: str = "crf",
                 dropout: float = 0.1, n_bigrams: int = 0, boundaries: bool = False,
                 lexicon: bool = False, unk_dropout: float = 0.0, unk_id: int = 0) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.encoder = encoder
        self.tags = list(tags)
        self.scheme = scheme
        self.head = head
        self.dropout = nn.Dropout(dropout)
        # Training only: characters replaced by [UNK] at this rate, so the model learns to
        # tag names it has never seen from context, bigrams and the lexicon.
        self.unk_dropout = unk_dropout
        self.unk_id = unk_id
        self.classifier = nn.Linear(encoder.config.hidden_size, len(tags))
        # Optional character features, added to the encoder's input embeddings.
        width = encoder.get_input_embeddings().embedding_dim
        self.bigram_embeddings = nn.Embedding(n_bigrams, width, padding_idx=0) if n_bigrams else None
        self.boundary_embeddings = nn.Embedding(5, width, padding_idx=0) if boundaries else None
        # Lexicon bits (cner.encoding.lexicon): a multi-hot vector, projected like a bag of embeddings.
        self.lexicon_projection = nn.Linear(N_BITS, width, bias=False) if lexicon else None
        self.register_buffer("_bit_values", 2 ** torch.arange(N_BITS), persistent=False)
        start, trans, end = transition_constraints(self.tags, scheme)
        self.crf = CRF(len(tags), allowed_transitions=trans, allowed_start=start, allowed_end=end)
        if head == "softmax":
            # Zero, frozen transitions: decoding is the constrained argmax of the softmax.
            for param in self.crf.parameters():
                nn.init.zeros_(param)
                param.requires_grad_(False)

    def zero_feature_embeddings(self) -> None:
        """Start the bigram, word-boundary and lexicon embeddings at zero, so that a pre-trained
        encoder first sees exactly the inputs it was pre-trained on and the features grow in as
        they help. Drawn from N(0, 1) like a scratch character embedding, three of them added
        to a pre-trained one hide most of it from the encoder (measured on MSRA: README)."""
        for module in (self.bigram_embeddings, self.boundary_embeddings, self.lexicon_projection):
            if module is not None:
                nn.init.zeros_(module.weight)

    def emissions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  char_mask: torch.Tensor, bigram_ids: torch.Tensor | None = None,
                  boundary_ids: torch.Tensor | None = None,
                  lexicon_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Tag scores per character.

        Args: ``input_ids`` long ``(B, L + 2)``, ``attention_mask`` bool/long ``(B, L + 2)``,
        ``char_mask`` bool ``(B, L)``; ``bigram_ids``, ``boundary_ids`` and ``lexicon_ids``
        (bit masks) long ``(B, L + 2)`` when the model uses those features.
        Returns float ``(B, L, T)``.
        """
        if self.training and self.unk_dropout > 0:
            drop = torch.zeros_like(input_ids, dtype=torch.bool)  # [CLS]/[SEP]/padding kept
            drop[:, 1:1 + char_mask.size(1)] = (
                torch.rand(char_mask.shape, device=char_mask.device) < self.unk_dropout) & char_mask
            input_ids = input_ids.masked_fill(drop, self.unk_id)  # shape: (B, L+2)
        hidden = self._hidden(input_ids, attention_mask, bigram_ids=bigram_ids,
                              boundary_ids=boundary_ids, lexicon_ids=lexicon_ids)
        hidden = hidden[:, 1:1 + char_mask.size(1)]  # shape: (B, L, H); drop [CLS]
        return self.classifier(self.dropout(hidden))  # shape: (B, L, T)

    def shared_row_emissions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                             position_ids: torch.Tensor, **features: torch.Tensor
                             ) -> torch.Tensor:
        """Tag scores at every position of rows holding several windows
        (`cner.encoding.shared_rows`): ``input_ids`` (and the features) long ``(R, W)``,
        ``position_ids`` long ``(R, W)``, ``attention_mask`` float ``(R, 1, W, W)`` (additive).
        Returns float ``(R, W, T)``. For inference: no dropout, no [UNK] dropout."""
        hidden = self._hidden(input_ids, attention_mask, position_ids=position_ids, **features)
        return self.classifier(hidden)  # shape: (R, W, T)

    def _hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                position_ids: torch.Tensor | None = None, bigram_ids: torch.Tensor | None = None,
                boundary_ids: torch.Tensor | None = None,
                lexicon_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's last hidden state ``(B, L + 2, H)``, the feature embeddings added to
        the character embeddings."""
        extra = {} if position_ids is None else {"position_ids": position_ids}
        if (self.bigram_embeddings is None and self.boundary_embeddings is None
                and self.lexicon_projection is None):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                **extra).last_hidden_state
        embeds = self.encoder.get_input_embeddings()(input_ids)  # shape: (B, L+2, H)
        if self.bigram_embeddings is not None:
            embeds = embeds + self.bigram_embeddings(bigram_ids)
        if self.boundary_embeddings is not None:
            embeds = embeds + self.boundary_embeddings(boundary_ids)
        if self.lexicon_projection is not None:
            bits = (lexicon_ids.unsqueeze(-1) & self._bit_values) != 0  # shape: (B, L+2, 32)
            embeds = embeds + self.lexicon_projection(bits.to(embeds.dtype))
        return self.encoder(inputs_embeds=embeds, attention_mask=attention_mask,
                            **extra).last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                char_mask: torch.Tensor, labels: torch.Tensor, **features: torch.Tensor
                ) -> torch.Tensor:
        """Mean training loss per sequence; ``labels`` long ``(B, L)`` (padding ignored)."""
        scores = self.emissions(input_ids, attention_mask, char_mask, **features)
        if self.head == "crf":
            return self.crf(scores, labels, char_mask, reduction="mean")
        flat = scores.float()[char_mask]  # shape: (N, T)
        return nn.functional.cross_entropy(flat, labels[char_mask], reduction="sum") / labels.size(0)

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                char_mask: torch.Tensor, *, with_marginals: bool = True, **features: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Best tag ids ``(B, L)`` (-1 on padding) and, optionally, marginal probabilities
        ``(B, L, T)`` of every tag at every character."""
        scores = self.emissions(input_ids, attention_mask, char_mask, **features)
        return self.decode_emissions(scores, char_mask, with_marginals=with_marginals)

    @torch.inference_mode()
    def decode_emissions(self, scores: torch.Tensor, char_mask: torch.Tensor, *,
                         with_marginals: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`predict` from `emissions`' output: ``scores`` float (any precision) ``(B, L, T)``,
        ``char_mask`` bool ``(B, L)``; the CRF runs in float32."""
        scores = scores.float()
        if not with_marginals:
            return self.crf.decode(scores, char_mask), None
        if self.head == "crf":
            best, probs = self.crf.decode_with_marginals(scores, char_mask)
            return best.to(scores.device), probs.to(scores.device)
        probs = scores.softmax(-1) * char_mask.unsqueeze(-1)
        return self.crf.decode(scores, char_mask), probs
