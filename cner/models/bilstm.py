"""A character BiLSTM encoder with the calling convention of a Hugging Face encoder.

Trained from scratch, a BiLSTM over character (+ bigram, word-boundary, lexicon) embeddings
learns NER far faster per CPU second than a transformer of similar size (the published
character baselines on MSRA are BiLSTM-CRFs). It takes ``input_ids`` or ``inputs_embeds`` plus
an ``attention_mask`` and returns an object with ``last_hidden_state``, so `TokenTagger`,
the model directory and inference treat it like any other encoder.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

MODEL_TYPE = "cner-bilstm"


@dataclass
class BiLSTMConfig:
    vocab_size: int
    embedding_size: int = 128
    hidden_size: int = 400  # output size: both directions together
    num_layers: int = 1
    dropout: float = 0.5  # on the embeddings and between layers
    pad_token_id: int = 0
    model_type: str = MODEL_TYPE

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1), "utf-8")

    @classmethod
    def from_dict(cls, values: dict) -> BiLSTMConfig:
        return cls(**values)


def direction_params(lstm: nn.LSTM, layer: int, suffix: str) -> list[tuple[str, nn.Parameter]]:
    """``(name in a one-layer one-way LSTM, parameter)`` of ``lstm``'s ``layer`` in one
    direction (``suffix`` ``""`` forward, ``"_reverse"`` backward), in ``torch.lstm`` order."""
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if lstm.bias else [])
    return [(f"{name}_l0", getattr(lstm, f"{name}_l{layer}{suffix}")) for name in names]


class BiLSTMEncoder(nn.Module):
    def __init__(self, config: BiLSTMConfig) -> None:
        super().__init__()
        if config.hidden_size % 2:
            raise ValueError(f"hidden_size must be even (two directions), got {config.hidden_size}")
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size,
                                       padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.embedding_size, config.hidden_size // 2,
                            num_layers=config.num_layers, batch_first=True, bidirectional=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> SimpleNamespace:
        """Args: ``input_ids`` long ``(B, S)`` or ``inputs_embeds`` float ``(B, S, E)``;
        ``attention_mask`` ``(B, S)``, 1 on real positions, right-padded. ``token_type_ids``
        (a sentence pair's segments, passed by classifiers as to any BERT) is ignored: the
        [SEP] between the texts is what the BiLSTM sees of the pair.
        Returns ``last_hidden_state`` float ``(B, S, H)`` (zeros on padding); the tagger
        applies its own dropout to it."""
        if inputs_embeds is None:
            inputs_embeds = self.embeddings(input_ids)
        embeds = self.dropout(inputs_embeds)  # shape: (B, S, E)
        if attention_mask is None:
            attention_mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        if self.training and torch.is_grad_enabled():  # dropout between layers: nn.LSTM's
            return SimpleNamespace(last_hidden_state=self.packed(embeds, attention_mask))
        return SimpleNamespace(last_hidden_state=self.unpacked(embeds, attention_mask))

    def packed(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The training path: ``nn.LSTM`` on a packed sequence (packing keeps the backward
        direction from starting on padding). ``embeds`` float ``(B, S, E)``,
        ``attention_mask`` ``(B, S)``, right-padded. Returns ``(B, S, H)``, zero on padding."""
        lengths = attention_mask.sum(1).to("cpu", torch.long)  # shape: (B,)
        packed = nn.utils.rnn.pack_padded_sequence(embeds, lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                     total_length=embeds.size(1))
        return hidden  # shape: (B, S, H)

    def _one_way(self, inputs: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One direction (``suffix`` ``""`` forward, ``"_reverse"`` backward, on rows already
        reversed) of one layer of ``self.lstm``, run forward over ``inputs`` ``(B, S, W)``,
        on the module's own parameters. Returns ``(B, S, H/2)``."""
        lstm = self.lstm
        params = [param for _, param in direction_params(lstm, layer, suffix)]
        zeros = inputs.new_zeros(1, inputs.size(0), lstm.hidden_size)  # shape: (1, B, H/2)
        # torch.lstm is the op nn.LSTM runs; on an unpacked input the CPU takes oneDNN's RNN
        # kernel (benchmarks/bilstm_kernels.py).
        out, _, _ = torch.lstm(inputs, (zeros, zeros), params, lstm.bias, 1, 0.0, False,
                               False, True)
        return out

    def unpacked(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                 one_way: Callable[[torch.Tensor, int, str], torch.Tensor] | None = None
                 ) -> torch.Tensor:
        """The inference output without ``pack_padded_sequence`` (packing is slow on the CPU
        and does not export to ONNX). Each direction of each layer runs one way; the backward
        direction reads every row reversed *within its length* (a gather), so it starts at
        the row's last real position as packing does, and padding never reaches a real
        position. ``embeds`` float ``(B, S, E)``, ``attention_mask`` ``(B, S)``, right-padded.
        Returns float ``(B, S, H)``, zero on padding (as after ``pad_packed_sequence``);
        no dropout between layers (inference). ``one_way(inputs, layer, suffix)`` runs one
        direction of one layer (default `_one_way`; the ONNX export passes one-way
        ``nn.LSTM`` modules, which keep the sequence axis dynamic in ``torch.export``)."""
        one_way = one_way or self._one_way
        width = embeds.size(1)
        lengths = attention_mask.long().sum(1, keepdim=True)  # shape: (B, 1)
        steps = torch.arange(width, device=embeds.device).unsqueeze(0)  # shape: (1, S)
        real = steps < lengths  # shape: (B, S)
        # Position t of a row reversed within its length; padding stays where it is.
        flip = torch.where(real, lengths - 1 - steps, steps)  # shape: (B, S)
        hidden = embeds
        for layer in range(self.lstm.num_layers):
            index = flip.unsqueeze(-1).expand(-1, -1, hidden.size(2))  # shape: (B, S, W)
            ahead = one_way(hidden, layer, "")  # padding comes after: harmless
            behind = one_way(hidden.gather(1, index), layer, "_reverse")  # reversed rows
            behind = behind.gather(1, flip.unsqueeze(-1).expand(-1, -1, behind.size(2)))
            hidden = torch.cat([ahead, behind], dim=-1)  # shape: (B, S, H)
            hidden = hidden * real.unsqueeze(-1).to(hidden.dtype)  # zero padding, as packing
        return hidden
