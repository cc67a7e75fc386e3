"""The CRF against brute-force enumeration of every tag path, pytorch-crf, and the BIO table."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from cner.models.crf import CRF, transition_constraints
from cner.schemes import find_invalid

BIO_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


# -- brute force ------------------------------------------------------------------------------

def _allowed(crf: CRF, path: tuple[int, ...]) -> bool:
    return (bool(crf.allowed_start[path[0]]) and bool(crf.allowed_end[path[-1]])
            and all(bool(crf.allowed_transitions[a, b]) for a, b in zip(path, path[1:])))


def _score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    """Raw (unpenalised) score of ``path`` over ``emissions`` (length, T), in float64."""
    em = emissions.detach().double()
    s = crf.start_transitions.detach().double()[path[0]] + crf.end_transitions.detach().double()[path[-1]]
    s = s + sum(em[t, y] for t, y in enumerate(path))
    s = s + sum(crf.transitions.detach().double()[a, b] for a, b in zip(path, path[1:]))
    return float(s)


def _paths(crf: CRF, emissions: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Score of every allowed path; disallowed paths are skipped, i.e. have probability 0."""
    length, num_tags = emissions.shape
    return {p: _score(crf, emissions, p) for p in itertools.product(range(num_tags), repeat=length)
            if _allowed(crf, p)}


def _log_z(scores: dict) -> float:
    return float(torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0))


def _enumerated_marginals(scores: dict, n: int, num_tags: int) -> torch.Tensor:
    """``p(tag_t = y)`` float64 ``(n, num_tags)`` summed over every enumerated path."""
    log_z = _log_z(scores)
    expected = torch.zeros(n, num_tags, dtype=torch.float64)
    for path, s in scores.items():
        for t, y in enumerate(path):
            expected[t, y] += math.exp(s - log_z)
    return expected


def _random_constraints(num_tags: int, gen: torch.Generator):
    """Random tables that always allow the path 0 0 ... 0, so every length has a valid path."""
    trans = torch.rand(num_tags, num_tags, generator=gen) < 0.7
    start = torch.rand(num_tags, generator=gen) < 0.7
    end = torch.rand(num_tags, generator=gen) < 0.7
    trans[0, 0] = start[0] = end[0] = True
    return dict(allowed_transitions=trans, allowed_start=start, allowed_end=end)


def _case(seed: int, num_tags: int, constrained: bool):
    """A CRF with non-trivial parameters and a batch of lengths 4, 1, 3, 2 (padding is garbage)."""
    gen = torch.Generator().manual_seed(seed)
    crf = CRF(num_tags, **(_random_constraints(num_tags, gen) if constrained else {}))
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    lengths = [4, 1, 3, 2]
    emissions = torch.randn(len(lengths), 4, num_tags, generator=gen) * 2
    mask = torch.arange(4) < torch.tensor(lengths).unsqueeze(1)
    emissions[~mask] = 1e3  # garbage that would dominate if padding leaked in
    return crf, emissions, mask, lengths


CASES = [(seed, num_tags, constrained) for seed, num_tags in [(0, 3), (1, 4), (2, 3)]
         for constrained in (False, True)]


# -- exactness against enumeration ------------------------------------------------------------

@pytest.mark.parametrize("seed,num_tags,constrained", CASES)
def test_log_partition_and_log_likelihood_match_enumeration(seed, num_tags, constrained):
    crf, emissions, mask, lengths = _case(seed, num_tags, constrained)
    gen = torch.Generator().manual_seed(100 + seed)
    tags = torch.full(mask.shape, -100, dtype=torch.long)  # -100 padding must be ignored
    expected_z, expected_ll = [], []
    for b, n in enumerate(lengths):
        scores = _paths(crf, emissions[b, :n])
        valid = sorted(scores)
        gold = valid[int(torch.randint(len(valid), (1,), generator=gen))]
        tags[b, :n] = torch.tensor(gold)
        expected_z.append(_log_z(scores))
        expected_ll.append(scores[gold] - expected_z[-1])
    torch.testing.assert_close(crf.log_partition(emissions, mask).double(),
                               torch.tensor(expected_z, dtype=torch.float64), rtol=1e-5, atol=1e-4)
    ll = crf.log_likelihood(emissions, tags, mask)
    assert ll.shape == (len(lengths),) and ll.dtype == torch.float32
    torch.testing.assert_close(ll.double(), torch.tensor(expected_ll, dtype=torch.float64),
                               rtol=1e-5, atol=1e-4)
    assert (ll <= 1e-5).all()


