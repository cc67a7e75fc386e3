"""NER as a task of the shared training loop: corpora -> windows -> batches -> TokenTagger."""
from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from cner.config import Config
from cner.data.example import Example
from cner.data.formats import Corpus, read_corpus
from cner.encoding.batching import bucketed_batches, collate_inputs
from cner.encoding.features import Featurizer
from cner.encoding.vocab import CharVocab
from cner.encoding.windows import plan_windows
from cner.errors import InputError
from cner.inference.predictor import Predictor
from cner.inference.tagger import Tagger
from cner.metrics import entity_scores
from cner.models.encoders import LOCAL_KINDS
from cner.models.metadata import NER, ModelMeta, NerFeatures, training_provenance
from cner.models.modeldir import (BIGRAMS, build_tagger, featurizer_for, read_bigrams, save_bigrams,
                                  save_model_dir)
from cner.runtime.engine import prepare_engine
from cner.schemes import Span, check_scheme, flatten_spans, label_set, spans_to_tags
from cner.training.loop import TrainResult, train_loop
from cner.training.runs import open_run, run_encoder


def read_ner_split(path: str | None, cfg: Config, *, report: bool = False) -> list[Example]:
    """One corpus file as ``cfg.data`` says (``lenient``: repair invalid tag transitions;
    ``token_suffix``); ``report`` prints what reading noticed or repaired, one ``note:`` line
    per file on stderr."""
    if path is None:
        return []
    corpus = read_corpus(path, format=cfg.data.format, scheme=cfg.data.scheme,
                         mode="lenient" if cfg.data.lenient else "strict",
                         token_suffix=cfg.data.token_suffix)
    if report:
        print_notes(corpus)
    return corpus.examples


def print_notes(corpus: Corpus) -> None:
    for note in corpus.notes:
        print(f"note: {note}", file=sys.stderr)


def split_dev(examples: list[Example], fraction: float, seed: int) -> tuple[list, list]:
    """A seeded hold-out: the same ``fraction`` of examples for the same seed."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_dev = int(round(len(examples) * fraction))
    dev_ids = set(order[:n_dev])
    return ([e for i, e in enumerate(examples) if i not in dev_ids],
            [e for i, e in enumerate(examples) if i in dev_ids])


def encode_corpus(examples: Sequence[Example], featurizer: Featurizer, tags: list[str],
                  cfg: Config) -> list[tuple[dict[str, list[int]], list[int]]]:
    """Training windows as ``(model inputs, label ids)``; nested spans keep the outermost."""
    tag_to_id = {t: i for i, t in enumerate(tags)}
    windows = []
    for ex in examples:
        if not ex.text:
            continue
        spans, _ = flatten_spans(ex.spans)
        labels = [tag_to_id[t] for t in spans_to_tags(spans, len(ex.text), scheme=cfg.model.tag_scheme)]
        feats = featurizer.features(ex.text)
        for start, end in plan_windows(len(ex.text), max_chars=cfg.data.max_length - 2,
                                       overlap=cfg.data.overlap):
            windows.append((featurizer.window(feats, start, end), labels[start:end]))
    return windows


def ner_train_batches(windows: Sequence[tuple[dict[str, list[int]], list[int]]], *,
                      batch_size: int, seed: int, epoch: int, featurizer: Featurizer
                      ) -> list[dict]:
    """The epoch's collated training batches (`bucketed_batches`: deterministic per
    ``(seed, epoch)``, which is what makes resume exact)."""
    order = bucketed_batches([len(labels) for _, labels in windows], batch_size=batch_size,
                             seed=seed, epoch=epoch)
    return [collate_train([windows[k] for k in batch], featurizer) for batch in order]


def collate_train(items: Sequence[tuple[dict[str, list[int]], list[int]]],
                  featurizer: Featurizer) -> dict:
    inputs = collate_inputs([feats for feats, _ in items], featurizer)
    labels = torch.zeros(inputs["char_mask"].shape, dtype=torch.long)  # shape: (B, L)
    for row, (_, labs) in enumerate(items):
        labels[row, :len(labs)] = torch.tensor(labs)
    return {**inputs, "labels": labels, "n_chars": int(inputs["char_mask"].sum())}


def run_featurizer(run_dir: Path, vocab: CharVocab, cfg: Config, train: Sequence[Example], *,
                   fresh: bool) -> Featurizer:
    """The run's featurizer; a new run builds (and saves) its bigram list from ``train``."""
    features = NerFeatures(bigrams=cfg.model.bigrams, word_boundaries=cfg.model.word_boundaries,
                           lexicon=cfg.model.lexicon)
    bigrams = None
    if features.bigrams:
        path = run_dir / BIGRAMS
        if fresh or not path.is_file():
            bigrams = Featurizer.build_bigrams((ex.text for ex in train), vocab,
                                               min_count=cfg.model.bigram_min_count)
            save_bigrams(bigrams, path)
        else:
            bigrams = read_bigrams(path)
    return featurizer_for(vocab, features, bigrams)


