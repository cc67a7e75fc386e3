"""`Tagger`: a trained NER model ready to annotate texts, streams and DataFrames."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

from cner.errors import InputError
from cner.inference.predictor import Entity, Predictor
from cner.runtime.engine import Engine

# Two texts of different lengths: a compiled encoder sees a real batch shape once.
WARM_UP_TEXTS = ("北京欢迎你", "上海")
# The columns of `Tagger.annotate_frame`'s result.
FRAME_COLUMNS = ["doc_id", "start", "end", "label", "text", "score"]


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    return text


class Tagger:
    """A trained NER model ready to annotate text.

    >>> tagger = Tagger.load("runs/tiny/model")          # doctest: +SKIP
    >>> tagger("张伟在北京大学工作。")                      # doctest: +SKIP
    [Entity(start=0, end=2, label='PER', text='张伟', score=0.98), ...]
    """

    def __init__(self, predictor: Predictor, meta) -> None:
        self.predictor = predictor
        self.meta = meta

    @classmethod
    def load(cls, model_dir: str | Path, *, device: str = "cpu", batch_size: int = 64,
             precision: str = "auto", compile: bool = False, backend: str = "torch",
             onnx_file: str | Path | None = None) -> Tagger:
        """Load a model directory for annotation; ``model_dir`` may also be the Hugging Face
        hub id of a cner model (``owner/name``, when no such directory exists here), fetched
        once into the hub cache (`cner.models.hub.resolve_model_dir`).

        ``precision``: ``auto`` (bf16 where the CPU or GPU supports it), ``bf16``, ``fp16``
        (GPU) or ``fp32``. ``compile``: compile the encoder with TorchInductor: seconds to a
        minute at load, faster on large inputs. What else is done to the model for speed
        (eager attention, weights cast once, packed linear weights) is decided in one place,
        `cner.runtime.engine.prepare_engine`, shared with evaluation and classification.

        ``backend="onnx"``: the encoder runs from the model's ONNX export (``onnx_file``,
        default ``MODEL_DIR/onnx/model.onnx``, written by ``cner export --onnx``; a missing or
        stale export is a one-line `ModelError` saying to run it) through onnxruntime, fp32 on
        the CPU; windows, batching, features, CRF decoding and offsets are the same code.
        """
        from cner.models.hub import resolve_model_dir
        from cner.models.modeldir import load_tagger_dir
        from cner.runtime.engine import prepare_engine

        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        model_dir = resolve_model_dir(model_dir)
        if backend == "onnx":  # before the weights load: a missing export fails fast
            from cner.runtime.onnxexport import find_onnx, require_onnx

            require_onnx()
            onnx_file, _ = find_onnx(model_dir, onnx_file)
        model, featurizer, meta = load_tagger_dir(model_dir)

        def predictor_for(engine: Engine) -> Predictor:
            return Predictor(engine, featurizer, max_length=meta.max_length,
                             overlap=meta.overlap, batch_size=batch_size)

        engine = prepare_engine(model, device=device, precision=precision, compile=compile,
                                warm_up=lambda e: predictor_for(e).tag_texts(WARM_UP_TEXTS),
                                backend=backend, onnx_file=onnx_file)
        return cls(predictor_for(engine), meta)

    @property
    def engine(self) -> Engine:
        return self.predictor.engine

    @property
    def precision(self) -> str:
        return self.engine.precision

    def compile(self) -> Tagger:
        """Compile the encoder with TorchInductor, in place (`Engine.compile`); a failure is a
        `ModelError` and leaves the tagger as it was. Returns the tagger."""
        self.engine.compile(lambda e: self.predictor.tag_texts(WARM_UP_TEXTS))
        return self

    @property
    def labels(self) -> list[str]:
        return sorted({t.partition("-")[2] for t in self.meta.labels if t != "O"})

    def __call__(self, text: str) -> list[Entity]:
        return self.predictor.entities([_check_text(text)])[0]

    def pipe(self, texts: Iterable[str], *, chunk_size: int | None = None,
             batch_size: int | None = None) -> Iterator[list[Entity]]:
        """Lazily annotate a stream of texts, in order, holding one chunk (``chunk_size``
        texts, default 8 batches' worth) in memory at a time. ``batch_size``: rows per
        model call (default: the tagger's); a row holds one window of a text, or several short
        ones with a BERT-type encoder (`cner.encoding.shared_rows`)."""
        if isinstance(texts, str):
            raise TypeError("pipe() takes an iterable of texts, got a single str; "
                            "call the tagger on it, or pass [text]")
        for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        size = chunk_size or (batch_size or self.predictor.batch_size) * 8
        iterator = iter(texts)
        while chunk := list(itertools.islice(iterator, size)):
            for position, text in enumerate(chunk):
                _check_text(text, f"text {position + 1} of the chunk")
            yield from self.predictor.entities(chunk, batch_size=batch_size)

    def annotate_frame(self, df, text_column: str = "text", id_column: str | None = None, *,
                       empty: str = "keep"):
        """Entities of every row of a pandas DataFrame, in long format.

        Returns a DataFrame with columns ``doc_id, start, end, label, text, score``, one row
        per entity, in the order of ``df``'s rows. ``doc_id`` is the row's value of
        ``id_column``, else its index label (``df.index``), so the result joins back to ``df``.

        Every document is kept: one with no entity (a missing text, None or NaN, has none)
        gets one row whose ``start``, ``end``, ``label``, ``text`` and ``score`` are missing
        (``<NA>``); hence the nullable dtypes ``Int64`` (start, end), ``string`` (label,
        text) and ``Float64`` (score). ``empty="drop"`` leaves those rows out instead.
        """
        import pandas as pd

        if empty not in ("keep", "drop"):
            raise ValueError(f"empty must be 'keep' or 'drop', got {empty!r}")
        for name, option in ((text_column, "text_column"), (id_column, "id_column")):
            if name is not None and name not in df.columns:
                raise InputError(f"no column {name!r} ({option}); the columns are: "
                                 f"{', '.join(map(str, df.columns))}")
            if name is not None and list(df.columns).count(name) > 1:
                raise InputError(f"the DataFrame has {list(df.columns).count(name)} columns "
                                 f"named {name!r} ({option}); rename them apart")
        ids = df[id_column].tolist() if id_column is not None else list(df.index)
        texts = []
        for position, value in enumerate(df[text_column].tolist(), start=1):
            if not isinstance(value, str):
                if not (value is None or pd.api.types.is_scalar(value) and pd.isna(value)):
                    raise InputError(f"row {position}: column {text_column!r} holds "
                                     f"{type(value).__name__}, expected text")
                value = ""
            texts.append(value)
        rows = []
        for doc_id, entities in zip(ids, self.pipe(texts)):
            rows += [(doc_id, e.start, e.end, e.label, e.text, e.score) for e in entities]
            if not entities and empty == "keep":
                rows.append((doc_id, None, None, None, None, None))
        frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
        return frame.astype({"start": "Int64", "end": "Int64", "label": "string",
                             "text": "string", "score": "Float64"})
