"""The part of a `TokenTagger` that ONNX export traces: ids and features in, emissions out.

`EmissionsGraph` computes exactly `TokenTagger.emissions` in eval mode (dropout off), from
the same inputs the predictor makes (`cner.encoding.batching.collate_inputs`) less
``char_mask``: every window is ``[CLS] chars [SEP]`` right-padded, so the emissions are the
encoder's positions ``1 .. S - 2`` and the mask adds nothing the graph needs. It shares the
tagger's parameters (no copy) and is written so that ``torch.export`` and ONNX see one
graph with dynamic batch and sequence axes:

* the BiLSTM runs as in eval mode, without ``pack_padded_sequence`` (a packed sequence is
  a data-dependent structure that does not export): `BiLSTMEncoder.unpacked`, each direction
  of each layer a one-way ``nn.LSTM`` sharing the tagger's weights (`OneWayLSTMs`; a direct
  ``torch.lstm`` call let ``torch.export`` fix the sequence length of some models, likely
  the stale dispatch cache `cner.runtime.onnxexport._forget_rnn_kernels` clears; not re-tested);
* a transformer encoder runs as the tagger runs it (the predictor's eager attention on CPU);
* bigram, word-boundary and lexicon features are embedded and added to the character
  embeddings as in `TokenTagger.emissions` (lexicon bit masks expand with a bitwise AND).

The CRF is not part of the graph: decoding stays in cner (`cner.models.crf`).
"""
from __future__ import annotations

import torch
from torch import nn

from cner.models.bilstm import BiLSTMEncoder, direction_params

# The graph's inputs, in this order; a model uses the first two and its features' ids.
ID_INPUTS = ("input_ids", "attention_mask")
FEATURE_INPUTS = ("bigram_ids", "boundary_ids", "lexicon_ids")
OUTPUT = "emissions"


def _one_way_lstm(lstm: nn.LSTM, layer: int, suffix: str) -> nn.LSTM:
    """A one-way, one-layer ``nn.LSTM`` on the parameters of ``lstm``'s ``layer`` in one
    direction (``suffix`` ``""`` forward, ``"_reverse"`` backward): shared, not copied."""
    width = lstm.weight_ih_l0.size(1) if layer == 0 else 2 * lstm.hidden_size
    one = nn.LSTM(width, lstm.hidden_size, batch_first=True, bias=lstm.bias)
    for name, param in direction_params(lstm, layer, suffix):
        setattr(one, name, param)
    one.flatten_parameters()
    return one


class OneWayLSTMs(nn.Module):
    """``(inputs, layer, suffix) -> outputs``: one direction of one layer of a BiLSTM
    encoder's ``nn.LSTM``, as the ``one_way`` of `BiLSTMEncoder.unpacked`."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.ahead = nn.ModuleList(_one_way_lstm(lstm, k, "") for k in range(lstm.num_layers))
        self.behind = nn.ModuleList(_one_way_lstm(lstm, k, "_reverse")
                                    for k in range(lstm.num_layers))

    def forward(self, inputs: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        lstm = self.ahead[layer] if suffix == "" else self.behind[layer]
        return lstm(inputs)[0]


def graph_inputs(model: nn.Module) -> list[str]:
    """The input names of ``model``'s `EmissionsGraph`, in call order."""
    used = {"bigram_ids": model.bigram_embeddings is not None,
            "boundary_ids": model.boundary_embeddings is not None,
            "lexicon_ids": model.lexicon_projection is not None}
    return [*ID_INPUTS, *(name for name in FEATURE_INPUTS if used[name])]


class EmissionsGraph(nn.Module):
    """``forward(input_ids, attention_mask, [bigram_ids], [boundary_ids], [lexicon_ids])``
    -> emissions float ``(B, S - 2, T)``: `TokenTagger.emissions` in eval mode, exportable.
    The inputs a model does not use are not arguments (`graph_inputs`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.inputs = graph_inputs(model)
        self.one_ways = OneWayLSTMs(model.encoder.lstm) \
            if isinstance(model.encoder, BiLSTMEncoder) else None

    def _embeds(self, input_ids: torch.Tensor, features: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        model = self.model
        embeds = model.encoder.get_input_embeddings()(input_ids)  # shape: (B, S, H)
        if model.bigram_embeddings is not None:
            embeds = embeds + model.bigram_embeddings(features["bigram_ids"])
        if model.boundary_embeddings is not None:
            embeds = embeds + model.boundary_embeddings(features["boundary_ids"])
        if model.lexicon_projection is not None:
            bits = torch.bitwise_and(features["lexicon_ids"].unsqueeze(-1),
                                     model._bit_values) != 0  # shape: (B, S, 32)
            embeds = embeds + model.lexicon_projection(bits.to(embeds.dtype))
        return embeds

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                *features: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.inputs[len(ID_INPUTS):], features))
        embeds = self._embeds(input_ids, named)  # shape: (B, S, H)
        if self.one_ways is not None:
            hidden = self.model.encoder.unpacked(embeds, attention_mask, self.one_ways)
        else:
            hidden = self.model.encoder(inputs_embeds=embeds,
                                        attention_mask=attention_mask).last_hidden_state
        hidden = hidden[:, 1:hidden.size(1) - 1]  # shape: (B, S-2, H); drop [CLS], last [SEP]/pad
        return self.model.classifier(hidden)  # shape: (B, S-2, T)
