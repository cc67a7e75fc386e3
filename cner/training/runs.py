"""What every task's training does before the loop: the run directory and the encoder.

A new run gets ``runs/<config>-<timestamp>/`` (or ``--output``) and saves its config and
vocabulary there first; ``resume=RUN_DIR`` reads both back so the resumed run rebuilds the
very same model before the checkpoint's weights are loaded.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from cner.config import Config, load_config
from cner.encoding.vocab import CharVocab
from cner.errors import ConfigError
from cner.models import modeldir
from cner.training.loop import seed_everything

# A run directory keeps its config and vocabulary under the model directory's names.
RUN_CONFIG = modeldir.RUN_CONFIG
RUN_VOCAB = modeldir.VOCAB


def default_run_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def open_run(config: Config | None, *, output: str | Path | None, resume: str | Path | None,
             overwrite: bool) -> tuple[Config, Path]:
    """The run's config and directory: a resumed run's saved config, or a new directory."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / RUN_CONFIG).is_file():
            raise ConfigError(f"{run_dir} is not a cner run directory (no {RUN_CONFIG})")
        return load_config(run_dir / RUN_CONFIG), run_dir
    cfg = config or load_config()
    run_dir = Path(output) if output else default_run_dir(cfg)
    if (run_dir / "checkpoints").exists():
        if not overwrite:
            raise ConfigError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue "
                              "it, --overwrite to replace it, or another --output")
        shutil.rmtree(run_dir)
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
