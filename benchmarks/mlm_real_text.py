"""Diagnostic: the first steps of masked-LM training on real text, cner's BERT against torch's.

Is the slow start of ``cner pretrain`` (held-out accuracy near 15% for the first thousands of
steps, fill-mask answers ``，的。``) something wrong with cner's scratch BERT, or how every
small transformer starts on this text? Each model is trained for ``--steps`` steps on the
same batches (the pre-training text read as `cner pretrain` reads it, its first ``--chars``
characters, packed into 128 positions as ``cner pretrain`` packs them, whole-word masking by
cner's `Masker`), with the same optimiser (AdamW lr 1e-3, 50 warm-up steps, clipping at 1.0), one thread each:

  cner      cner's `MaskedLanguageModel` over `scratch_encoder` (Hugging Face ``BertModel``,
            post-LN, BERT's tied prediction head)
  torch     ``nn.TransformerEncoder``, post-LN (as BERT), GELU, word + position embeddings
            with a LayerNorm in front, a linear output layer
  torchpre  the same with pre-LN layers and a final LayerNorm (what GPT-2 and most recent
            encoders use; not a shape ``BertModel`` can load)

Every model is 2 layers x 128 wide, 2 heads, intermediate 512, dropout 0.1. Printed: mean
training loss / accuracy over each 100 steps.

Session 8 (issue 14), 1,000 steps, the first 400,000 characters of runs/pretrain.txt:

  cner      7.01/4% 6.54/5% 6.33/7% 6.19/10% 6.07/12% 5.97/13% 5.95/13% 5.92/13% 5.88/13% 5.85/14%
  torch     6.93/5% 6.23/11% 6.03/12% 5.93/13% 5.87/13% 5.82/13% 5.80/13% 5.78/13% 5.74/13% 5.71/14%
  torchpre  6.94/5% 6.23/11% 6.04/12% 5.95/13% 5.88/13% 5.83/13% 5.81/13% 5.79/13% 5.75/13% 5.72/14%

All three reach the same ~14% by step 1,000 (torch's curves lead by ~0.1 nats): on real text
the long early stretch is how a small transformer starts, not a defect of cner's BERT. (On the
copy task of mlm_copy_task.py, where the answer is next door, the difference was real and is
fixed: the token-type embeddings.)

    python benchmarks/mlm_real_text.py --steps 1000 --models cner,torch,torchpre
"""
from __future__ import annotations

import argparse
import sys
import time

import common

H, LAYERS, HEADS, INTER, LENGTH, BATCH = 128, 2, 2, 512, 128, 32
TEXT = common.ROOT / "runs" / "pretrain.txt"


def documents(path, chars: int) -> list[list[str]]:
    """The documents of ``path`` as `cner pretrain` reads them (`read_documents`), up to the
    line that would pass ``chars`` characters (newlines counted)."""
    from cner.data.text import read_documents

    docs, total = [], 0
    for doc in read_documents([path]):
        kept = []
        for line in doc:
            total += len(line) + 1
            if total > chars:
                return docs + ([kept] if kept else [])
            kept.append(line)
        docs.append(kept)
        total += 1  # the blank line between documents
    return docs


def cner_model(vocab):
    from cner.config import ModelConfig
    from cner.models.encoders import scratch_encoder
    from cner.models.mlm import MaskedLanguageModel

    cfg = ModelConfig(encoder="scratch", hidden_size=H, num_layers=LAYERS, num_heads=HEADS,
                      intermediate_size=INTER, dropout=0.1)
    model = MaskedLanguageModel(scratch_encoder(cfg, vocab, max_positions=512))
    return model, lambda ids, mask, labels: model.outputs(ids, mask, labels)[:2]


def torch_model(vocab, *, pre_ln: bool):
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words, self.positions = nn.Embedding(len(vocab), H), nn.Embedding(512, H)
            nn.init.normal_(self.words.weight, 0, 0.02)
            nn.init.normal_(self.positions.weight, 0, 0.02)
            self.norm = nn.LayerNorm(H)
            layer = nn.TransformerEncoderLayer(H, HEADS, INTER, 0.1, activation="gelu",
                                               batch_first=True, norm_first=pre_ln)
            self.layers = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.final = nn.LayerNorm(H) if pre_ln else nn.Identity()
            self.out = nn.Linear(H, len(vocab))

        def forward(self, ids, mask, labels):
            states = self.words(ids) + self.positions(torch.arange(ids.size(1)))
            states = self.final(self.layers(self.norm(states), src_key_padding_mask=mask == 0))
            selected = labels != -100
            return self.out(states[selected]), labels[selected]

    model = Encoder()
    return model, model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--chars", type=int, default=400_000)
    parser.add_argument("--text", default=str(TEXT))
    parser.add_argument("--models", default="cner,torch,torchpre")
    args = parser.parse_args(argv)
    import numpy as np
    import torch

    from cner.encoding.masking import Masker, MaskingSpec
    from cner.encoding.packing import BatchBuilder, pack_documents
    from cner.encoding.vocab_builder import count_characters, vocab_from_counts

    torch.set_num_threads(1)
    docs = documents(args.text, args.chars)
    counts = count_characters((line for doc in docs for line in doc), lowercase=True,
                              halfwidth=True)
    vocab = vocab_from_counts(counts, size=8000, reserved=100, min_count=2, lowercase=True,
                              halfwidth=True)[0]
    packed = pack_documents(docs, vocab, length=LENGTH - 2, words=True)
    builder = BatchBuilder(packed, vocab, Masker(MaskingSpec(strategy="wwm"), vocab), "none")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model, outputs = (cner_model(vocab) if name == "cner" else
                          torch_model(vocab, pre_ln=name == "torchpre"))
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=1e-3, weight_decay=0.01)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 50))
        rng, losses, hits, curve = np.random.default_rng(0), [], [], []
        started = time.perf_counter()
        for step in range(args.steps):
            batch = builder.build(rng.choice(len(packed), BATCH, replace=False).tolist(), rng)
            logits, targets = outputs(batch["input_ids"], batch["attention_mask"],
                                      batch["labels"])
            loss = torch.nn.functional.cross_entropy(logits, targets)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            warmup.step()
            losses.append(loss.item())
            hits.append((logits.argmax(-1) == targets).float().mean().item())
            if (step + 1) % 100 == 0:
                curve.append(f"{np.mean(losses[-100:]):.2f}/{100 * np.mean(hits[-100:]):.0f}%")
        print(f"{name:8s} ({time.perf_counter() - started:.0f} s) " + " ".join(curve),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
