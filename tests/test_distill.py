"""cner distill: the soft-target loss against brute-force enumeration, the teacher's targets,
flat-array batches, a distilled student's agreement with its teacher, resume after kill -9,
and one-line errors that leave nothing behind."""
from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cner.cli import main  # noqa: E402
from killed_runs import resume, straight_and_killed  # noqa: E402
from cner.config import load_config  # noqa: E402
from cner.models.crf import CRF, transition_constraints  # noqa: E402
from cner.models.distillation import (DistillationTagger, gold_loss, soft_target_loss,  # noqa: E402
                                      tag_log_probs)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "sample"
FAST = ["training.precision=fp32", "training.device=cpu", "training.threads=1"]
# The agreement (entity F1 of the student's entities against the teacher's, on the sample's
# test sentences) a student distilled from raw text alone must reach, and an untrained one
# must not: measured 0.89 and 0.00 (0.95 on the held-out raw text).
AGREEMENT = 0.85



def _sets(items) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


# --- the loss against enumeration --------------------------------------------------------------

def _enumerated_log_marginals(crf: CRF, emissions: torch.Tensor, temperature: float
                              ) -> torch.Tensor:
    """``log p_T(tag_t = j)`` float64 ``(n, T)`` from every allowed path, ``p_T(y) ~
    exp(score(y) / T)``; differentiable in ``emissions`` (n, T) float64."""
    n, num_tags = emissions.shape
    start, trans, end = (p.detach().double() for p in
                         (crf.start_transitions, crf.transitions, crf.end_transitions))
    paths, scores = [], []
    for path in itertools.product(range(num_tags), repeat=n):
        if not (crf.allowed_start[path[0]] and crf.allowed_end[path[-1]]
                and all(crf.allowed_transitions[a, b] for a, b in zip(path, path[1:]))):
            continue  # a forbidden path has probability 0
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        score = score + sum(trans[a, b] for a, b in zip(path, path[1:]))
        paths.append(path)
        scores.append(score / temperature)
    log_p = torch.stack(scores) - torch.logsumexp(torch.stack(scores), 0)  # shape: (paths,)
    rows = []
    for t in range(n):
        rows.append(torch.stack([torch.logsumexp(torch.stack(
            [log_p[k] for k, path in enumerate(paths) if path[t] == j]
            or [torch.tensor(-math.inf, dtype=torch.float64)]), 0) for j in range(num_tags)]))
    return torch.stack(rows)  # shape: (n, T)


def _crf(seed: int, constrained: bool) -> CRF:
    """A 3-tag CRF with random scores; constrained: BIO's table over O, B-X, I-X."""
    gen = torch.Generator().manual_seed(seed)
    tables = {}
    if constrained:
        start, trans, end = transition_constraints(["O", "B-X", "I-X"], "bio")
        tables = dict(allowed_start=start, allowed_transitions=trans, allowed_end=end)
    crf = CRF(3, **tables)
    with torch.no_grad():
        for param in crf.parameters():
            param.copy_(torch.randn(param.shape, generator=gen))
    return crf


@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("constrained", [False, True])
def test_soft_target_loss_matches_enumeration_of_every_path(temperature, constrained):
    """3 characters, 3 tags: the loss and its gradient equal KL(teacher_T || student_T) of the
    marginals computed from all 27 paths."""
    teacher, student = _crf(0, constrained), _crf(1, constrained)
    gen = torch.Generator().manual_seed(2)
    teacher_em = torch.randn(3, 3, generator=gen, dtype=torch.float64) * 2
    student_em = torch.randn(3, 3, generator=gen, dtype=torch.float64) * 2
    q = _enumerated_log_marginals(teacher, teacher_em, temperature).exp()  # shape: (3, 3)
    brute_em = student_em.clone().requires_grad_(True)
    log_p = _enumerated_log_marginals(student, brute_em, temperature)
    # a tag no allowed path takes has q = 0 and log p = -inf: it contributes nothing
    expected = torch.where(q > 0, q * (q.log() - log_p), 0.0).sum()
    expected.backward()

    mask = torch.ones(1, 3, dtype=torch.bool)
    torch.testing.assert_close(  # the teacher's side: CRF.marginals at T
        teacher.marginals(teacher_em.float()[None], mask, temperature=temperature)[0].double(),
        q, rtol=0, atol=1e-6)
    em = student_em.float()[None].requires_grad_(True)
    model = type("M", (), {"head": "crf", "crf": student})()
    loss = soft_target_loss(tag_log_probs(model, em, mask, temperature=temperature),
                            q.float()[None], mask)
    loss.sum().backward()
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    torch.testing.assert_close(em.grad[0].double(), brute_em.grad, rtol=1e-4, atol=1e-5)
    own = tag_log_probs(model, student_em.float()[None], mask, temperature=temperature)
    same = soft_target_loss(own, own.exp(), mask)
    assert same.item() == pytest.approx(0.0, abs=1e-5)  # KL of a distribution with itself


