"""Knowledge distillation (``cner distill``): a small, fast student tagger learns from a teacher.

The teacher (any cner NER model directory) -> its soft targets over the raw text and the
labelled training set, computed once and cached in the run (`cner.tasks.teacher`) -> a
student `TokenTagger` built from the config's ``model:`` section with the teacher's tags and
scheme, its vocabulary and bigram list built from the texts it trains on as `cner train`
builds them -> the distillation loss (`cner.models.distillation`: KL to the teacher's CRF
marginals at ``distill.temperature``, mixed with the gold CRF loss by ``distill.alpha``) on
the one training loop (checkpoints, ``--resume`` after kill -9, progress bar,
``metrics.jsonl``, ``training.max_minutes``) -> evaluations: gold F1 on the dev set when
there is one, and always the agreement with the teacher (entity F1 of the student's
predictions against the teacher's) on a seeded held-out slice of the raw text; the best
model by dev F1, else by agreement -> ``RUN_DIR/model``, an ordinary model directory whose
provenance names the teacher's weight files and the text.

Raw text is read as `cner pretrain` reads it (`read_documents`); each non-blank line is one
text, tagged on its own as `cner annotate` tags a ``.txt`` line. A line that is also a
sentence of ``data.train`` is used once, as the labelled sentence; one that is a ``data.dev``
or ``data.test`` sentence is dropped, so neither score is measured on trained-on text.
"""
from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cner.config import Config
from cner.data.example import Example
from cner.data.text import read_documents
from cner.encoding.batching import bucketed_batches
from cner.encoding.textstore import TextStore, WindowBatches
from cner.errors import ConfigError, InputError
from cner.fileio import atomic_write
from cner.inference.predictor import Predictor
from cner.inference.tagger import Tagger
from cner.metrics import entity_scores
from cner.models.distillation import DistillationTagger
from cner.models.metadata import NER, DataFile, ModelMeta, NerFeatures, training_provenance
from cner.models.modeldir import build_tagger, save_model_dir
from cner.runtime.engine import prepare_engine
from cner.schemes import Span, check_scheme, flatten_spans, spans_to_tags, tags_to_spans
from cner.tasks.ner import read_ner_split, run_featurizer, score_examples, split_dev
from cner.tasks.teacher import TeacherInfo, TeacherTargets, inspect_teacher, teacher_targets
from cner.training.loop import TrainResult, train_loop
from cner.training.runs import open_run, run_encoder

RUN_FILE = "distill_run.json"  # the run's teacher and text files, for --resume
MODEL = "model"


@dataclass
class DistillData:
    """The run's texts: ``train`` (labelled, first in the text order), ``raw`` lines, and
    which raw lines are held out (indices into ``raw``, sorted)."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    raw: list[str]
    held_out: np.ndarray
    dropped: dict[str, int]  # raw lines left out: "labelled" (a train sentence), "dev/test"

    @property
    def texts(self) -> list[str]:
        """Every text in the order of the teacher's targets: labelled, then raw."""
        return [ex.text for ex in self.train] + self.raw

    def training_texts(self) -> list[int]:
        """Indices into `texts` of the texts the student trains on."""
        held = set((self.held_out + len(self.train)).tolist())
        return [i for i in range(len(self.train) + len(self.raw)) if i not in held]


def check_text_files(texts: Sequence[str | Path]) -> None:
    if not texts:
        raise ConfigError("no text to distil on: give --text FILE (one text per line)")
    for path in texts:
        if not Path(path).exists():
            raise InputError("file not found", path=path)
        if Path(path).is_dir():
            raise InputError("is a directory, expected a text file", path=path)


def read_labelled(cfg: Config, *, report: bool = False
                  ) -> tuple[list[Example], list[Example], list[Example]]:
    """``(train, dev, test)`` as `cner train` reads them; train only with ``distill.gold``
    (and a dev split held out of it by ``data.dev_fraction`` when there is no dev file)."""
    train = read_ner_split(cfg.data.train, cfg, report=report) if cfg.distill.gold else []
    dev = read_ner_split(cfg.data.dev, cfg, report=report)
    if not dev and train and cfg.data.dev_fraction > 0:
        train, dev = split_dev(train, cfg.data.dev_fraction, cfg.training.seed)
    return train, dev, read_ner_split(cfg.data.test, cfg, report=report)


