"""The sentence-classification tasks cner knows, each declared as data.

A `TaskSpec` says where each split lives under a corpora root (`cner.config.corpora_root`:
``classify.corpora_root``, else ``$CNER_CORPORA``, else ``shared/corpora`` beside the project
checkout), how to read it, the label set and the metrics to report. The quirks of each
corpus (documented in its README.md) are handled by its reader here:

* ``chnsenticorp``: the three TSV files have different headers; test has no labels.
* ``chnsenticorp_htl``: one CSV with RFC 4180 quoting and no split; `seeded_split` makes one.
* ``afqmc``: headerless TSV; a stray BOM inside train.txt (stripped by the reader).
* ``sst2``: train/dev sentences end with a space before the tab (stripped).
* ``mrpc``: BOM on train/dev; ``"`` inside unquoted fields; test labels from the MSR release.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cner.errors import ConfigError, InputError
from cner.data.classification import ClassificationExample, read_classification_file

KINDS = ("single", "pair", "multilabel", "regression")
SPLITS = ("train", "dev", "test")

Reader = Callable[[Path, str], list[ClassificationExample]]


@dataclass(frozen=True)
class TaskSpec:
    """One task: its files (split -> path relative to the corpora root) and how to read them.

    ``read(path, split)`` returns the examples of ``split`` from ``path``. ``labels`` is the
    label set (None for regression); ``positive`` the label whose F1 is reported as
    ``f1`` (MRPC). ``metrics`` names keys of the `cner.metrics` score dicts.
    """

    name: str
    kind: str
    files: dict[str, str]
    read: Reader
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    description: str
    source: str
    positive: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")


# --- seeded split (for corpora published without one) -----------------------------------

def seeded_split(examples: Sequence[ClassificationExample], *, seed: int = 13, dev: float = 0.1,
                 test: float = 0.1) -> dict[str, list[ClassificationExample]]:
    """Split ``examples`` into ``{"train", "dev", "test"}``, deterministically and stratified.

    Within each label (unlabelled examples form one group), examples are ordered by
    SHA-256 of ``f"{seed}:{position}"`` (stable across Python versions and platforms,
    unlike `random.shuffle`); the first ``round(n * test)`` go to test, the next
    ``round(n * dev)`` to dev, the rest to train. Each split keeps file order. The three
    are disjoint and together hold every example exactly once.
    """
    if not (0 <= dev and 0 <= test and dev + test <= 1):
        raise ValueError(f"dev and test must be fractions with dev + test <= 1, got {dev}, {test}")
    groups: dict[object, list[int]] = defaultdict(list)
    for position, example in enumerate(examples):
        groups[example.label if not isinstance(example.label, float) else None].append(position)
    assignment: dict[int, str] = {}
    for positions in groups.values():
        order = sorted(positions,
                       key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest())
        n_test = round(len(order) * test)
        n_dev = min(round(len(order) * dev), len(order) - n_test)
        for rank, position in enumerate(order):
            assignment[position] = ("test" if rank < n_test else
                                    "dev" if rank < n_test + n_dev else "train")
    parts: dict[str, list[ClassificationExample]] = {"train": [], "dev": [], "test": []}
    for position, example in enumerate(examples):
        parts[assignment[position]].append(example)
    return parts


# --- per-corpus readers --------------------------------------------------------------------

def _read_chnsenticorp(path: Path, split: str) -> list[ClassificationExample]:
    # train: label<TAB>text_a; dev: qid<TAB>label<TAB>text_a; test: qid<TAB>text_a (no labels).
    return read_classification_file(
        path, text_column="text_a", label_column=None if split == "test" else "label",
        id_column=None if split == "train" else "qid", delimiter="\t", quoting=False)


HTL_SEED = 13


def _read_htl(path: Path, split: str) -> list[ClassificationExample]:
    # RFC 4180 CSV `label,review`. The README notes one row with an empty review (line
    # 6,376): it is skipped. The remaining rows are split by `seeded_split` (seed 13).
    examples = read_classification_file(path, text_column="review", label_column="label",
                                        delimiter=",", quoting=True, empty_text="skip")
    if split == "all":
        return examples
    return seeded_split(examples, seed=HTL_SEED, dev=0.1, test=0.1)[split]


def _read_afqmc(path: Path, split: str) -> list[ClassificationExample]:
    # No header: sentence1<TAB>sentence2<TAB>label (test: no label column). train.txt line
    # 12,078 starts with a stray U+FEFF, removed by the reader (BOMs at field starts go).
    return read_classification_file(
        path, text_column=0, text_pair_column=1, label_column=None if split == "test" else 2,
        delimiter="\t", header=False, quoting=False)


def _read_sst2(path: Path, split: str) -> list[ClassificationExample]:
    # train/dev: sentence<TAB>label, each sentence ending in one space (stripped, so the
    # text matches test, which has none); test: index<TAB>sentence, no labels.
    if split == "test":
        return read_classification_file(path, text_column="sentence", id_column="index",
                                        delimiter="\t", quoting=False, rstrip_text=True)
    return read_classification_file(path, text_column="sentence", label_column="label",
                                    delimiter="\t", quoting=False, rstrip_text=True)


MRPC_TEST_LABELS = "msr_paraphrase_test.txt"


def _read_mrpc_file(path: Path, *, labelled: bool) -> list[ClassificationExample]:
    # Quote characters are text (no quoting); the BOM on train/dev is stripped. The id is
    # "<#1 ID>-<#2 ID>"; test.tsv's `index` column is just the row number.
    return read_classification_file(
        path, text_column="#1 String", text_pair_column="#2 String",
        label_column="Quality" if labelled else None, id_column=("#1 ID", "#2 ID"),
        delimiter="\t", quoting=False)


def _read_mrpc(path: Path, split: str) -> list[ClassificationExample]:
    if split != "test":
        return _read_mrpc_file(path, labelled=True)
    # GLUE's test.tsv has no labels. The README: msr_paraphrase_test.txt holds the gold
    # labels of the same 1,725 pairs, in the same order with the same IDs. Take them from
    # there, checking the IDs and both sentences row by row.
    examples = _read_mrpc_file(path, labelled=False)
    gold_path = path.parent / MRPC_TEST_LABELS
    gold = _read_mrpc_file(gold_path, labelled=True)
    for example, labelled in zip(examples, gold):
        if (example.id, example.text, example.text_pair) != (labelled.id, labelled.text,
                                                             labelled.text_pair):
            raise InputError(f"pair {labelled.id} does not match {path.name} line "
                             f"{example.line} (pair {example.id})", path=gold_path,
                             line=labelled.line, hint="the two files must list the same pairs "
                             "in the same order")
    if len(examples) != len(gold):
        raise InputError(f"{len(gold)} labelled pairs for {len(examples)} test pairs in "
                         f"{path.name}", path=gold_path)
    return [replace(e, label=g.label) for e, g in zip(examples, gold)]


# --- the registry --------------------------------------------------------------------------

CLASSIFICATION_METRICS = ("accuracy", "macro_f1")


def _split_files(folder: str, suffix: str) -> dict[str, str]:
    """The usual layout, one file a split: ``folder/train.suffix``, ``dev`` and ``test``."""
    return {split: f"{folder}/{split}.{suffix}" for split in SPLITS}


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec(
        name="chnsenticorp", kind="single",
        files=_split_files("chnsenticorp", "tsv"),
        read=_read_chnsenticorp, labels=("0", "1"), metrics=CLASSIFICATION_METRICS,
        description="Chinese review sentiment (hotels, laptops, books), 1 positive / 0 "
                    "negative; 9,600 / 1,200 / 1,200; the test split is unlabelled (label None)",
        source="ChnSentiCorp, PaddleNLP/LUGE split (Tan & Zhang 2008)"),
    TaskSpec(
        name="chnsenticorp_htl", kind="single",
        files={split: "chnsenticorp_htl_all/ChnSentiCorp_htl_all.csv"
               for split in ("train", "dev", "test", "all")},
        read=_read_htl, labels=("0", "1"), metrics=CLASSIFICATION_METRICS,
        description="Chinese hotel review sentiment, 1 positive / 0 negative. Published "
                    "without a split: the one row with an empty review is dropped and the "
                    "rest split 80/10/10 by seeded_split(seed=13, dev=0.1, test=0.1), "
                    "stratified by label; 'all' is every row",
        source="ChnSentiCorp_htl_all (SophonPlus/ChineseNlpCorpus; Tan & Zhang 2008)"),
    TaskSpec(
        name="afqmc", kind="pair",
        files=_split_files("afqmc", "txt"),
        read=_read_afqmc, labels=("0", "1"), metrics=CLASSIFICATION_METRICS,
        description="Ant Financial question matching: 1 if the two questions mean the same; "
                    "34,334 / 4,316 / 3,861; test unlabelled (CLUE hides the labels)",
        source="CLUE AFQMC (Xu et al. 2020), TSV conversion from zejunwang1/bertorch"),
    TaskSpec(
        name="sst2", kind="single",
        files=_split_files("glue_sst2", "tsv"),
        read=_read_sst2, labels=("0", "1"), metrics=CLASSIFICATION_METRICS,
        description="English movie-review sentiment (lower-cased, PTB-tokenised), 1 positive; "
                    "67,349 / 872 / 1,821; trailing space of train/dev sentences stripped; "
                    "test unlabelled (GLUE hides the labels); GLUE reports accuracy",
        source="GLUE SST-2 (Socher et al. 2013; Wang et al. 2019)"),
    TaskSpec(
        name="mrpc", kind="pair",
        files=_split_files("glue_mrpc", "tsv"),
        read=_read_mrpc, labels=("0", "1"), metrics=(*CLASSIFICATION_METRICS, "f1"),
        positive="1",
        description="English paraphrase detection, 1 paraphrase; 3,668 / 408 / 1,725; test "
                    "labels joined from msr_paraphrase_test.txt (same pairs, same order, "
                    "checked); GLUE reports accuracy and F1 of the paraphrase class",
        source="MRPC (Dolan & Brockett 2005) via GLUE; MSR-SSLA, non-commercial use only"),
)}


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; a `ConfigError` naming the valid tasks otherwise."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; valid tasks: " + ", ".join(sorted(TASKS))
                          ) from None


def load_split(task: str | TaskSpec, split: str, *, root: str | Path | None = None
               ) -> list[ClassificationExample]:
    """Read ``split`` of ``task`` from the corpora folder ``root`` (None: the default,
    `cner.config.corpora_root`).

    Every label is checked against the task's label set (an `InputError` with file and
    line otherwise). An unknown split is a `ConfigError` naming the task's splits.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if split not in spec.files:
        raise ConfigError(f"task {spec.name!r} has no split {split!r}; its splits: "
                          + ", ".join(spec.files))
    from cner.config import CORPORA_ENV, corpora_root

    root = corpora_root(root)
    path = root / spec.files[split]
    if not path.is_file():
        raise InputError("file not found", path=path,
                         hint=f"expected the {spec.name} corpus under {root}; set {CORPORA_ENV} "
                              "or classify.corpora_root to the folder that holds it")
    examples = spec.read(path, split)
    if spec.labels is not None:
        allowed = set(spec.labels)
        for example in examples:
            labels = example.label if isinstance(example.label, tuple) else (example.label,)
            for label in labels:
                if label is not None and label not in allowed:
                    raise InputError(f"label {label!r} is not one of {', '.join(spec.labels)}",
                                     path=example.source, line=example.line)
    return examples


def task_scores(task: str | TaskSpec, gold: Sequence, predicted: Sequence) -> dict:
    """The full score dict of `cner.metrics` for this task's kind (its ``metrics`` are
    keys of it)."""
    from cner.metrics import scores_for_kind

    spec = get_task(task) if isinstance(task, str) else task
    return scores_for_kind(spec.kind, spec.labels or (), spec.positive, gold, predicted)