def test_distillation_loss_mixes_soft_and_gold_by_alpha():
    """Labelled rows: alpha T^2 KL + (1 - alpha) NLL; raw rows: T^2 KL; mean over rows."""
    from cner.config import ModelConfig
    from cner.encoding.vocab import CharVocab
    from cner.models.encoders import local_encoder

    tags = ["O", "B-X", "I-X"]
    encoder = local_encoder(ModelConfig(encoder="bilstm", embedding_size=4, hidden_size=4),
                            CharVocab.build(["ab"]))
    model = DistillationTagger(encoder, tags, scheme="bio")
    model.alpha, model.temperature = 0.3, 2.0
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(2, 3, 3, generator=gen)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    model.emissions = lambda *args, **kwargs: scores  # the encoder is not under test
    soft = torch.softmax(torch.randn(2, 3, 3, generator=gen), -1) * mask[..., None]
    labels = torch.tensor([[1, 2, 0], [0, 1, 0]])
    has_gold = torch.tensor([True, False])
    loss = model(None, None, mask, labels, soft, has_gold)
    kl = soft_target_loss(tag_log_probs(model, scores, mask, temperature=2.0), soft, mask) * 4
    nll = gold_loss(model, scores, labels, mask)
    expected = (0.3 * kl[0] + 0.7 * nll[0] + kl[1]) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# --- the teacher, the batches ----------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A small BiLSTM tagger trained on the sample (dev F1 ~0.99 after 12 s on one thread)."""
    from cner.tasks.ner import train_ner

    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        "model.encoder=bilstm", "model.embedding_size=32", "model.hidden_size=64",
        "model.num_layers=1", "model.bigrams=true", "training.epochs=8", "training.lr=0.01",
        "data.test=null", "data.max_length=64", *FAST])
    run_dir, _ = train_ner(cfg, output=tmp_path_factory.mktemp("teacher") / "run",
                           progress=False)
    return run_dir / "model"


