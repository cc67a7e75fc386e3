"""A batch-first linear-chain CRF with optional hard transition constraints.

Shapes use ``B`` = batch, ``L`` = sequence length, ``T`` = number of tags. Every method
takes ``emissions`` float ``(B, L, T)`` and ``mask`` bool ``(B, L)``; each mask row must be
a prefix of True values (right padding) with the first column all True.

Constraints (from `transition_constraints`) are applied by adding ``DISALLOWED`` to the
score of every forbidden start, transition and end, in training and inference alike, so
the model neither learns nor decodes an invalid path such as ``O -> I-PER`` under BIO.
A large finite constant rather than ``-inf`` keeps ``logsumexp`` and its gradient finite
even when a gold path happens to be invalid.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from cner.schemes import check_scheme, split_tag, transition_allowed

# Added to forbidden scores; exp(-1e4) underflows to 0 in float32 yet stays finite.
DISALLOWED = -1e4

REDUCTIONS = ("none", "sum", "mean", "token_mean")


def transition_constraints(tags: list[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(allowed_start (T,), allowed_transitions (T, T), allowed_end (T,))`` bool tensors.

    ``tags[i]`` is the tag of index ``i``; ``allowed_transitions[i, j]`` says whether tag ``i``
    may be followed by tag ``j``. The table is `cner.schemes.transition_allowed`, so the CRF
    and sequence validation agree on what is valid. Raises `SchemeError` for an unknown
    scheme or a tag that does not belong to it.
    """
    scheme = check_scheme(scheme)
    parsed = [split_tag(tag, scheme) for tag in tags]
    start = torch.tensor([transition_allowed(scheme, None, cur) for cur in parsed], dtype=torch.bool)
    end = torch.tensor([transition_allowed(scheme, prev, None) for prev in parsed], dtype=torch.bool)
    trans = torch.tensor([[transition_allowed(scheme, prev, cur) for cur in parsed] for prev in parsed],
                         dtype=torch.bool).reshape(len(tags), len(tags))  # reshape: keeps (0, 0) for no tags
    return start, trans, end