@pytest.mark.parametrize("seed,num_tags,constrained", CASES)
def test_decode_matches_enumeration(seed, num_tags, constrained):
    crf, emissions, mask, lengths = _case(seed, num_tags, constrained)
    decoded = crf.decode(emissions, mask)
    assert decoded.dtype == torch.long and decoded.shape == mask.shape
    for b, n in enumerate(lengths):
        scores = _paths(crf, emissions[b, :n])
        best = max(scores, key=scores.get)
        assert tuple(decoded[b, :n].tolist()) == best
        assert (decoded[b, n:] == -1).all()


@pytest.mark.parametrize("seed,num_tags,constrained", CASES)
def test_marginals_match_enumeration(seed, num_tags, constrained):
    crf, emissions, mask, lengths = _case(seed, num_tags, constrained)
    marg = crf.marginals(emissions, mask)
    assert marg.shape == emissions.shape and marg.dtype == torch.float32
    for b, n in enumerate(lengths):
        scores = _paths(crf, emissions[b, :n])
        torch.testing.assert_close(marg[b, :n].double(), _enumerated_marginals(scores, n, num_tags),
                                   rtol=1e-4, atol=1e-5)
        assert (marg[b, n:] == 0).all()
    torch.testing.assert_close(marg.sum(2), mask.float())


@pytest.mark.parametrize("seed,num_tags,constrained", CASES)
def test_numpy_decode_with_marginals_matches_enumeration(seed, num_tags, constrained):
    crf, emissions, mask, lengths = _case(seed, num_tags, constrained)
    best, marg = crf.decode_with_marginals(emissions, mask)
    assert best.dtype == torch.long and marg.dtype == torch.float32
    for b, n in enumerate(lengths):
        scores = _paths(crf, emissions[b, :n])
        assert tuple(best[b, :n].tolist()) == max(scores, key=scores.get)
        assert (best[b, n:] == -1).all() and (marg[b, n:] == 0).all()
        torch.testing.assert_close(marg[b, :n].double(), _enumerated_marginals(scores, n, num_tags),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 30.0, 3000.0])
def test_numpy_path_agrees_with_torch_loops_on_bio_batches(scale):
    tags = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    start, trans, end = transition_constraints(tags, "bio")
    crf = CRF(len(tags), allowed_transitions=trans, allowed_start=start, allowed_end=end)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 3)
    lengths = torch.randint(1, 60, (32,), generator=gen)
    emissions = torch.randn(32, 60, len(tags), generator=gen) * scale  # 3000: exp underflows
    mask = torch.arange(60) < lengths.unsqueeze(1)
    best, marg = crf.decode_with_marginals(emissions, mask)
    assert torch.equal(best, crf.decode(emissions, mask))
    # The torch loops sum log-scores of thousands in float32 (ulp ~2e-4 there); the NumPy
    # path is float64 and checked exactly against enumeration above.
    torch.testing.assert_close(marg, crf.marginals(emissions, mask), rtol=1e-3, atol=2e-4)
    for row, n in zip(best.tolist(), lengths.tolist()):
        assert find_invalid([tags[t] for t in row[:n]], "bio") == []


# -- padding ----------------------------------------------------------------------------------