@pytest.fixture(scope="module")
def sample_text(tmp_path_factory) -> Path:
    """The sample's training sentences as raw text (`cner corpora text`)."""
    out = tmp_path_factory.mktemp("text") / "train.txt"
    result = CliRunner().invoke(main, ["corpora", "text", str(SAMPLE / "train.conll"),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _test_texts() -> list[str]:
    from cner.data.formats import read_corpus

    return [ex.text for ex in read_corpus(SAMPLE / "test.conll").examples]


def test_teacher_distributions_are_the_taggers_windows_merged(teacher):
    """At T = 1 the teacher's targets give `tag_texts`' tags and scores, also across windows
    (a 64-position teacher on texts of 150+ characters)."""
    from cner.inference.tagger import Tagger

    tagger = Tagger.load(teacher, precision="fp32")
    texts = _test_texts()
    texts = ["".join(texts[k:k + 6]) for k in range(0, 60, 6)] + ["", texts[0]]
    tagged = tagger.predictor.tag_texts(texts)
    dists = tagger.predictor.tag_distributions(texts)
    index = {t: i for i, t in enumerate(tagger.meta.labels)}
    for text, (tags, chosen), (best, probs) in zip(texts, tagged, dists):
        assert probs.shape == (len(text), len(index)) and best.shape == (len(text),)
        assert [index[t] for t in tags] == best.tolist()
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probs[np.arange(len(text)), best], chosen, atol=1e-4)
    assert max(len(t) for t in texts) > 2 * 62
    soft = tagger.predictor.tag_distributions(texts[:3], temperature=3.0)
    sharp = [p for _, p in dists[:3]]
    assert all((s.max(-1) <= p.max(-1) + 1e-6).all() for (_, s), p in zip(soft, sharp))


def test_text_store_batches_equal_collate_inputs(sample_text):
    from cner.encoding.batching import collate_inputs
    from cner.encoding.features import Featurizer
    from cner.encoding.textstore import TextStore
    from cner.encoding.vocab import CharVocab

    texts = sample_text.read_text("utf-8").splitlines()[:40] + ["", "A b　Ｃ"]
    vocab = CharVocab.build(texts[:20], lowercase=True, halfwidth=True)
    featurizer = Featurizer(vocab, bigrams=Featurizer.build_bigrams(texts, vocab),
                            boundaries=True, lexicon=True)
    store = TextStore.build(texts, featurizer)
    windows = store.windows(range(len(texts)), max_chars=20, overlap=5)
    assert len(windows) > len(texts)  # long texts give several windows; "" none
    payload = np.arange(store.offsets[-1] * 2, dtype=np.float32).reshape(-1, 2)
    rows = windows[[3, 0, 7, len(windows) - 1]]
    got = store.collate(rows, featurizer, {"payload": payload})
    expected = collate_inputs([featurizer.window(featurizer.features(texts[i]), s, e)
                               for i, s, e in rows], featurizer)
    assert set(got) == set(expected) | {"payload"}
    for key, tensor in expected.items():
        assert got[key].dtype == tensor.dtype and torch.equal(got[key], tensor), key
    for row, (i, s, e) in enumerate(rows):
        start = store.offsets[i] + s
        assert torch.equal(got["payload"][row, :e - s],
                           torch.from_numpy(payload[start:start + e - s]))
        assert not got["payload"][row, e - s:].any()


# --- distillation ------------------------------------------------------------------------------

def _agreement(texts, teacher_entities, student_entities) -> float:
    """Entity F1 of the student's entities scored against the teacher's."""
    from cner.metrics import entity_scores
    from cner.schemes import Span

    spans = [[[Span(e.start, e.end, e.label) for e in ents] for ents in side]
             for side in (teacher_entities, student_entities)]
    return entity_scores(spans[0], spans[1], [len(t) for t in texts])["f1"]


def test_distilled_student_agrees_with_its_teacher(tmp_path, teacher, sample_text):
    """Raw text only (no gold tags): the distilled student finds the teacher's entities on the
    sample's test sentences (agreement >= AGREEMENT); the same student untrained does not."""
    from cner.inference.predictor import Predictor
    from cner.inference.tagger import Tagger
    from cner.runtime.engine import prepare_engine
    from cner.tasks.distill import build_student, distill
    from cner.tasks.teacher import inspect_teacher

    cfg = load_config(ROOT / "configs" / "distill-tiny.yaml",
                      ["distill.gold=false", "data.dev=null", "data.test=null", *FAST])
    run_dir, result = distill(cfg, teacher=teacher, text=[sample_text], output=tmp_path / "run",
                              progress=False)
    texts = _test_texts()
    teacher_entities = list(Tagger.load(teacher, precision="fp32").pipe(texts))
    student = Tagger.load(run_dir / "model", precision="fp32")
    distilled = _agreement(texts, teacher_entities, list(student.pipe(texts)))

    fresh = tmp_path / "untrained"
    fresh.mkdir()
    model, featurizer, _ = build_student(cfg, fresh, inspect_teacher(teacher),
                                         sample_text.read_text("utf-8").splitlines(),
                                         resume=False)
    untrained = Predictor(prepare_engine(model, precision="fp32"), featurizer,
                          max_length=cfg.data.max_length, overlap=cfg.data.overlap)
    random_agreement = _agreement(texts, teacher_entities, untrained.entities(texts))
    print(f"agreement on the test sentences: untrained {random_agreement:.4f}, distilled "
          f"{distilled:.4f}")
    assert random_agreement < 0.1 < AGREEMENT <= distilled, (random_agreement, distilled)
    assert result.best_metrics["agreement_f1"] >= AGREEMENT  # on the held-out raw text

    meta = json.loads((run_dir / "model" / "cner_model.json").read_text("utf-8"))
    teacher_meta = json.loads((teacher / "cner_model.json").read_text("utf-8"))
    assert (meta["labels"], meta["scheme"]) == (teacher_meta["labels"], teacher_meta["scheme"])
    recorded = [(d["split"], d["path"]) for d in meta["provenance"]["data"]]
    assert ("teacher", str((teacher / "model.safetensors").absolute())) in recorded
    assert ("text", str(sample_text.absolute())) in recorded
    assert "train" not in dict(recorded)  # distill.gold=false: data.train is not read


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, teacher, sample_text):
    """Labelled sentences and raw text together; the resumed run ends with the weights of an
    uninterrupted one, without annotating the text again (its cache stays as it was)."""
    head = sample_text.read_text("utf-8").splitlines()
    text = tmp_path / "raw.txt"
    text.write_text("\n".join(head[:200]) + "\n\n" + (SAMPLE / "news.txt").read_text("utf-8"),
                    "utf-8")
    settings = ["distill", "--teacher", str(teacher), "--text", str(text), "-q",
                "-c", str(ROOT / "configs" / "distill-tiny.yaml"),
                *_sets([*FAST, "training.epochs=3", "training.checkpoint_every=5",
                        "training.eval_every=20", "data.test=null", "distill.temperature=2",
                        "distill.alpha=0.7", "model.dropout=0.2", "model.unk_dropout=0.05"])]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight_and_killed(settings, straight, killed, 25)
    cache = os.stat(killed / "teacher_targets.safetensors")
    resume("distill", killed)
    after = os.stat(killed / "teacher_targets.safetensors")
    assert (after.st_ino, after.st_mtime_ns) == (cache.st_ino, cache.st_mtime_ns)

    a, b = (json.loads((run / "summary.json").read_text()) for run in (straight, killed))
    assert (a["steps"], a["best_step"]) == (b["steps"], b["best_step"])
    assert b["best"]["f1"] == pytest.approx(a["best"]["f1"], abs=1e-9)
    assert a["texts"]["labelled"] > 0 and a["texts"]["raw"] > 0
    assert a["texts"]["left_out"]["labelled"] == 200  # the raw lines that are train sentences
    from safetensors.torch import load_file
    for name in ("model.safetensors", "cner_head.safetensors"):
        wa, wb = (load_file(str(run / "model" / name)) for run in (straight, killed))
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