@contextlib.contextmanager
def sequential_cpu(tensor: torch.Tensor) -> Iterator[None]:
    """Run the per-position loops on one CPU thread.

    Each step works on ``(B, T, T)`` tensors of a few hundred elements; a second intra-op
    thread only adds synchronisation (measured: a 7-tag ``max`` took 19-250 us on two threads
    against 6.6 us on one, and far worse when another process holds the other core).
    """
    threads = torch.get_num_threads()
    if tensor.device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags.

    Parameters: ``start_transitions`` ``(T,)``, ``end_transitions`` ``(T,)`` and
    ``transitions`` ``(T, T)`` indexed ``[from, to]``, all float32.

    ``allowed_transitions`` bool ``(T, T)`` ``[from, to]``, ``allowed_start`` bool ``(T,)`` and
    ``allowed_end`` bool ``(T,)`` are optional constraints (``None`` allows everything). They
    are stored as persistent buffers so a saved ``state_dict`` carries them.

    All scores are computed in float32 even for bf16/fp16 emissions (e.g. under autocast):
    the forward algorithm sums long chains of log-scores, which half precision cannot hold.
    """

    def __init__(self, num_tags: int, *, allowed_transitions: torch.Tensor | None = None,
                 allowed_start: torch.Tensor | None = None, allowed_end: torch.Tensor | None = None) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be at least 1, got {num_tags}")
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.reset_parameters()
        self.register_buffer("allowed_start", self._constraint(allowed_start, (num_tags,), "allowed_start"))
        self.register_buffer("allowed_end", self._constraint(allowed_end, (num_tags,), "allowed_end"))
        self.register_buffer("allowed_transitions",
                             self._constraint(allowed_transitions, (num_tags, num_tags), "allowed_transitions"))

    def reset_parameters(self) -> None:
        # Small symmetric init, as pytorch-crf: no tag or transition is favoured at the start.
        for param in (self.start_transitions, self.end_transitions, self.transitions):
            nn.init.uniform_(param, -0.1, 0.1)

    @staticmethod
    def _constraint(value: torch.Tensor | None, shape: tuple[int, ...], name: str) -> torch.Tensor:
        if value is None:
            return torch.ones(shape, dtype=torch.bool)
        value = torch.as_tensor(value)
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
        if value.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor, got {value.dtype}")
        return value.detach().clone()

    def extra_repr(self) -> str:
        constrained = not (self.allowed_start.all() and self.allowed_end.all() and self.allowed_transitions.all())
        return f"num_tags={self.num_tags}, constrained={bool(constrained)}"

    # -- scores with constraints folded in ---------------------------------------------------

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(start (T,), transitions (T, T), end (T,))`` float32 with forbidden entries penalised."""
        # masked_fill would cut the gradient to forbidden entries; adding a constant keeps it
        # (it is ~0 anyway) and keeps the parameters themselves unconstrained.
        def penalise(param: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
            return param.float() + (~allowed).to(torch.float32) * DISALLOWED
        return (penalise(self.start_transitions, self.allowed_start),
                penalise(self.transitions, self.allowed_transitions),
                penalise(self.end_transitions, self.allowed_end))

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor | None = None) -> torch.Tensor:
        """Validate shapes and return the emissions as float32 ``(B, L, T)``."""
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(f"emissions must have shape (batch, seq_len, {self.num_tags}), "
                             f"got {tuple(emissions.shape)}")
        if not emissions.is_floating_point():
            raise ValueError(f"emissions must be floating point, got {emissions.dtype}")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match emissions "
                             f"(batch, seq_len) = {tuple(emissions.shape[:2])}")
        if tags is not None and tags.shape != emissions.shape[:2]:
            raise ValueError(f"tags shape {tuple(tags.shape)} does not match emissions "
                             f"(batch, seq_len) = {tuple(emissions.shape[:2])}")
        if emissions.shape[1] == 0 or not mask[:, 0].all():
            raise ValueError("mask[:, 0] must be all True: every sequence needs at least one position")
        if (mask[:, 1:] & ~mask[:, :-1]).any():
            raise ValueError("each mask row must be a prefix of True values (right padding only)")
        return emissions.float()

    # -- training ----------------------------------------------------------------------------

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, *,
                reduction: str = "mean") -> torch.Tensor:
        """Negative log-likelihood of ``tags``.

        ``emissions`` float ``(B, L, T)``; ``tags`` long ``(B, L)`` (values at masked-out
        positions are ignored, so ``-100`` padding is fine); ``mask`` bool ``(B, L)``.
        ``reduction``: ``"none"`` gives ``(B,)``; ``"sum"``; ``"mean"`` over the batch;
        ``"token_mean"`` divides the sum by the number of masked-in tokens. Float32.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        nll = -self.log_likelihood(emissions, tags, mask)  # shape: (B,)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        return nll.sum() / mask.sum().clamp(min=1)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log p(tags | emissions)`` per sequence, float32 ``(B,)``.

        ``emissions`` float ``(B, L, T)``; ``tags`` long ``(B, L)``; ``mask`` bool ``(B, L)``.
        """
        emissions = self._check(emissions, mask, tags)
        return self._path_score(emissions, tags, mask) - self._log_z(emissions, mask)

    def _path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised score of ``tags`` (B, L) long, float32 ``(B,)``; no loop needed."""
        start, trans, end = self._scores()
        tags = tags.long().masked_fill(~mask, 0)  # padding values (-100 etc.) must not index
        maskf = mask.to(emissions.dtype)  # shape: (B, L)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # shape: (B, L)
        step = trans[tags[:, :-1], tags[:, 1:]]  # shape: (B, L-1)
        lengths = mask.sum(1)  # shape: (B,)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # shape: (B,)
        return (start[tags[:, 0]] + (emit * maskf).sum(1)
                + (step * maskf[:, 1:]).sum(1) + end[last])

    # -- inference ---------------------------------------------------------------------------

    def _alphas(self, emissions: torch.Tensor, mask: torch.Tensor,
                start: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """Forward log-scores ``(B, L, T)``: alpha[b, t, j] sums all prefixes ending in j at t.

        At padded positions alpha is carried over unchanged, so ``alphas[:, -1]`` is each
        sequence's alpha at its own last position.
        """
        alpha = start + emissions[:, 0]  # shape: (B, T)
        out = [alpha]
        for t in range(1, emissions.shape[1]):
            # [b, i, j] = alpha[b, i] + trans[i, j]; sum out the previous tag i.
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]  # shape: (B, T)
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)  # shape: (B, T)
            out.append(alpha)
        return torch.stack(out, dim=1)  # shape: (B, L, T)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` (log-sum-exp of all path scores) per sequence, float32 ``(B,)``.

        ``emissions`` float ``(B, L, T)``; ``mask`` bool ``(B, L)``.
        """
        return self._log_z(self._check(emissions, mask), mask)

    def _log_z(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`log_partition` on already-checked float32 emissions, ``(B,)``."""
        start, trans, end = self._scores()
        with sequential_cpu(emissions):
            alphas = self._alphas(emissions, mask, start, trans)  # shape: (B, L, T)
        return torch.logsumexp(alphas[:, -1] + end, dim=1)  # shape: (B,)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor, *,
                  temperature: float = 1.0) -> torch.Tensor:
        """Posterior ``p(tag_t = j | emissions)`` by forward-backward, float32 ``(B, L, T)``.

        ``emissions`` float ``(B, L, T)``; ``mask`` bool ``(B, L)``. Rows sum to 1 where
        ``mask`` is True and are 0 elsewhere. ``temperature``: the marginals of the path
        distribution with every score (emissions, start, transitions, end) divided by it,
        ``p_T(y) ~ exp(score(y) / T)``; above 1 it is softer (knowledge distillation).
        """
        emissions = self._check(emissions, mask)
        with sequential_cpu(emissions):
            probs = torch.softmax(self._through(emissions, mask, temperature), dim=2)
        return probs * mask.unsqueeze(2).to(probs.dtype)  # shape: (B, L, T)

    def log_marginals(self, emissions: torch.Tensor, mask: torch.Tensor, *,
                      temperature: float = 1.0) -> torch.Tensor:
        """``log`` of `marginals`, float32 ``(B, L, T)``, 0 where ``mask`` is False;
        differentiable (a student's side of a distillation loss). Forbidden tags get about
        ``DISALLOWED / temperature``, finite, so ``0 * log p`` never makes a NaN."""
        emissions = self._check(emissions, mask)
        with sequential_cpu(emissions):
            logp = torch.log_softmax(self._through(emissions, mask, temperature), dim=2)
        return logp.masked_fill(~mask.unsqueeze(2), 0.0)  # shape: (B, L, T)

    def _through(self, emissions: torch.Tensor, mask: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
        """``alpha + beta`` float32 ``(B, L, T)``: per position and tag the log-score of all
        paths through it (a softmax over tags gives the marginals), every score divided by
        ``temperature``."""
        start, trans, end = (score / temperature for score in self._scores())
        emissions = emissions / temperature
        alphas = self._alphas(emissions, mask, start, trans)  # shape: (B, L, T)
        seq_len = emissions.shape[1]
        beta = end.expand_as(emissions[:, 0])  # shape: (B, T)
        betas = [beta]
        for t in range(seq_len - 2, -1, -1):
            # [b, i, j] = trans[i, j] + emission and beta of the next tag j; sum out j.
            nxt = torch.logsumexp(trans + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)  # shape: (B, T)
            # Where t+1 is padding, t is the last real position (or padding): only the end score follows.
            beta = torch.where(mask[:, t + 1].unsqueeze(1), nxt, end.expand_as(nxt))  # shape: (B, T)
            betas.append(beta)
        betas = torch.stack(betas[::-1], dim=1)  # shape: (B, L, T)
        # alpha + beta is the log-score of all paths through (t, j); a softmax over j divides
        # by Z and makes each row sum to exactly 1 without a separate log Z.
        return alphas + betas

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi: the highest-scoring tag path, long ``(B, L)`` with ``-1`` where ``mask`` is False.

        ``emissions`` float ``(B, L, T)``; ``mask`` bool ``(B, L)``. Forbidden starts,
        transitions and ends are never chosen while any allowed path exists.
        """
        emissions = self._check(emissions, mask)
        with sequential_cpu(emissions):
            return self._viterbi(emissions, mask)

    def _viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans, end = self._scores()
        batch, seq_len, num_tags = emissions.shape
        score = start + emissions[:, 0]  # shape: (B, T)
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)  # shape: (B, T)
        backpointers = []
        for t in range(1, seq_len):
            best, prev = (score.unsqueeze(2) + trans).max(dim=1)  # shape: (B, T) each; prev = best previous tag
            keep = mask[:, t].unsqueeze(1)  # shape: (B, 1)
            score = torch.where(keep, best + emissions[:, t], score)
            # Padding points each tag back to itself, so backtracking from the final column
            # passes unchanged through the padding to the sequence's real last tag.
            backpointers.append(torch.where(keep, prev, identity))
        tag = (score + end).argmax(dim=1)  # shape: (B,)
        path = [tag]
        for pointers in reversed(backpointers):  # pointers shape: (B, T)
            tag = pointers.gather(1, tag.unsqueeze(1)).squeeze(1)  # shape: (B,)
            path.append(tag)
        path = torch.stack(path[::-1], dim=1)  # shape: (B, L)
        return path.masked_fill(~mask, -1)

    @torch.no_grad()
    def decode_with_marginals(self, emissions: torch.Tensor, mask: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """`decode` and `marginals` together: ``(best long (B, L), probs float32 (B, L, T))``.

        On CPU both run in NumPy: each step of the three loops works on a few hundred
        numbers, where a NumPy call costs about a microsecond and a torch call several, so
        this is ~3x faster than the torch loops (which GPUs keep). The forward-backward runs
        in probability space with every step renormalised (float64), which gives the same
        posteriors as log space; if a row ever underflows it falls back to the log-space code.
        """
        emissions = self._check(emissions, mask)
        if emissions.device.type != "cpu":
            return self.decode(emissions, mask), self.marginals(emissions, mask)
        start, trans, end = (x.detach().double().numpy() for x in self._scores())
        lengths = mask.sum(1).numpy()
        order = np.argsort(-lengths, kind="stable")  # longest first: running rows are a prefix
        em = emissions.detach().double().numpy()[order]  # shape: (B, L, T)
        best, probs = np.empty(em.shape[:2], dtype=np.int64), np.empty_like(em)
        best[order] = _viterbi_numpy(em, lengths[order], start, trans, end)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            probs[order] = _marginals_numpy(em, lengths[order], start, trans, end)
        if not np.isfinite(probs).all():
            probs = self.marginals(emissions, mask).numpy()
        return torch.from_numpy(best), torch.from_numpy(probs.astype(np.float32))


def _running_rows(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    """Per position ``t``, how many rows are longer than ``t`` (rows sorted longest first, so
    those are the first ones): the loops below touch only them, never padding."""
    return (lengths[None, :] > np.arange(seq_len + 1)[:, None]).sum(1)  # shape: (L + 1,)


def _viterbi_numpy(em: np.ndarray, lengths: np.ndarray, start: np.ndarray, trans: np.ndarray,
                   end: np.ndarray) -> np.ndarray:
    """`CRF._viterbi` on float64 arrays: ``em`` (B, L, T) with rows sorted by decreasing
    ``lengths`` (B,). Returns long (B, L), -1 on padding."""
    batch, seq_len, num_tags = em.shape
    running = _running_rows(lengths, seq_len)
    score = start + em[:, 0]  # shape: (B, T); a finished row keeps its final score
    back = np.zeros((seq_len, batch, num_tags), dtype=np.int64)
    for t in range(1, seq_len):
        n = running[t]
        cand = score[:n, :, None] + trans  # shape: (n, T, T) [b, from, to]
        back[t, :n] = cand.argmax(1)
        score[:n] = cand.max(1) + em[:n, t]  # max: cheaper than gathering at the argmax
    path = np.full((batch, seq_len), -1, dtype=np.int64)
    tag = (score + end).argmax(1)  # shape: (B,); each row's tag at its last position
    for t in range(seq_len - 1, -1, -1):
        n = running[t]
        path[:n, t] = tag[:n]
        if t:
            tag[:n] = back[t, np.arange(n), tag[:n]]
    return path


def _marginals_numpy(em: np.ndarray, lengths: np.ndarray, start: np.ndarray, trans: np.ndarray,
                     end: np.ndarray) -> np.ndarray:
    """`CRF._marginals` in probability space (rows of scaled alphas/betas sum to 1), on rows
    sorted by decreasing ``lengths``; 0 on padding, NaN where a row underflowed."""
    batch, seq_len, num_tags = em.shape
    running = _running_rows(lengths, seq_len)
    weights = np.exp(trans)  # shape: (T, T); forbidden transitions are exactly 0
    emit = np.exp(em - em.max(2, keepdims=True))  # shape: (B, L, T), max 1 per position
    alphas = np.zeros_like(em)
    alpha = np.exp(start - start.max()) * emit[:, 0]  # shape: (B, T)
    alpha /= alpha.sum(1, keepdims=True)
    alphas[:, 0] = alpha
    for t in range(1, seq_len):
        n = running[t]
        nxt = (alpha[:n] @ weights) * emit[:n, t]
        alpha[:n] = nxt / nxt.sum(1, keepdims=True)
        alphas[:n, t] = alpha[:n]
    end_weights = np.exp(end - end.max())
    beta = np.tile(end_weights / end_weights.sum(), (batch, 1))  # at each row's last position
    betas = np.zeros_like(em)
    for t in range(seq_len - 1, -1, -1):
        m = running[t + 1]  # rows that go on after t take their beta from t + 1
        if m:
            nxt = (emit[:m, t + 1] * beta[:m]) @ weights.T
            beta[:m] = nxt / nxt.sum(1, keepdims=True)
        betas[:running[t], t] = beta[:running[t]]
    probs = alphas * betas
    total = probs.sum(2, keepdims=True)
    padding = np.arange(seq_len)[None, :, None] >= lengths[:, None, None]
    return probs / np.where(padding, 1.0, total)