def read_data(cfg: Config, texts: Sequence[str]) -> DistillData:
    """The labelled splits, the raw lines (minus labelled, dev and test sentences) and the
    seeded held-out slice of the raw lines."""
    train, dev, test = read_labelled(cfg, report=True)
    labelled = {ex.text for ex in train}
    scored = {ex.text for ex in (*dev, *test)}
    raw, dropped = [], {"labelled": 0, "dev/test": 0}
    for document in read_documents(texts):
        for line in document:
            if line in labelled:
                dropped["labelled"] += 1
            elif line in scored:
                dropped["dev/test"] += 1
            else:
                raw.append(line)
    if not raw and not train:
        raise InputError("the text has no lines to distil on", path=texts[0])
    if any(dropped.values()):
        print(f"note: left out {dropped['labelled']:,} text lines that are data.train "
              f"sentences (used once, labelled) and {dropped['dev/test']:,} that are dev or "
              "test sentences", file=sys.stderr)
    d = cfg.distill
    n_held = min(d.eval_texts, int(round(len(raw) * d.eval_fraction)))
    order = list(range(len(raw)))
    random.Random(cfg.training.seed).shuffle(order)
    return DistillData(train, dev, test, raw, np.sort(np.array(order[:n_held], dtype=np.int64)),
                       dropped)


def gold_ids(examples: Sequence[Example], teacher: TeacherInfo, where: str | None
             ) -> list[list[int]]:
    """Each example's tag ids in the teacher's tag set and scheme; labels the teacher lacks
    are an `InputError`."""
    labels = {t.partition("-")[2] for t in teacher.tags if t != "O"}
    unknown = sorted({s.label for ex in examples for s in ex.spans} - labels)
    if unknown:
        raise InputError(f"labels {unknown} are not among the teacher's labels "
                         f"{sorted(labels)}", path=where)
    index = {t: i for i, t in enumerate(teacher.tags)}
    return [[index[t] for t in spans_to_tags(flatten_spans(ex.spans)[0], len(ex.text),
                                             scheme=teacher.scheme)] for ex in examples]


def build_student(cfg: Config, run_dir: Path, teacher: TeacherInfo, texts: Sequence[str], *,
                  resume: bool):
    """``(DistillationTagger, Featurizer, ModelMeta)``: the config's model with the teacher's
    tags and scheme; vocabulary and bigrams from ``texts`` (a new run) or the run's files."""
    encoder, vocab = run_encoder(cfg, run_dir, texts, resume=resume)
    featurizer = run_featurizer(run_dir, vocab, cfg, [Example(t) for t in texts], fresh=not resume)
    meta = ModelMeta(task=NER, labels=list(teacher.tags), scheme=teacher.scheme,
                     head=cfg.model.head, dropout=cfg.model.dropout, lowercase=cfg.data.lowercase,
                     halfwidth=cfg.data.halfwidth, max_length=cfg.data.max_length,
                     overlap=cfg.data.overlap, vocab_size=len(vocab),
                     features=NerFeatures.of(featurizer))
    model = build_tagger(encoder, meta, featurizer, unk_dropout=cfg.model.unk_dropout,
                         unk_id=vocab.unk_id, tagger_class=DistillationTagger)
    model.alpha, model.temperature = cfg.distill.alpha, cfg.distill.temperature
    if cfg.distill.init_from_teacher and not resume:  # a resumed run reads its checkpoint
        init_from_teacher(model, featurizer, teacher)
    return model, featurizer, meta


def init_from_teacher(model, featurizer, teacher: TeacherInfo) -> None:
    """Copy the teacher's weights into the new student (`cner.models.transplant`)."""
    from cner.models.modeldir import load_tagger_dir
    from cner.models.transplant import transplant

    teacher_model, teacher_featurizer, _ = load_tagger_dir(teacher.path)
    report = transplant(model, featurizer, teacher_model, teacher_featurizer)
    print(f"note: the student starts from the teacher's weights: {report.summary()}",
          file=sys.stderr)


