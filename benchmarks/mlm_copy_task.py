"""Diagnostic: can an encoder learn to use context at all? A masked-LM copy task.

Every sequence is random characters each written twice in a row (``ab`` -> ``aabb``); 15% of
the positions are replaced by ``[MASK]`` and predicted. The answer is always visible next
door, so an encoder that attends to its neighbours drives the loss from ln(V) (~5.3) towards
0 within a few hundred steps; one that does not stays at ln(V).

Models (2 layers, 128 wide, 4 heads, intermediate 256, dropout 0.1, AdamW lr ``--lr``):

  cner      cner's `MaskedLanguageModel` over `scratch_encoder` (Hugging Face ``BertModel``,
            BERT's prediction head tied to the embeddings): what ``cner pretrain`` trains
  torch     ``nn.TransformerEncoder`` (post-LN) under BERT's front end (word + position
            embeddings N(0, 0.02), LayerNorm) with a linear output layer

Session 7 (issue 14): torch fell to a loss of 0.5-0.8 by step 300-400, while every BERT
variant tried stayed at 5.28 for 600-1,200 steps. Narrowed down (600 steps each, lr 1e-3):
  * Hugging Face ``BertEncoder`` layers under torch's front end and linear head, with
    BERT's N(0, 0.02) initialisation: stalls (5.21 at 600);
  * the same ``BertLayer``s with a fresh ``nn.TransformerEncoderLayer``'s weights copied in
    (Xavier Q/K/V with zero biases, torch's Linear defaults elsewhere), GELU or ReLU: learns
    (1.2-1.4 at 300, 0.8 at 400) -- so BERT's *initialisation* of the layers is one cause;
  * that torch-style layer initialisation inside cner's model (BERT's embeddings with token
    types, dropout and LayerNorm eps 1e-12; BERT's prediction head tied to the embeddings, or a
    linear head): still stalls (5.15-5.28 at 600) -- a second cause sits in BERT's embeddings.
Session 8 found the second cause: the token-type embedding. BERT adds row 0 of it at every
position; trainable (even zero-initialised) with the embeddings' dropout, it drifts as a
constant and the model stays at ln(V); frozen at zero, the cner model learns (1.5 at 400, 0.8
at 600) with BERT's own N(0, 0.02) layer initialisation, and so does the torch-style one.
`scratch_encoder` now holds the token-type rows at zero. Even so, when to leave ln(V) varies
with the seed and the vocabulary (400-800 steps in cner's own pipeline on doubled text); a
locality prior at initialisation (sinusoidal positions, query/key projections near the
identity) made it ~150 steps on this task, but gave nothing on real text (mlm_real_text.py:
loss 5.94 against 5.85 after 1,000 steps), so it was not adopted.
Run this first after changing how the scratch encoder is built or initialised.

    python benchmarks/mlm_copy_task.py --steps 1000
"""
from __future__ import annotations

import argparse
import sys
import time

import common  # noqa: F401

V, H, LAYERS, HEADS, INTER, LENGTH, BATCH = 206, 128, 2, 4, 256, 64, 32


def cner_model():
    from cner.config import ModelConfig
    from cner.encoding.vocab import CharVocab
    from cner.models.encoders import scratch_encoder
    from cner.models.mlm import MaskedLanguageModel

    vocab = CharVocab.build(["".join(chr(0x4E00 + i) for i in range(V - 6))])
    cfg = ModelConfig(encoder="scratch", hidden_size=H, num_layers=LAYERS, num_heads=HEADS,
                      intermediate_size=INTER, dropout=0.1)
    model = MaskedLanguageModel(scratch_encoder(cfg, vocab, max_positions=128))
    mask_id = vocab.tokens.index("[MASK]")

    def loss(inputs, labels):
        return model(inputs, (inputs >= 0).long(), labels)
    return model, loss, mask_id, len(vocab)


def torch_model():
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words, self.positions = nn.Embedding(V, H), nn.Embedding(128, H)
            nn.init.normal_(self.words.weight, 0, 0.02)
            nn.init.normal_(self.positions.weight, 0, 0.02)
            self.norm = nn.LayerNorm(H)
            layer = nn.TransformerEncoderLayer(H, HEADS, INTER, 0.1, batch_first=True)
            self.layers = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.out = nn.Linear(H, V)

        def forward(self, ids):
            steps = torch.arange(ids.size(1))
            return self.out(self.layers(self.norm(self.words(ids) + self.positions(steps))))

    model = Encoder()

    def loss(inputs, labels):
        selected = labels != -100
        return nn.functional.cross_entropy(model(inputs)[selected], labels[selected])
    return model, loss, 4, V


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--models", default="cner,torch")
    args = parser.parse_args(argv)
    import torch

    for name in args.models.split(","):
        torch.manual_seed(0)
        model, loss_of, mask_id, vocab_size = {"cner": cner_model, "torch": torch_model}[name]()
        optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr)
        started, curve = time.perf_counter(), []
        for step in range(args.steps + 1):
            base = torch.randint(10, vocab_size, (BATCH, LENGTH // 2))
            ids = base.repeat_interleave(2, dim=1)
            selected = torch.rand(BATCH, LENGTH) < 0.15
            labels = torch.where(selected, ids, torch.full_like(ids, -100))
            inputs = torch.where(selected, torch.full_like(ids, mask_id), ids)
            loss = loss_of(inputs, labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step % args.every == 0:
                curve.append(f"{step}: {loss.item():.2f}")
        print(f"{name:6s} ({time.perf_counter() - started:.0f} s) " + ", ".join(curve),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
