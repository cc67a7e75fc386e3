"""A distillation teacher: which model it is, and its soft targets, computed once per run.

`inspect_teacher` checks a teacher before anything is made (a NER model directory, or a hub
id of one) and fingerprints its weight files. `teacher_targets` runs the teacher over every
text, in eval mode, through the inference path (`Tagger`'s engine, windows, batches and
merging: `Predictor.tag_distributions`), and keeps per character its Viterbi tag and its
distribution over the tags at the run's temperature. They are cached in the run directory
(``teacher_targets.safetensors``, no pickle) under a key of the teacher's weights, the texts
and the temperature, so a resumed run reads them back instead of annotating again, and a
cache made for anything else is never used.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cner.errors import ModelError
from cner.fileio import atomic_write

TARGETS = "teacher_targets.safetensors"
CACHE_FORMAT = "1"
TEXTS_PER_CALL = 2048  # texts per Predictor call: bounds the emissions held at once


@dataclass(frozen=True)
class TeacherInfo:
    """What a run records of its teacher (``distill_run.json``; the student's provenance)."""

    path: str  # absolute
    files: list[dict]  # its weight files: {"path", "sha256", "bytes"}
    tags: list[str]
    scheme: str
    head: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(" ".join(f["sha256"] for f in self.files).encode()).hexdigest()

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_teacher(teacher: str | Path) -> TeacherInfo:
    """The teacher ``teacher`` names (a model directory or a cner model's hub id), checked to
    be a NER tagger, with the SHA-256 of its weight files; a one-line `ModelError` if not."""
    from cner.models.hub import resolve_model_dir
    from cner.models.metadata import NER, file_sha256
    from cner.models.modeldir import HEAD_WEIGHTS, WEIGHTS, read_meta

    directory = resolve_model_dir(teacher).absolute()
    meta = read_meta(directory)
    if meta.task != NER:
        raise ModelError(f"the teacher {directory} holds a {meta.task} model, not a NER tagger")
    files = []
    for name in (WEIGHTS, HEAD_WEIGHTS):
        if (directory / name).is_file():
            sha, size = file_sha256(directory / name)
            files.append({"path": str(directory / name), "sha256": sha, "bytes": size})
    return TeacherInfo(str(directory), files, list(meta.labels), meta.scheme or "bio",
                       meta.head)


@dataclass(frozen=True)
class TeacherTargets:
    """Per character of the texts, in order: text ``i`` is ``offsets[i]:offsets[i+1]``."""

    offsets: np.ndarray  # int64 (n_texts + 1,)
    probs: np.ndarray  # float32 (N, T): the teacher's tag distribution at the temperature
    tags: np.ndarray  # int64 (N,): its Viterbi tag ids (its predictions)

    def text_tags(self, i: int) -> np.ndarray:
        return self.tags[self.offsets[i]:self.offsets[i + 1]]


def cache_key(teacher: TeacherInfo, texts: Sequence[str], temperature: float) -> dict[str, str]:
    """What the cached targets were computed from (safetensors metadata: strings)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\n")
    return {"format": CACHE_FORMAT, "teacher": teacher.fingerprint, "texts": digest.hexdigest(),
            "n_texts": str(len(texts)), "temperature": repr(float(temperature)),
            "tags": json.dumps(teacher.tags, ensure_ascii=False)}


def read_cache(path: Path, key: dict[str, str]) -> TeacherTargets | None:
    """The cached targets when ``path`` holds them for ``key``; None otherwise."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as handle:
            if handle.metadata() != key:
                return None
            return TeacherTargets(*(handle.get_tensor(name) for name in
                                    ("offsets", "probs", "tags")))
    except Exception:  # a damaged cache (safetensors raises several types): compute again
        return None


def write_cache(path: Path, targets: TeacherTargets, key: dict[str, str]) -> None:
    from safetensors.numpy import save

    data = save({"offsets": targets.offsets, "probs": targets.probs, "tags": targets.tags},
                metadata=key)
    with atomic_write(path, "wb", encoding=None) as handle:
        handle.write(data)


def annotate(teacher: TeacherInfo, texts: Sequence[str], *, temperature: float, device: str,
             precision: str, batch_chars: int, progress: bool) -> TeacherTargets:
    """Run the teacher (eval mode, its own windows and features) over ``texts``."""
    from tqdm.auto import tqdm

    from cner.inference.predictor import Predictor
    from cner.models.modeldir import load_tagger_dir
    from cner.runtime.engine import prepare_engine

    model, featurizer, meta = load_tagger_dir(teacher.path)
    engine = prepare_engine(model, device=device, precision=precision)
    predictor = Predictor(engine, featurizer, max_length=meta.max_length, overlap=meta.overlap,
                          batch_size=256, max_positions=batch_chars)
    probs, tags = [], []
    bar = tqdm(total=len(texts), unit="text", desc="teacher", dynamic_ncols=True,
               disable=not progress or None, file=sys.stderr)
    for first in range(0, len(texts), TEXTS_PER_CALL):
        chunk = texts[first:first + TEXTS_PER_CALL]
        for best, dist in predictor.tag_distributions(chunk, temperature=temperature):
            tags.append(best)
            probs.append(dist)
        bar.update(len(chunk))
    bar.close()
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    n_tags = len(teacher.tags)
    return TeacherTargets(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                          np.concatenate([np.zeros((0, n_tags), np.float32), *probs]),
                          np.concatenate([np.zeros(0, np.int64), *tags]).astype(np.int64))


def teacher_targets(run_dir: Path, teacher: TeacherInfo, texts: Sequence[str], *,
                    temperature: float, device: str, precision: str, batch_chars: int,
                    progress: bool, resume: bool = False) -> TeacherTargets:
    """The teacher's targets for ``texts``: read from the run's cache when it holds them for
    this teacher, these texts and this temperature, else computed and cached. A resumed run
    (``resume``) must find them cached: its checkpoints were trained on them."""
    key = cache_key(teacher, texts, temperature)
    cached = read_cache(run_dir / TARGETS, key)
    if cached is not None:
        return cached
    if resume:
        raise ModelError(f"{run_dir / TARGETS} does not hold the teacher's targets for this "
                         "run's text (a text file changed since the run began, or the file "
                         "was removed); restore it, or start a new run")
    if not Path(teacher.path).is_dir():
        raise ModelError(f"the teacher {teacher.path} is gone and the run has no targets "
                         f"cached for its text ({TARGETS}); restore the teacher")
    if inspect_teacher(teacher.path).fingerprint != teacher.fingerprint:
        raise ModelError(f"the teacher {teacher.path} changed since the run began (its weights "
                         "differ from those recorded); restore it or start a new run")
    targets = annotate(teacher, texts, temperature=temperature, device=device,
                       precision=precision, batch_chars=batch_chars, progress=progress)
    write_cache(run_dir / TARGETS, targets, key)
    return targets