def agreement_scores(predictor: Predictor, texts: Sequence[str],
                     teacher_spans: Sequence[Sequence[Span]]) -> dict[str, float]:
    """Entity-level agreement of the student with the teacher on ``texts``: precision,
    recall and F1 of the student's entities scored against the teacher's."""
    predicted = [[Span(e.start, e.end, e.label) for e in ents]
                 for ents in predictor.entities(texts)]
    scores = entity_scores(teacher_spans, predicted, [len(t) for t in texts])
    return {f"agreement_{key}": scores[key] for key in ("f1", "precision", "recall", "support")}


def teacher_spans(targets: TeacherTargets, teacher: TeacherInfo, indices: Sequence[int]
                  ) -> list[list[Span]]:
    """The teacher's entities (its Viterbi tags) in the texts numbered ``indices``."""
    return [tags_to_spans([teacher.tags[t] for t in targets.text_tags(i)],
                          scheme=teacher.scheme, mode="lenient") for i in indices]


def open_distill_run(config: Config | None, *, teacher, text, output, resume, overwrite
                     ) -> tuple[Config, Path, TeacherInfo, list[str]]:
    """The run's config and directory, teacher and text files: checked before a new run's
    directory is made, or read back from a resumed one."""
    if resume is None:
        if teacher is None:
            raise ConfigError("no teacher: give --teacher MODEL_DIR (a cner NER model)")
        texts = [os.path.abspath(t) for t in text]
        check_text_files(texts)
        info = inspect_teacher(teacher)
        cfg, run_dir = open_run(config, output=output, resume=None, overwrite=overwrite,
                                check=lambda c: (check_text_files(texts), read_labelled(c)))
        check_scheme(info.scheme)
        if cfg.model.tag_scheme != info.scheme:
            print(f"note: the student tags in the teacher's scheme, {info.scheme} "
                  f"(model.tag_scheme {cfg.model.tag_scheme} ignored)", file=sys.stderr)
            cfg.model.tag_scheme = info.scheme
        with atomic_write(run_dir / RUN_FILE) as handle:
            json.dump({"teacher": info.to_dict(), "text": texts}, handle, indent=1,
                      ensure_ascii=False)
        return cfg, run_dir, info, texts
    if teacher is not None or text:
        raise ConfigError("--resume continues a run with its own teacher and text; drop "
                          "--teacher/--text")
    cfg, run_dir = open_run(None, output=None, resume=resume, overwrite=False)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a cner distill run (no {RUN_FILE})")
    saved = json.loads((run_dir / RUN_FILE).read_text("utf-8"))
    check_text_files(saved["text"])
    return cfg, run_dir, TeacherInfo(**saved["teacher"]), saved["text"]


def distill(config: Config | None = None, *, teacher: str | Path | None = None,
            text: Sequence[str | Path] = (), output: str | Path | None = None,
            resume: str | Path | None = None, overwrite: bool = False, progress: bool = True
            ) -> tuple[Path, TrainResult]:
    """Distil ``teacher`` into the student the config describes, on ``text`` (and
    ``data.train``'s labelled sentences); returns the run directory (its ``model/`` is the
    best student) and the result. ``resume=RUN_DIR`` continues a run from its last
    checkpoint with its saved config, teacher, text and cached teacher targets."""
    cfg, run_dir, info, texts = open_distill_run(config, teacher=teacher, text=text,
                                                 output=output, resume=resume,
                                                 overwrite=overwrite)
    data = read_data(cfg, texts)
    gold = gold_ids(data.train, info, cfg.data.train)
    gold_ids(data.dev, info, cfg.data.dev)  # checks that the teacher knows the dev labels
    all_texts = data.texts
    targets = teacher_targets(run_dir, info, all_texts, temperature=cfg.distill.temperature,
                              device=cfg.training.device, precision=cfg.training.precision,
                              batch_chars=cfg.distill.teacher_batch_chars, progress=progress,
                              resume=resume is not None)
    trained = data.training_texts()
    model, featurizer, meta = build_student(cfg, run_dir, info, [all_texts[i] for i in trained],
                                            resume=resume is not None)
    epoch_batches = training_batches(cfg, TextStore.build(all_texts, featurizer), featurizer,
                                     targets, gold, trained)
    held = (data.held_out + len(data.train)).tolist()
    held_texts, held_spans = [all_texts[i] for i in held], teacher_spans(targets, info, held)

    def evaluate(m) -> dict:
        engine = prepare_engine(m, device=cfg.training.device, precision=cfg.training.precision,
                                inference_only=False)
        predictor = Predictor(engine, featurizer, max_length=cfg.data.max_length,
                              overlap=cfg.data.overlap)
        metrics = score_examples(predictor, data.dev) if data.dev else {}
        if held_texts:
            metrics.update(agreement_scores(predictor, held_texts, held_spans))
        return metrics

    provenance = student_provenance(cfg, info, texts)

    def save_best(m, metrics: dict) -> None:
        save_model_dir(m, featurizer, meta, run_dir / MODEL, run_config=cfg, metrics=metrics,
                       provenance=provenance)

    result = train_loop(model, cfg=cfg.training, run_dir=run_dir, epoch_batches=epoch_batches,
                        evaluate=evaluate if data.dev or held_texts else None,
                        save_best=save_best, score_key="f1" if data.dev else "agreement_f1",
                        resume=resume is not None, progress=progress)
    write_summary(run_dir, cfg, result, data, info)
    return run_dir, result


