"""Knowledge distillation's loss: a student tagger learns a teacher's per-character tag
distributions, and the gold tags where a sentence has them.

**Soft targets are CRF marginals**, ``p(tag_t = j | text)`` by forward-backward, on both sides
(the teacher's computed once, `cner.inference.predictor.Predictor.tag_distributions`; the
student's differentiably, `CRF.log_marginals`). Not emissions: a CRF's emissions mean nothing
on their own, only together with its transitions (a teacher can move a score between the
two without changing a single prediction), so matching emissions would tie the student to
the teacher's split rather than to what it believes. The marginals are what both taggers'
decisions and `Entity.score` come from, whatever the encoder, and the student's gradient
flows through its own transitions as well. A softmax-head tagger's marginals are the
softmax of its emissions. Measured (the BiLSTM teacher and student of tests/test_distill.py,
raw sample text only, T = 1, two seeds; entity F1 of the student against the teacher on the
sample's test sentences): marginals 0.870 and 0.879, KL of softmax(emissions) 0.716 and 0.664.

**Temperature** ``T`` divides every path score (emissions, start, transitions, end) before
the marginals are taken: the Gibbs distribution over whole paths at temperature T, ``p_T(y)
~ p(y)^(1/T)``. Dividing the emissions alone would leave the transitions T times stronger
relative to them, a distribution no tagger would produce at T = 1. As in Hinton et al.
(2015) the soft loss is multiplied by ``T^2``, which keeps its gradients on the scale of
T = 1 whatever T is, so ``alpha`` means the same at every temperature. (In the measurement
above T = 2 gave 0.821 and 0.865, T = 4 0.775 and 0.688: on a short run T = 1 is the default.)

**The loss** per sentence: ``KL(teacher_T || student_T)`` summed over its characters (on the
scale of the CRF's negative log-likelihood, which also sums over characters); on a labelled
sentence ``alpha * T^2 * KL + (1 - alpha) * NLL(gold)``, on raw text ``T^2 * KL``; the mean
over the batch.
"""
from __future__ import annotations

import torch
from torch import nn

from cner.models.tagger import TokenTagger


def tag_log_probs(model: TokenTagger, scores: torch.Tensor, char_mask: torch.Tensor, *,
                  temperature: float = 1.0) -> torch.Tensor:
    """Per character, the log-probability of every tag: CRF marginals of the path scores
    divided by ``temperature`` (a softmax head: log-softmax of emissions / T).

    ``scores`` float ``(B, L, T)`` (any precision; computed in float32), ``char_mask`` bool
    ``(B, L)``. Returns float32 ``(B, L, T)``, 0 on padding; differentiable.
    """
    if model.head == "crf":
        return model.crf.log_marginals(scores, char_mask, temperature=temperature)
    logp = torch.log_softmax(scores.float() / temperature, dim=-1)  # shape: (B, L, T)
    return logp.masked_fill(~char_mask.unsqueeze(-1), 0.0)


def soft_target_loss(student_log_probs: torch.Tensor, teacher_probs: torch.Tensor,
                     char_mask: torch.Tensor) -> torch.Tensor:
    """``KL(teacher || student)`` of the per-character tag distributions, summed over each
    sequence's characters: float32 ``(B,)``.

    ``student_log_probs`` float ``(B, L, T)`` (`tag_log_probs`), ``teacher_probs`` float
    ``(B, L, T)`` (rows sum to 1; 0 on padding), ``char_mask`` bool ``(B, L)``. A teacher
    probability of 0 (a forbidden tag) contributes 0 (``xlogy``), never NaN.
    """
    teacher = teacher_probs.float()
    kl = torch.special.xlogy(teacher, teacher) - teacher * student_log_probs  # shape: (B, L, T)
    return (kl.sum(-1) * char_mask).sum(-1)  # shape: (B,)


def gold_loss(model: TokenTagger, scores: torch.Tensor, labels: torch.Tensor,
              char_mask: torch.Tensor) -> torch.Tensor:
    """The tagger's own training loss per sequence, float32 ``(B,)``: the CRF's negative
    log-likelihood of ``labels`` (long ``(B, L)``), or the softmax head's cross-entropy summed
    over the characters (what `TokenTagger.forward` averages over the batch)."""
    if model.head == "crf":
        return model.crf(scores, labels, char_mask, reduction="none")
    each = nn.functional.cross_entropy(scores.float().transpose(1, 2), labels,
                                       reduction="none")  # shape: (B, L)
    return (each * char_mask).sum(-1)


class DistillationTagger(TokenTagger):
    """A `TokenTagger` whose training loss is the distillation loss (module docstring); its
    parameters, inference and saved form are the `TokenTagger`'s (build it with
    `cner.models.modeldir.build_tagger(..., tagger_class=DistillationTagger)`)."""

    alpha: float = 0.5  # weight of the soft loss on labelled sentences
    temperature: float = 1.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                char_mask: torch.Tensor, labels: torch.Tensor, soft_targets: torch.Tensor,
                has_gold: torch.Tensor, **features: torch.Tensor) -> torch.Tensor:
        """Mean distillation loss per sequence.

        ``labels`` long ``(B, L)`` (read only where ``has_gold``), ``soft_targets`` float
        ``(B, L, T)`` (the teacher's tag distributions at this temperature), ``has_gold``
        bool ``(B,)``; the rest as `TokenTagger.emissions`.
        """
        scores = self.emissions(input_ids, attention_mask, char_mask,
                                **features)  # shape: (B, L, T)
        t = self.temperature
        soft = soft_target_loss(tag_log_probs(self, scores, char_mask, temperature=t),
                                soft_targets, char_mask) * (t * t)  # shape: (B,)
        loss = torch.where(has_gold, self.alpha, 1.0) * soft  # shape: (B,)
        if self.alpha < 1 and bool(has_gold.any()):  # raw text alone: no gold loss to compute
            gold = gold_loss(self, scores, labels, char_mask)  # shape: (B,)
            loss = loss + torch.where(has_gold, (1 - self.alpha) * gold, 0.0)
        return loss.mean()
