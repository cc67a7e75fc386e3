"""Masked-language-model pre-training as a task of the shared training loop.

Raw text (`cner.data.text.read_documents`) -> the character vocabulary (a scratch or BiLSTM
encoder: built from the text, or ``pretrain.vocab``; a model to continue: its own) -> lines
packed into full-length sequences (`cner.encoding.packing`) -> a seeded held-out slice for
evaluation -> batches masked anew each epoch (`cner.encoding.masking`) -> `MaskedLanguageModel`
on `cner.training.loop.train_loop` (precision per machine, checkpoints and ``--resume``,
progress bar, ``metrics.jsonl``, the ``training.max_minutes`` budget). The model with the
lowest held-out MLM loss is written to ``RUN_DIR/model`` as an encoder directory
(`cner.models.encoderdir`) that every task config accepts as ``model.encoder``.

`build_vocab_dir` is ``cner vocab build``: a vocabulary of a given size from text, saved with
its Hugging Face tokenizer files.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from cner.config import Config
from cner.data.text import read_documents, text_stats
from cner.encoding.masking import Masker, MaskingSpec
from cner.encoding.packing import (EVAL_STREAM, BatchBuilder, MlmBatches, PackedText,
                                   eval_plan, hold_out, pack_documents, train_plan)
from cner.encoding.vocab import CharVocab
from cner.encoding.vocab_builder import count_characters, vocab_from_counts
from cner.errors import ConfigError, InputError, ModelError
from cner.fileio import atomic_write
from cner.models import encoderdir
from cner.models.mlm import MaskedLanguageModel, describe, mlm_from_pretrained
from cner.training.loop import TrainResult, seed_everything, train_loop
from cner.training.runs import RUN_CONFIG, RUN_VOCAB, open_run

TEXT_LIST = "pretrain_text.json"  # the run's text files, for --resume
MODEL = "model"
VOCAB_INFO = "cner_vocab.json"
LOCAL = ("scratch", "bilstm")


# --- the vocabulary ---------------------------------------------------------------------------

def build_vocab_dir(texts: Sequence[str | Path], output: str | Path, *, size: int,
                    reserved: int = 100, min_count: int = 1, lowercase: bool = True,
                    halfwidth: bool = True, max_length: int = 512) -> dict:
    """``cner vocab build``: the vocabulary of ``texts`` (`vocab_from_counts`) written to the
    directory ``output`` as ``vocab.txt``, ``tokenizer.json``, ``tokenizer_config.json`` and
    ``cner_vocab.json`` (the counts and settings); returns the latter's values."""
    _check_files(texts)
    counts = count_characters((line for doc in read_documents(texts) for line in doc),
                              lowercase=lowercase, halfwidth=halfwidth)
    if not counts:
        raise InputError("the text has no characters to build a vocabulary from",
                         path=texts[0] if len(texts) == 1 else None)
    try:
        vocab, stats = vocab_from_counts(counts, size=size, reserved=reserved,
                                         min_count=min_count, lowercase=lowercase,
                                         halfwidth=halfwidth)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputError("exists and is not a directory", path=output)
    output.mkdir(parents=True, exist_ok=True)
    encoderdir.write_tokenizer(vocab, max_length, output)
    info = {**stats.as_dict(), "min_count": min_count, "lowercase": lowercase,
            "halfwidth": halfwidth, "text": [{k: t[k] for k in ("path", "sha256", "characters")}
                                             for t in text_stats(texts)]}
    with atomic_write(output / VOCAB_INFO) as handle:
        handle.write(json.dumps(info, indent=1, ensure_ascii=False))
    return info