def training_batches(cfg: Config, store: TextStore, featurizer, targets: TeacherTargets,
                     gold: Sequence[Sequence[int]], trained: Sequence[int]
                     ) -> Callable[[int], WindowBatches]:
    """``epoch_batches(epoch)`` for the loop: the windows of the ``trained`` texts in
    length-bucketed batches seeded by ``(seed, epoch)`` (what makes resume exact), each with
    its teacher targets, gold tags (the first ``len(gold)`` texts) and ``has_gold``."""
    labels = np.zeros(len(targets.tags), dtype=np.int64)  # shape: (N,); 0 where no gold
    if gold:
        labels[:store.offsets[len(gold)]] = np.concatenate([np.asarray(g, np.int64) for g in gold])
    windows = store.windows(trained, max_chars=cfg.data.max_length - 2, overlap=cfg.data.overlap)
    per_char = {"labels": labels, "soft_targets": targets.probs}

    def make_batch(indices: Sequence[int]) -> dict:
        rows = windows[np.asarray(indices)]  # shape: (b, 3)
        batch = store.collate(rows, featurizer, per_char)
        batch["has_gold"] = torch.from_numpy(rows[:, 0] < len(gold))  # shape: (b,)
        batch["n_chars"] = int(batch["char_mask"].sum())
        return batch

    sizes = (windows[:, 2] - windows[:, 1]).tolist()
    plans: dict[int, list[list[int]]] = {}

    def epoch_batches(epoch: int) -> WindowBatches:
        if epoch not in plans:  # planned once per epoch, collated batch by batch
            plans.clear()
            plans[epoch] = bucketed_batches(sizes, batch_size=cfg.training.batch_size,
                                            seed=cfg.training.seed, epoch=epoch)
        return WindowBatches(plans[epoch], make_batch)

    return epoch_batches


def student_provenance(cfg: Config, teacher: TeacherInfo, texts: Sequence[str]):
    """The data files (labelled splits, text files) hashed now, and the teacher's weight
    files as recorded when the run began (split ``teacher``)."""
    provenance = training_provenance([("train", cfg.data.train if cfg.distill.gold else None),
                                      ("dev", cfg.data.dev), ("test", cfg.data.test),
                                      *[("text", t) for t in texts]])
    recorded = [DataFile("teacher", f["path"], f["sha256"], f["bytes"]) for f in teacher.files]
    return replace(provenance, data=[*provenance.data, *recorded])


def write_summary(run_dir: Path, cfg: Config, result: TrainResult, data: DistillData,
                  teacher: TeacherInfo) -> None:
    """``summary.json``: the best scores, the best student's test scores, what it read."""
    summary = {"best": result.best_metrics, "stopped_because": result.stopped_because,
               "steps": result.state.step, "best_step": result.state.best_step,
               "teacher": teacher.path,
               "texts": {"labelled": len(data.train), "raw": len(data.raw),
                         "held_out": len(data.held_out), "left_out": data.dropped}}
    if data.test:
        best = Tagger.load(run_dir / MODEL, device=cfg.training.device,
                           precision=cfg.training.precision)
        summary["test"] = score_examples(best.predictor, data.test)
    with atomic_write(run_dir / "summary.json") as handle:
        json.dump(summary, handle, indent=1, ensure_ascii=False)


__all__ = ["distill"]
