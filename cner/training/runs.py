"""What every task's training does before the loop: the run directory and the encoder.

A new run gets ``runs/<config>-<timestamp>/`` (or ``--output``) and saves its config and
vocabulary there first; ``resume=RUN_DIR`` reads both back so the resumed run rebuilds the
very same model before the checkpoint's weights are loaded.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from torch import nn

from cner.config import Config, load_config
from cner.encoding.vocab import CharVocab
from cner.errors import ConfigError
from cner.fileio import atomic_write
from cner.models import modeldir
from cner.training.loop import seed_everything

# A run directory keeps its config and vocabulary under the model directory's names.
RUN_CONFIG = modeldir.RUN_CONFIG
RUN_VOCAB = modeldir.VOCAB


def default_run_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


# Written when cner creates a run directory: the sign that --overwrite may replace its run.
RUN_MARKER = "cner_run.json"
# What a run writes at the top of its directory; ".NAME.*" are their temporaries.
RUN_ENTRIES = (RUN_MARKER, RUN_CONFIG, RUN_VOCAB, "checkpoints", "model", "metrics.jsonl",
               "summary.json", "bigrams.txt", "pretrain_text.json", "distill_run.json",
               "teacher_targets.safetensors")


def _is_run_entry(name: str) -> bool:
    return name in RUN_ENTRIES or any(name.startswith(f".{known}.") for known in RUN_ENTRIES)


def run_stamp(run_dir: str | Path) -> tuple[int, int, int] | None:
    """Which `RUN_MARKER` ``run_dir`` holds now (device, inode, mtime), ``None`` if none.

    `open_run` writes the marker anew (atomically: a new file) for every new run, after it has
    removed an earlier run's entries; so a stamp that changed since before `open_run` means
    that every run entry in the directory is the new run's."""
    try:
        info = os.stat(Path(run_dir) / RUN_MARKER)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mtime_ns


def discard_unstarted_run(run_dir: str | Path, before: tuple[int, int, int] | None) -> bool:
    """Remove a run that failed before its first checkpoint: the run entries (`RUN_ENTRIES`
    and their temporaries) of ``run_dir``, provided `open_run` made them in this process
    (the marker's stamp differs from ``before``, taken first) and ``checkpoints/`` holds no
    complete checkpoint. Anything else in the directory stays. Returns whether the directory
    is then empty."""
    from cner.training.checkpoints import Checkpointer

    run_dir = Path(run_dir)
    stamp = run_stamp(run_dir)
    if stamp is None or stamp == before or Checkpointer(run_dir).latest() is not None:
        return not run_dir.is_dir() or not os.listdir(run_dir)
    for name in sorted(os.listdir(run_dir), key=lambda n: n == RUN_MARKER):  # the marker last
        path = run_dir / name
        if not _is_run_entry(name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return not os.listdir(run_dir)


def open_run(config: Config | None, *, output: str | Path | None, resume: str | Path | None,
             overwrite: bool, check: Callable[[Config], object] | None = None
             ) -> tuple[Config, Path]:
    """`open_new_or_resumed`; under torchrun rank 0 opens the directory, the other ranks then
    read the one it opened (`cner.training.distributed`)."""
    from cner.training import distributed

    training = config.training if config is not None else None
    distributed.init(training.device if training else "auto",
                     training.threads if training else None)

    def reopen(run_dir: Path) -> tuple[Config, Path]:
        if resume is not None:
            return load_config(run_dir / RUN_CONFIG), run_dir
        return config or load_config(), run_dir

    return distributed.open_run_first(
        lambda: open_new_or_resumed(config, output=output, resume=resume, overwrite=overwrite,
                                    check=check), reopen)


def open_new_or_resumed(config: Config | None, *, output: str | Path | None,
                        resume: str | Path | None, overwrite: bool,
                        check: Callable[[Config], object] | None = None
                        ) -> tuple[Config, Path]:
    """The run's config and directory: a resumed run's saved config, or a new directory.

    A new run's directory is created here with `RUN_MARKER` in it; an existing directory
    without the marker is used only when empty. ``overwrite`` replaces the run in a directory
    with the marker (or a run from before the marker: its config and checkpoints), and only
    after ``check(cfg)``, which reads every input the run will read, has succeeded: a missing
    or unreadable input leaves the old run as it was. Only the run's own entries
    (`RUN_ENTRIES`) are deleted; anything else the directory holds is kept.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / RUN_CONFIG).is_file():
            raise ConfigError(f"{run_dir} is not a cner run directory (no {RUN_CONFIG})")
        return load_config(run_dir / RUN_CONFIG), run_dir
    cfg = config or load_config()
    run_dir = Path(output) if output else default_run_dir(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory; choose another --output")
    entries = sorted(os.listdir(run_dir)) if run_dir.is_dir() else []
    ours = (run_dir / RUN_MARKER).is_file() or (  # or a run from before the marker
        (run_dir / RUN_CONFIG).is_file() and (run_dir / "checkpoints").is_dir())
    if entries and not ours:
        raise ConfigError(
            f"{run_dir} is not a cner run directory (no {RUN_MARKER}), so --overwrite leaves it "
            "alone; choose another --output" if overwrite else
            f"{run_dir} is not empty and is not a cner run directory (no {RUN_MARKER}); "
            "choose another --output")
    run = [name for name in entries if _is_run_entry(name) and name != RUN_MARKER]
    if run:
        if not overwrite:
            raise ConfigError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue "
                              "it, --overwrite to replace it, or another --output")
        if check is not None:
            check(cfg)  # before anything is deleted
        for name in run:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_dir / RUN_MARKER) as handle:
        json.dump({"cner_run": 1, "config": cfg.name,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, handle)
        handle.write("\n")
    return cfg, run_dir


def run_encoder(cfg: Config, run_dir: Path, texts: Iterable[str], *, resume: bool
                ) -> tuple[nn.Module, CharVocab]:
    """Seeded encoder and vocabulary; a new run saves its vocabulary and config first."""
    from cner.models.encoders import LOCAL_KINDS, build_encoder, local_encoder

    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.training.seed)  # the weight initialisation is part of the run's seed
    if resume and (run_dir / RUN_VOCAB).is_file():
        vocab = CharVocab.load(run_dir / RUN_VOCAB, lowercase=cfg.data.lowercase,
                               halfwidth=cfg.data.halfwidth)
        if cfg.model.encoder in LOCAL_KINDS:
            return local_encoder(cfg.model, vocab,
                                   max_positions=max(512, cfg.data.max_length)), vocab
        return build_encoder(cfg.model, cfg.data, [])[0], vocab
    encoder, vocab = build_encoder(cfg.model, cfg.data, texts)
    vocab.save(run_dir / RUN_VOCAB)  # both written atomically (cner.fileio.atomic_write)
    cfg.save(run_dir / RUN_CONFIG)
    return encoder, vocab