# --- errors -------------------------------------------------------------------------------------

def _one_line_error(result, pattern: str) -> None:
    import re

    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), result.output


def test_bad_teacher_or_missing_text_is_one_line_and_leaves_nothing(tmp_path, teacher,
                                                                     sample_text):
    run = tmp_path / "out" / "run"
    base = ["distill", "-c", str(ROOT / "configs" / "distill-tiny.yaml"), "-o", str(run)]
    cases = [
        (["--teacher", str(tmp_path / "nowhere"), "--text", str(sample_text)],
         r"^error: model directory .*nowhere not found"),
        (["--teacher", str(teacher.parent), "--text", str(sample_text)],
         r"^error: model directory .* lacks .*point --model at the 'model' folder"),
        (["--teacher", str(teacher), "--text", str(tmp_path / "none.txt")],
         r"^error: .*none\.txt: file not found"),
        (["--teacher", str(teacher)], r"^error: no text to distil on"),
        (["--text", str(sample_text)], r"^error: give --teacher MODEL_DIR"),
    ]
    for args, pattern in cases:
        _one_line_error(CliRunner().invoke(main, [*base, *args]), pattern)
        assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.txt"  # found only after the run directory is made: it goes again
    bad.write_bytes("张伟在北京。\n".encode() + b"\xff\xfe\n")
    result = CliRunner().invoke(main, [*base, "--teacher", str(teacher), "--text", str(bad)])
    _one_line_error(result, r"^error: .*bad\.txt:2: .*UTF-8")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["distill", "--resume", str(tmp_path), "--teacher",
                                       str(teacher)])
    _one_line_error(result, r"^error: --resume continues a run with its saved config")


def test_the_command_prints_the_students_test_scores(tmp_path, teacher, sample_text):
    """With data.test (distill-tiny.yaml's: the sample's test file), `cner distill` ends with
    the best student's test scores, the ones summary.json holds, as `cner train` does."""
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["distill", "--teacher", str(teacher), "--text",
                                       str(sample_text), "-c",
                                       str(ROOT / "configs" / "distill-tiny.yaml"), "-o",
                                       str(run), "-q", *_sets([*FAST, "training.max_steps=4"])])
    assert result.exit_code == 0, result.output
    from cner.metrics import format_scores

    test = json.loads((run / "summary.json").read_text("utf-8"))["test"]
    assert test["support"] > 0
    expected = f"test scores (best model):\n{format_scores(test)}\nstudent: {run / 'model'}\n"
    assert expected in result.output, result.output


