"""The shipped sample corpus is exactly what the project's generator writes."""
from __future__ import annotations

from pathlib import Path

from cner.data.formats import read_corpus
from cner.data.sample import write_sample_corpus

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def test_regenerating_reproduces_the_shipped_files(tmp_path):
    stats = write_sample_corpus(tmp_path, seed=13)
    for name in ("train.conll", "dev.conll", "test.conll", "news.txt"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    for split in ("train", "dev", "test"):
        corpus = read_corpus(SAMPLE / f"{split}.conll")
        assert corpus.scheme == "bio" and len(corpus.examples) == stats[split]["sentences"]
        counts = {label: sum(s.label == label for ex in corpus.examples for s in ex.spans)
                  for label in ("PER", "LOC", "ORG")}
        assert counts == {label: stats[split][label] for label in counts}
        assert all(counts.values())


def test_another_seed_gives_another_corpus(tmp_path):
    write_sample_corpus(tmp_path, seed=7)
    assert (tmp_path / "train.conll").read_bytes() != (SAMPLE / "train.conll").read_bytes()