def test_padding_changes_nothing():
    gen = torch.Generator().manual_seed(7)
    crf = CRF(5, **dict(zip(("allowed_start", "allowed_transitions", "allowed_end"),
                            transition_constraints(BIO_TAGS, "bio"))))
    short_em = torch.randn(1, 3, 5, generator=gen)
    short_tags = torch.tensor([[1, 2, 0]])
    alone_mask = torch.ones(1, 3, dtype=torch.bool)

    long_em = torch.randn(6, 5, generator=gen)
    emissions = torch.stack([torch.cat([short_em[0], 50 * torch.randn(3, 5, generator=gen)]), long_em])
    tags = torch.tensor([[1, 2, 0, -100, 7, 3], [0, 3, 4, 4, 0, 1]])  # -100/7: garbage in padding
    mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])

    torch.testing.assert_close(crf.log_likelihood(emissions, tags, mask)[:1],
                               crf.log_likelihood(short_em, short_tags, alone_mask))
    assert crf.decode(emissions, mask)[0, :3].tolist() == crf.decode(short_em, alone_mask)[0].tolist()
    torch.testing.assert_close(crf.marginals(emissions, mask)[:1, :3], crf.marginals(short_em, alone_mask))
    # Batch padding at the end (a longer row) must not change the shorter row either.
    wider = torch.cat([emissions, 9 * torch.ones(2, 2, 5)], dim=1)
    wider_mask = torch.cat([mask, torch.zeros(2, 2, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(crf.log_partition(wider, wider_mask), crf.log_partition(emissions, mask))


# -- BIO constraints --------------------------------------------------------------------------

def test_bio_constraint_tables():
    start, trans, end = transition_constraints(BIO_TAGS, "bio")
    assert start.dtype == trans.dtype == end.dtype == torch.bool
    assert start.tolist() == [True, True, False, True, False]
    assert end.all()
    O, BP, IP, BL, IL = range(5)
    assert not trans[O, IP] and not trans[O, IL]
    assert not trans[BP, IL] and not trans[IP, IL] and not trans[BL, IP] and not trans[IL, IP]
    assert trans[BP, IP] and trans[IP, IP] and trans[BL, IL] and trans[IL, IL]
    assert trans[:, [O, BP, BL]].all()
    # BIOES: an open chunk must be closed before the sentence ends.
    s2, t2, e2 = transition_constraints(["O", "B-X", "I-X", "E-X", "S-X"], "iobes")
    assert s2.tolist() == [True, True, False, False, True]
    assert e2.tolist() == [True, False, False, True, True]
    assert t2.shape == (5, 5) and not t2[1, 0] and t2[1, 3]


def test_bio_decode_never_emits_invalid_transitions():
    gen = torch.Generator().manual_seed(3)
    start, trans, end = transition_constraints(BIO_TAGS, "bio")
    crf = CRF(5, allowed_start=start, allowed_transitions=trans, allowed_end=end)
    emissions = torch.randn(64, 8, 5, generator=gen) * 3
    emissions[:, :, [2, 4]] += 20  # strongly favour I-PER / I-LOC everywhere
    emissions[:32, :, 4] += 5  # and I-LOC over I-PER in half the batch
    emissions[:, 1::3, 1] += 30  # a B-PER that the next I-LOC would like to follow
    lengths = torch.randint(1, 9, (64,), generator=gen)
    mask = torch.arange(8) < lengths.unsqueeze(1)
    decoded = crf.decode(emissions, mask)
    for row, n in zip(decoded.tolist(), lengths.tolist()):
        path = [BIO_TAGS[i] for i in row[:n]]
        assert find_invalid(path, "bio") == [], path
        assert not path[0].startswith("I-")
    # The unconstrained CRF with the same scores does emit invalid paths, so the test bites.
    free = CRF(5)
    free.load_state_dict({k: v for k, v in crf.state_dict().items() if not k.startswith("allowed")}, strict=False)
    free_paths = [[BIO_TAGS[i] for i in row[:n]] for row, n in zip(free.decode(emissions, mask).tolist(),
                                                                      lengths.tolist())]
    assert any(find_invalid(p, "bio") for p in free_paths)
    # With all-I emissions the best valid reading is one chunk: B-PER I-PER I-PER ...
    only_iper = torch.zeros(1, 4, 5)
    only_iper[..., 2] = 10
    assert crf.decode(only_iper, torch.ones(1, 4, dtype=torch.bool)).tolist() == [[1, 2, 2, 2]]


def test_constraints_saved_in_state_dict():
    start, trans, end = transition_constraints(BIO_TAGS, "bio")
    crf = CRF(5, allowed_start=start, allowed_transitions=trans, allowed_end=end)
    state = crf.state_dict()
    assert {"allowed_start", "allowed_transitions", "allowed_end"} <= set(state)
    fresh = CRF(5)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.allowed_transitions, trans) and torch.equal(fresh.allowed_start, start)


# -- pytorch-crf, precision, gradients --------------------------------------------------------

def test_agrees_with_pytorch_crf():
    from torchcrf import CRF as TorchCRF

    crf, emissions, mask, lengths = _case(11, 4, constrained=False)
    emissions = emissions.clone()
    emissions[~mask] = 0.0
    tags = torch.randint(4, mask.shape, generator=torch.Generator().manual_seed(5))
    ref = TorchCRF(4, batch_first=True)
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            getattr(ref, name).copy_(getattr(crf, name))
    expected = ref(emissions, tags, mask, reduction="none")
    torch.testing.assert_close(crf.log_likelihood(emissions, tags, mask), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="sum"), -expected.sum(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(crf(emissions, tags, mask), -expected.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="token_mean"),
                               -expected.sum() / mask.sum(), rtol=1e-5, atol=1e-4)
    ref_paths = ref.decode(emissions, mask)
    ours = crf.decode(emissions, mask)
    assert [row[:n] for row, n in zip(ours.tolist(), lengths)] == ref_paths


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_emissions_computed_in_float32(dtype):
    crf, emissions, mask, _ = _case(4, 4, constrained=True)
    emissions = emissions * 5  # larger scores make half-precision accumulation visibly wrong
    half = emissions.to(dtype)
    tags = torch.zeros(mask.shape, dtype=torch.long)
    ll = crf.log_likelihood(half, tags, mask)
    assert ll.dtype == torch.float32
    # Exactly the float32 result on the rounded inputs: nothing is computed in half precision.
    torch.testing.assert_close(ll, crf.log_likelihood(half.float(), tags, mask))
    torch.testing.assert_close(ll, crf.log_likelihood(emissions, tags, mask), rtol=0.02, atol=0.5)
    torch.testing.assert_close(crf.marginals(half, mask), crf.marginals(half.float(), mask))
    assert torch.equal(crf.decode(half, mask), crf.decode(half.float(), mask))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = crf(half, tags, mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_gradients_finite_with_constraints():
    start, trans, end = transition_constraints(BIO_TAGS, "bio")
    crf = CRF(5, allowed_start=start, allowed_transitions=trans, allowed_end=end)
    emissions = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(9), requires_grad=True)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    # Row 1 is an invalid gold path (O -> I-PER): the loss is huge but gradients stay finite.
    tags = torch.tensor([[1, 2, 0, 3, 4], [0, 2, 2, 0, 0], [3, 0, 0, 0, 0]])
    loss = crf(emissions, tags, mask, reduction="token_mean")
    assert torch.isfinite(loss)
    loss.backward()
    for grad in (emissions.grad, crf.transitions.grad, crf.start_transitions.grad, crf.end_transitions.grad):
        assert grad is not None and torch.isfinite(grad).all()
    assert crf.transitions.grad.abs().sum() > 0
    assert (emissions.grad[~mask] == 0).all()  # padding gets no gradient


# -- input validation -------------------------------------------------------------------------

def test_rejects_bad_input():
    crf = CRF(3)
    emissions = torch.randn(2, 3, 3)
    tags = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"mask\[:, 0\]"):
        crf.log_likelihood(emissions, tags, torch.tensor([[True, True, False], [False, False, False]]))
    with pytest.raises(ValueError, match="prefix"):
        crf.decode(emissions, torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError, match="bool"):
        crf.decode(emissions, torch.ones(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        crf.decode(torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="reduction"):
        crf(emissions, tags, torch.ones(2, 3, dtype=torch.bool), reduction="avg")
    with pytest.raises(ValueError, match="allowed_transitions"):
        CRF(3, allowed_transitions=torch.ones(2, 2, dtype=torch.bool))