def train_ner(config: Config | None = None, *, output: str | Path | None = None,
              resume: str | Path | None = None, overwrite: bool = False,
              progress: bool = True) -> tuple[Path, TrainResult]:
    """Train a tagger; returns the run directory (its ``model/`` is the best model) and the result.

    With ``resume=RUN_DIR`` the run's saved config and vocabulary are used and training
    continues from its last checkpoint.
    """
    cfg, run_dir = open_run(config, output=output, resume=resume, overwrite=overwrite,
                            check=lambda c: [read_ner_split(path, c) for path in
                                             (c.data.train, c.data.dev, c.data.test)])
    check_scheme(cfg.model.tag_scheme)
    train = read_ner_split(cfg.data.train, cfg, report=True)
    dev = read_ner_split(cfg.data.dev, cfg, report=True)
    if not dev and cfg.data.dev_fraction > 0:
        train, dev = split_dev(train, cfg.data.dev_fraction, cfg.training.seed)
    if not train:
        raise InputError("the training corpus has no sentences", path=cfg.data.train)
    labels = sorted({s.label for ex in train for s in ex.spans})
    tags = label_set(labels, cfg.model.tag_scheme)
    unseen = sorted({s.label for ex in dev for s in ex.spans} - set(labels))
    if unseen:
        raise InputError(f"dev labels {unseen} never occur in the training data", path=cfg.data.dev)

    encoder, vocab = run_encoder(cfg, run_dir, (ex.text for ex in train),
                                 resume=resume is not None)
    featurizer = run_featurizer(run_dir, vocab, cfg, train, fresh=resume is None)
    meta = ModelMeta(task=NER, labels=tags, scheme=cfg.model.tag_scheme, head=cfg.model.head,
                     dropout=cfg.model.dropout, lowercase=cfg.data.lowercase,
                     halfwidth=cfg.data.halfwidth, max_length=cfg.data.max_length,
                     overlap=cfg.data.overlap, vocab_size=len(vocab),
                     features=NerFeatures.of(featurizer))
    model = build_tagger(encoder, meta, featurizer, unk_dropout=cfg.model.unk_dropout,
                         unk_id=vocab.unk_id)
    if cfg.model.encoder not in LOCAL_KINDS:  # pre-trained: new features must not drown it
        model.zero_feature_embeddings()
    windows = encode_corpus(train, featurizer, tags, cfg)
    # the data files (hashed once) and the command line, for cner_model.json and the model card
    provenance = training_provenance({"train": cfg.data.train, "dev": cfg.data.dev,
                                      "test": cfg.data.test})

    def epoch_batches(epoch: int) -> list[dict]:
        return ner_train_batches(windows, batch_size=cfg.training.batch_size, seed=cfg.training.seed,
                            epoch=epoch, featurizer=featurizer)

    def evaluate(m) -> dict:
        engine = prepare_engine(m, device=cfg.training.device, precision=cfg.training.precision,
                                inference_only=False)
        predictor = Predictor(engine, featurizer, max_length=cfg.data.max_length,
                              overlap=cfg.data.overlap)
        return score_examples(predictor, dev)

    def save_best(m, metrics: dict) -> None:
        save_model_dir(m, featurizer, meta, run_dir / "model", run_config=cfg, metrics=metrics,
                       provenance=provenance)

    result = train_loop(model, cfg=cfg.training, run_dir=run_dir, epoch_batches=epoch_batches,
                        evaluate=evaluate if dev else None, save_best=save_best,
                        resume=resume is not None, progress=progress)
    summary = {"best": result.best_metrics, "stopped_because": result.stopped_because,
               "steps": result.state.step, "best_step": result.state.best_step}
    test = read_ner_split(cfg.data.test, cfg, report=True)
    if test:
        best = Tagger.load(run_dir / "model", device=cfg.training.device,
                           precision=cfg.training.precision)
        summary["test"] = score_examples(best.predictor, test)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1), "utf-8")
    return run_dir, result


def score_examples(predictor: Predictor, examples: Sequence[Example]) -> dict:
    texts = [ex.text for ex in examples]
    predicted = [[Span(e.start, e.end, e.label) for e in ents]
                 for ents in predictor.entities(texts)]
    return entity_scores([ex.spans for ex in examples], predicted, [len(t) for t in texts])


def load_for_evaluation(model_dir: str | Path, data: str | Path, *, format: str = "auto",
                        batch_size: int = 64, device: str = "cpu", precision: str = "auto",
                        mode: str = "strict", token_suffix: str = "auto"):
    """``(Tagger, Corpus)``: the model loaded as `cner annotate` loads it (`Tagger.load`) and a
    labelled corpus it can be scored on (no label it lacks, at least one sentence). ``mode``
    and ``token_suffix`` are those of `read_corpus`; its notes are printed on stderr."""
    tagger = Tagger.load(model_dir, device=device, batch_size=batch_size, precision=precision)
    corpus = read_corpus(data, format=format, mode=mode, token_suffix=token_suffix)
    print_notes(corpus)
    unknown = sorted(set(corpus.labels()) - set(tagger.labels))
    if unknown:
        raise InputError(f"labels {unknown} are not among the model's labels {tagger.labels}",
                         path=data, hint="evaluate with a model trained on these types")
    if not corpus.examples:
        raise InputError("the corpus has no sentences to evaluate on", path=data)
    return tagger, corpus


def evaluate_ner(model_dir: str | Path, data: str | Path, **options) -> dict:
    """Strict entity-level scores of a saved model on a labelled corpus, computed by the same
    engine as `cner annotate`, so both find the same entities (options: those of
    `load_for_evaluation`)."""
    tagger, corpus = load_for_evaluation(model_dir, data, **options)
    return score_examples(tagger.predictor, corpus.examples)


__all__ = ["evaluate_ner", "train_ner"]
