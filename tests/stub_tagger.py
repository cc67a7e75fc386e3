"""A tagger with an exact, hand-written model, for tests of windows, merging and outputs.

`StubModel` tags 张 as B-PER and 伟/明 as I-PER, everything else O, from the ids alone; the
chosen tag has probability 0.9. Exact, so window merging and file contents can be checked
exactly, without training.
"""
from __future__ import annotations

import torch

from cner.encoding.features import Featurizer
from cner.encoding.vocab import CharVocab
from cner.inference.predictor import Predictor
from cner.inference.tagger import Tagger
from cner.runtime.engine import Engine


class StubModel:
    tags = ["O", "B-PER", "I-PER"]
    scheme = "bio"

    def __init__(self, vocab: CharVocab) -> None:
        self.b_id, self.i_ids = vocab.char_id("张"), [vocab.char_id(c) for c in "伟明"]

    def emissions(self, input_ids, attention_mask, char_mask, **features):
        chars = input_ids[:, 1:1 + char_mask.size(1)]
        best = torch.zeros_like(chars)
        best[torch.isin(chars, torch.tensor(self.i_ids))] = 2
        best[chars == self.b_id] = 1
        return torch.nn.functional.one_hot(best, 3).float()  # shape: (B, L, 3)

    def decode_emissions(self, scores, char_mask):
        best = scores.argmax(-1)
        probs = torch.full((*best.shape, 3), 0.05).scatter(-1, best.unsqueeze(-1), 0.9)
        return best.masked_fill(~char_mask, -1), probs * char_mask.unsqueeze(-1)


STUB_VOCAB = CharVocab.build(["张伟明在北京工作。"])


def stub_tagger(max_length: int = 128, overlap: int = 32, batch_size: int = 64) -> Tagger:
    engine = Engine(StubModel(STUB_VOCAB), torch.device("cpu"), "fp32", inference_only=True)
    return Tagger(Predictor(engine, Featurizer(STUB_VOCAB), max_length=max_length,
                            overlap=overlap, batch_size=batch_size), None)