# --- a student initialised from its teacher ---------------------------------------------------

def _fresh_student(tmp_path, teacher, sample_text, overrides):
    from cner.tasks.distill import build_student
    from cner.tasks.teacher import inspect_teacher

    cfg = load_config(ROOT / "configs" / "distill-tiny.yaml",
                      ["distill.init_from_teacher=true", "data.dev=null", "data.test=null",
                       *FAST, *overrides])
    run_dir = tmp_path / "student"
    run_dir.mkdir(parents=True)
    # frequent characters the teacher never saw: the student's rows are in another order
    texts = sample_text.read_text("utf-8").splitlines() + ["鑫犇淼" * 100] * 3
    return cfg, build_student(cfg, run_dir, inspect_teacher(teacher), texts, resume=False)


def test_a_student_initialised_from_its_teacher_tags_as_the_teacher_before_training(
        tmp_path, teacher, sample_text, capfd):
    """distill.init_from_teacher: a student of the teacher's shape starts from its weights,
    characters and bigrams matched by key although the student built its own vocabulary
    and bigram list; untrained, it already finds the teacher's entities (a random one: 0.00,
    test above)."""
    from cner.inference.predictor import Predictor
    from cner.inference.tagger import Tagger
    from cner.models.modeldir import load_tagger_dir
    from cner.runtime.engine import prepare_engine

    cfg, (model, featurizer, _) = _fresh_student(tmp_path, teacher, sample_text, [])
    assert "starts from the teacher's weights" in capfd.readouterr().err
    teacher_model, teacher_featurizer, _ = load_tagger_dir(teacher)
    theirs = {t: i for i, t in enumerate(teacher_featurizer.vocab.tokens)}
    assert featurizer.vocab.tokens != teacher_featurizer.vocab.tokens  # rows must be matched
    own_rows = model.encoder.get_input_embeddings().weight
    their_rows = teacher_model.encoder.get_input_embeddings().weight
    shared = [(i, theirs[t]) for i, t in enumerate(featurizer.vocab.tokens) if t in theirs]
    assert len(shared) > 100
    for i, j in shared:
        assert torch.equal(own_rows[i], their_rows[j])
    new = featurizer.vocab.encode("鑫犇淼")  # what the teacher reads for them: its [UNK] row
    assert all(t not in theirs for t in "鑫犇淼") and len(set(new)) == 3
    for i in new:
        assert torch.equal(own_rows[i], their_rows[teacher_featurizer.vocab.unk_id])
    torch.testing.assert_close(model.crf.transitions, teacher_model.crf.transitions)

    texts = _test_texts()
    teacher_entities = list(Tagger.load(teacher, precision="fp32").pipe(texts))
    student = Predictor(prepare_engine(model, precision="fp32"), featurizer,
                        max_length=cfg.data.max_length, overlap=cfg.data.overlap)
    assert _agreement(texts, teacher_entities, student.entities(texts)) >= 0.95


def test_a_student_without_one_of_the_teachers_features_takes_the_rest(tmp_path, teacher,
                                                                      sample_text, capfd):
    """Dropping a feature (bigrams here) leaves that table behind and copies the rest; a
    student of another shape is a one-line ConfigError naming the tensor."""
    from cner.errors import ConfigError
    from cner.models.modeldir import load_tagger_dir

    _, (model, _, _) = _fresh_student(tmp_path, teacher, sample_text, ["model.bigrams=false"])
    assert "left out the teacher's bigram_embeddings.weight" in capfd.readouterr().err
    assert model.bigram_embeddings is None
    teacher_model = load_tagger_dir(teacher)[0]
    for name, param in model.encoder.lstm.named_parameters():
        assert torch.equal(param, dict(teacher_model.encoder.lstm.named_parameters())[name])
    with pytest.raises(ConfigError, match=r"student's encoder\.lstm\.weight_ih_l0 is \(64, 32\)"
                                          r", the teacher's \(128, 32\)"):
        _fresh_student(tmp_path / "other", teacher, sample_text, ["model.hidden_size=32"])
    with pytest.raises(ConfigError, match=r"student's encoder\.embeddings\.weight is \(\d+, 16\)"):
        _fresh_student(tmp_path / "narrow", teacher, sample_text, ["model.embedding_size=16"])