def load_vocab(path: str | Path, cfg: Config) -> CharVocab:
    """``pretrain.vocab``: a ``vocab.txt`` or a directory holding one (``cner vocab build``);
    its look-up normalisation must be the config's."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    file = path / "vocab.txt" if path.is_dir() else path
    info = directory / VOCAB_INFO
    if info.is_file():
        saved = json.loads(info.read_text("utf-8"))
        for key in ("lowercase", "halfwidth"):
            if key in saved and saved[key] != getattr(cfg.data, key):
                raise ConfigError(f"the vocabulary {directory} was built with {key}="
                                  f"{str(saved[key]).lower()} but data.{key} is "
                                  f"{str(getattr(cfg.data, key)).lower()}; build it again or "
                                  f"--set data.{key}={str(saved[key]).lower()}")
    return CharVocab.load(file, lowercase=cfg.data.lowercase, halfwidth=cfg.data.halfwidth)


# --- the run ------------------------------------------------------------------------------------

def _check_files(texts: Sequence[str | Path]) -> None:
    if not texts:
        raise ConfigError("no pre-training text: give --text FILE (one sentence or document "
                          "per line; a blank line ends a document)")
    for path in texts:
        if not Path(path).exists():
            raise InputError("file not found", path=path)
        if Path(path).is_dir():
            raise InputError("is a directory, expected a text file", path=path)


def _run_vocab(cfg: Config, run_dir: Path, texts: Sequence[str], *, resume: bool) -> CharVocab:
    p = cfg.pretrain
    data = cfg.data
    if resume and (run_dir / RUN_VOCAB).is_file():
        return CharVocab.load(run_dir / RUN_VOCAB, lowercase=data.lowercase,
                              halfwidth=data.halfwidth)
    if cfg.model.encoder not in LOCAL:
        if p.vocab:
            raise ConfigError("pretrain.vocab is for an encoder trained from scratch; a model "
                              f"to continue ({cfg.model.encoder}) brings its own vocabulary")
        from cner.models.encoders import pretrained_vocab

        return pretrained_vocab(cfg.model.encoder, data)
    if p.vocab:
        return load_vocab(p.vocab, cfg)
    counts = count_characters((line for doc in read_documents(texts) for line in doc),
                              lowercase=data.lowercase, halfwidth=data.halfwidth)
    try:
        return vocab_from_counts(counts, size=p.vocab_size, reserved=p.reserved,
                                 min_count=cfg.model.vocab_min_count,
                                 lowercase=data.lowercase, halfwidth=data.halfwidth)[0]
    except ValueError as exc:
        raise ConfigError(f"pretrain.vocab_size: {exc}") from None


def build_model(cfg: Config, vocab: CharVocab) -> MaskedLanguageModel:
    """The seeded masked LM: a new scratch BERT or BiLSTM over ``vocab``, or the model named
    by ``model.encoder`` (a hub id or directory) to continue."""
    from cner.models.encoders import local_encoder

    seed_everything(cfg.training.seed)  # the initialisation is part of the run's seed
    pair = cfg.pretrain.pair_objective
    if cfg.model.encoder in LOCAL:
        encoder = local_encoder(cfg.model, vocab, max_positions=max(512, cfg.data.max_length))
        return MaskedLanguageModel(encoder, pair_objective=pair)
    model = mlm_from_pretrained(cfg.model.encoder, pair_objective=pair)
    limit = getattr(model.encoder.config, "max_position_embeddings", None)
    if limit is not None and cfg.data.max_length > limit:
        raise ModelError(f"data.max_length={cfg.data.max_length} exceeds the encoder's "
                         f"max_position_embeddings={limit}")
    rows = model.encoder.get_input_embeddings().num_embeddings
    if len(vocab) > rows:
        raise ModelError(f"{cfg.model.encoder}: its vocabulary has {len(vocab):,} tokens but "
                         f"its embedding only {rows:,} rows")
    return model


def masking_spec(cfg: Config) -> MaskingSpec:
    p = cfg.pretrain
    try:
        return MaskingSpec(strategy=p.masking, ratio=p.mask_ratio, mask_prob=p.mask_prob,
                           random_prob=p.random_prob, span_p=p.span_p, span_max=p.span_max)
    except ValueError as exc:
        raise ConfigError(f"pretrain: {exc}") from None


def evaluation_metrics(model: MaskedLanguageModel, batches) -> dict[str, float]:
    """Held-out MLM loss (mean cross-entropy per masked position) and accuracy; with a pair
    objective its loss and accuracy too."""
    sums: dict[str, float] = {}
    for batch in batches:
        for key, value in model.score(batch).items():
            sums[key] = sums.get(key, 0.0) + value
    masked = max(sums.get("masked", 0.0), 1.0)
    out = {"mlm_loss": sums.get("loss", 0.0) / masked,
           "mlm_accuracy": sums.get("correct", 0.0) / masked, "masked": sums.get("masked", 0.0)}
    if "pairs" in sums:
        pairs = max(sums["pairs"], 1.0)
        out.update(pair_loss=sums["pair_loss"] / pairs, pair_accuracy=sums["pair_correct"] / pairs)
    return out


def pretrain(config: Config | None = None, *, text: Sequence[str | Path] = (),
             output: str | Path | None = None, resume: str | Path | None = None,
             overwrite: bool = False, progress: bool = True) -> tuple[Path, TrainResult]:
    """Pre-train (or continue pre-training) an encoder on ``text``; the best one goes to
    ``RUN_DIR/model``. A resumed run reads its config and text list from ``resume``."""
    if resume is None:
        texts = [os.path.abspath(t) for t in text]
        _check_files(texts)
    cfg, run_dir = open_run(config, output=output, resume=resume, overwrite=overwrite,
                            check=lambda c: _check_files(texts))
    if resume is not None:
        listed = run_dir / TEXT_LIST
        if not listed.is_file():
            raise ConfigError(f"{run_dir} is not a cner pretrain run (no {TEXT_LIST})")
        if text:
            raise ConfigError("--resume continues a run on its own text; drop --text")
        texts = json.loads(listed.read_text("utf-8"))["text"]
        _check_files(texts)
    p = cfg.pretrain
    spec = masking_spec(cfg)
    vocab = _run_vocab(cfg, run_dir, texts, resume=resume is not None)
    model = build_model(cfg, vocab)
    if resume is None:
        with atomic_write(run_dir / TEXT_LIST) as handle:
            json.dump({"text": texts}, handle, indent=1, ensure_ascii=False)
        vocab.save(run_dir / RUN_VOCAB)
        cfg.save(run_dir / RUN_CONFIG)

    pair = p.pair_objective != "none"
    words = spec.strategy != "char"
    packed = pack_documents(read_documents(texts), vocab,
                            length=cfg.data.max_length - (3 if pair else 2), words=words)
    if len(packed) == 0:
        raise InputError("the pre-training text has no characters",
                         path=texts[0] if len(texts) == 1 else None)
    seed = cfg.training.seed
    train_ids, eval_ids = hold_out(len(packed), fraction=p.eval_fraction,
                                   limit=p.eval_sequences, seed=seed)
    masker = Masker(spec, vocab)
    train_builder = BatchBuilder(packed, vocab, masker, p.pair_objective, use_words=words,
                                 pool=train_ids)
    eval_builder = BatchBuilder(packed, vocab, masker, p.pair_objective, use_words=words,
                                pool=eval_ids)
    eval_batches = list(MlmBatches(eval_builder, eval_plan(packed, eval_ids,
                                                           batch_size=cfg.training.batch_size),
                                   seed=seed, epoch=0, stream=EVAL_STREAM))
    plans: dict[int, list[list[int]]] = {}

    def epoch_batches(epoch: int) -> MlmBatches:
        if epoch not in plans:
            plans.clear()
            plans[epoch] = train_plan(packed, train_ids, batch_size=cfg.training.batch_size,
                                      seed=seed, epoch=epoch)
        return MlmBatches(train_builder, plans[epoch], seed=seed, epoch=epoch)

    info = run_info(cfg, model, texts, packed, held_out=len(eval_ids))

    def evaluate(m) -> dict:
        return evaluation_metrics(m, eval_batches)

    def save_best(m, metrics: dict) -> None:
        encoderdir.save_encoder_dir(m, vocab, run_dir / MODEL, max_length=cfg.data.max_length,
                                    info={**info, "metrics": metrics})

    result = train_loop(model, cfg=cfg.training, run_dir=run_dir, epoch_batches=epoch_batches,
                        evaluate=evaluate if len(eval_ids) else None, save_best=save_best,
                        score_key="mlm_loss", higher_is_better=False,
                        resume=resume is not None, progress=progress)
    state = result.state
    totals = {"steps": state.step, "best_step": state.best_step or state.step,
              "trained_characters": state.chars, "seconds": round(state.elapsed, 1),
              "stopped_because": result.stopped_because}
    if (run_dir / MODEL / encoderdir.INFO).is_file():
        encoderdir.update_info(run_dir / MODEL, **totals)
    summary = {"best": result.best_metrics, **totals, "characters": packed.characters,
               "sequences": len(packed), "held_out": len(eval_ids)}
    with atomic_write(run_dir / "summary.json") as handle:
        json.dump(summary, handle, indent=1)
    return run_dir, result


def run_info(cfg: Config, model: MaskedLanguageModel, texts: Sequence[str],
             packed: PackedText, *, held_out: int) -> dict:
    """``cner_pretrain.json`` of the run's encoder directory (the totals are added at the
    end, `encoderdir.update_info`)."""
    try:
        from cner.models.metadata import cli_command, package_versions, utc_now
    except ImportError:  # pragma: no cover - before cner.models.metadata was split out
        from cner.models.modeldir import _now as utc_now
        from cner.models.modeldir import cli_command, package_versions
    from cner.runtime.devices import resolve_device, resolve_precision

    p = cfg.pretrain
    precision = resolve_precision(cfg.training.precision, resolve_device(cfg.training.device))
    return {"format": 1, "architecture": describe(model),
            "initialised_from": None if cfg.model.encoder in LOCAL else cfg.model.encoder,
            "masking": asdict(masking_spec(cfg)), "pair_objective": p.pair_objective,
            "max_length": cfg.data.max_length, "lowercase": cfg.data.lowercase,
            "halfwidth": cfg.data.halfwidth, "text": text_stats(texts),
            "characters": packed.characters, "lines": packed.lines,
            "documents": packed.documents, "sequences": len(packed), "held_out": held_out,
            "precision": precision, "seed": cfg.training.seed, "command": cli_command(),
            "versions": package_versions(), "created": utc_now()}
