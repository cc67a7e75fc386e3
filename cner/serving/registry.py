"""The models a server serves: each a name, a model directory and a runner for the batcher.

`model_specs` turns the ``--model`` values (``DIR`` or ``NAME=DIR``) into names and
directories; `open_models` reads each directory's description (`cner_model.json`, the
training metrics) at once, so that a wrong path is a one-line error before the server
starts, and leaves loading the weights to the model thread (`TaggerRunner.load`,
`ClassifierRunner.load`), which also warms each model up.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cner.errors import CnerError, ModelError

DEFAULT_NAME = "default"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A warm-up pass: two lengths, and a text longer than any window (windows are merged).
WARM_UP_TEXTS = ("北京欢迎你", "上海", "张伟在北京大学工作。" * 60)


class SpecError(CnerError):
    """A ``--model`` value that names no model properly."""


@dataclass
class LoadOptions:
    device: str = "cpu"
    precision: str = "auto"
    batch_size: int = 64
    compile: bool = False
    threads: int | None = None  # torch's intra-op threads (None: `default_threads`)

    def apply_threads(self) -> None:
        """Set torch's thread count (process-wide: the model thread is its only user)."""
        import torch

        threads = self.threads if self.threads is not None else default_threads()
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)


def default_threads() -> int | None:
    """Torch threads of a server: one core fewer than the process may use (at least one),
    unless ``OMP_NUM_THREADS`` says otherwise (``None``: leave torch's count). The event
    loop needs a core of its own: when it (or a client on the same machine) took a core from
    torch's OpenMP team, every parallel region waited for the descheduled thread; on 2 cores,
    one request at a time took 300-450 ms with 2 torch threads and 10-16 ms with 1."""
    import os

    if os.environ.get("OMP_NUM_THREADS"):
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def model_specs(values: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """``(name, directory)`` per ``--model`` value: ``NAME=DIR``, or a bare ``DIR`` (named
    ``default``; only one may be bare). A value that is an existing path is a bare
    directory even if it holds ``=``."""
    specs, names = [], set()
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or Path(value).exists():
            name, directory = DEFAULT_NAME, value
        if not NAME_PATTERN.fullmatch(name):
            raise SpecError(f"--model {value}: the name {name!r} must be letters, digits, '.', "
                            "'_' or '-' (at most 64), e.g. --model ner=runs/x/model")
        if not directory:
            raise SpecError(f"--model {value}: no directory after '='")
        if name in names:
            hint = ("name them: --model NAME=DIR" if name == DEFAULT_NAME
                    else "give each model its own name")
            raise SpecError(f"--model: the name {name!r} is given twice; {hint}")
        names.add(name)
        specs.append((name, directory))
    if not specs:
        raise SpecError("no --model given")
    return specs


@dataclass
class ServedModel:
    """A model directory's description and, once the model thread loaded it, the model."""

    name: str
    directory: Path
    meta: object  # cner.models.metadata.ModelMeta
    metrics: dict = field(default_factory=dict)
    options: LoadOptions = field(default_factory=LoadOptions)
    loaded: object = None  # the Tagger or Classifier

    @property
    def task(self) -> str:
        return self.meta.task

    def labels(self) -> list[str]:
        if self.task == "ner":
            return sorted({t.partition("-")[2] for t in self.meta.labels if t != "O"})
        return list(self.meta.labels)

    def describe(self) -> dict:
        """The model's entry in ``GET /v1/models``."""
        meta = self.meta
        out = {"name": self.name, "task": self.task, "labels": self.labels(),
               "head": meta.head, "scheme": meta.scheme if self.task == "ner" else None,
               "encoder": _encoder(self.directory), "max_length": meta.max_length,
               "metrics": self.metrics, "ready": self.loaded is not None}
        if self.task == "ner":
            out["tags"] = list(meta.labels)
        return out


class _Runner:
    """Loads a served model on the model thread, warms it up with ``warm_up`` items, and runs
    a batch's items through its ``pipe``."""

    warm_up: tuple = WARM_UP_TEXTS

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.name = model.name

    def _load(self, options):
        raise NotImplementedError

    def load(self) -> None:
        options = self.model.options
        options.apply_threads()
        loaded = self._load(options)
        list(loaded.pipe(list(self.warm_up)))
        self.model.loaded = loaded

    def run(self, items: list) -> list:
        return list(self.model.loaded.pipe(items))


class TaggerRunner(_Runner):
    """Runs a NER model: `Tagger.pipe` over a batch's texts."""

    def _load(self, options):
        from cner.inference.tagger import Tagger

        return Tagger.load(self.model.directory, device=options.device,
                           precision=options.precision, batch_size=options.batch_size,
                           compile=options.compile)


class ClassifierRunner(_Runner):
    """Runs a classification model: `Classifier.pipe` over texts and ``(text, pair)``s."""

    warm_up = (*WARM_UP_TEXTS, (WARM_UP_TEXTS[0], WARM_UP_TEXTS[1]))

    def _load(self, options):
        from cner.inference.classifier import Classifier

        return Classifier.load(self.model.directory, device=options.device,
                               precision=options.precision, batch_size=options.batch_size)


def open_models(specs: list[tuple[str, str]], options: LoadOptions | None = None
                ) -> dict[str, ServedModel]:
    """name -> `ServedModel` of each ``(name, directory)`` (a hub id is fetched now), its
    description read, its weights not yet loaded."""
    from cner.models.hub import resolve_model_dir
    from cner.models.modeldir import METRICS, read_meta

    models = {}
    for name, value in specs:
        directory = resolve_model_dir(value)
        meta = read_meta(directory)
        if meta.task not in ("ner", "classification"):
            raise ModelError(f"{directory}: cner serve serves NER and classification models, "
                             f"not {meta.task!r}")
        metrics = {}
        if (directory / METRICS).is_file():
            try:
                metrics = json.loads((directory / METRICS).read_text("utf-8"))
            except (ValueError, OSError):
                metrics = {}
        models[name] = ServedModel(name, directory, meta, metrics if isinstance(metrics, dict)
                                   else {}, options or LoadOptions())
    return models


def runner_for(model: ServedModel):
    return TaggerRunner(model) if model.task == "ner" else ClassifierRunner(model)


def _encoder(directory: Path) -> dict:
    """What ``config.json`` says of the encoder: its type and size."""
    try:
        config = json.loads((directory / "config.json").read_text("utf-8"))
    except (ValueError, OSError):
        return {}
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "vocab_size", "_name_or_path")
    return {k: config[k] for k in keys if k in config}
