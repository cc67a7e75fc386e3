"""Shared fixtures: where the public corpora and the shipped sample live.

The public corpora sit in ``../shared/corpora`` beside the project root. Tests that need
them skip when the folder (or a file in it) is missing, except under CI (``CI`` set to a
true value), where a missing corpus is a failure so that CI can never skip them silently.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPORA_DIR = PROJECT_ROOT.parent / "shared" / "corpora"
SAMPLE_DIR = PROJECT_ROOT / "corpora" / "sample"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def require_path(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise skip the test (fail it under CI)."""
    if path.exists():
        return path
    message = f"needs ../shared/corpora (public corpora; present in CI): {path} not found"
    if in_ci():
        pytest.fail(message + " (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    """``../shared/corpora`` beside the project root (skips, or fails under CI, if missing)."""
    return require_path(CORPORA_DIR)


@pytest.fixture(scope="session")
def corpus_file(corpora_dir):
    """``corpus_file("msra_ner/msra_train_bio")`` -> the path, skipping (failing under CI)
    when it is missing."""

    def get(relative: str) -> Path:
        return require_path(corpora_dir / relative)

    return get


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The synthetic sample corpus shipped in the repository (always present)."""
    assert (SAMPLE_DIR / "train.conll").is_file(), f"{SAMPLE_DIR} is missing the sample corpus"
    return SAMPLE_DIR


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The test models are tiny: a second intra-op thread only adds synchronisation (measured
    ~3x slower with two threads on the 2-core machine), so tests run torch on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny tagger trained on the shipped sample in a few seconds (fp32, one thread): for
    tests of commands and files, not of accuracy."""
    import torch

    from cner.config import load_config
    from cner.tasks.ner import train_ner

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config(PROJECT_ROOT / "configs" / "tiny-cpu.yaml", [
            f"data.train={SAMPLE_DIR / 'train.conll'}", f"data.dev={SAMPLE_DIR / 'dev.conll'}",
            "data.test=null", "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
            "model.intermediate_size=64", "training.max_steps=10", "training.eval_every=10",
            "training.precision=fp32", "training.device=cpu", "training.threads=1"])
        run_dir, _ = train_ner(cfg, output=tmp_path_factory.mktemp("tiny") / "run",
                               progress=False)
    finally:
        torch.set_num_threads(threads)
    return run_dir / "model"
