"""Annotation on Ray Data: the same `Tagger`, many processes or machines, the same output.

`annotate_dataset` maps a model over any Ray Dataset with a text column: an actor pool of a
class UDF, so each actor loads the model once, with its CPU threads set explicitly; it adds an
``entities`` column (the JSON array `cner annotate` writes for the document). `annotate_files`
(``cner annotate ... --engine ray``) reads the inputs with cner's own readers, so document ids
are those of the single-process command (1-based line numbers, empty lines counted; Ray's
text reader would drop them), sends them in chunks of the single-process chunk size, and
writes the CSV/TSV/JSON/JSONL/Parquet file in document order, atomically: byte-identical to
``cner annotate`` with the same model and options.

Ray Data restarts an actor that died and retries its task (its actor pools default to
``max_restarts=-1``, ``max_task_retries=-1``), and the driver keeps each chunk's result once, by its position, so no document is lost or written
twice. Tested with Ray 2.60 (the actor pool is given as ``compute=ActorPoolStrategy(size=N)``,
which Ray has accepted since 2.9; ``concurrency=`` came and went in between).

Ray is an extra: ``pip install "cner[ray]"``.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from cner.errors import CnerError, ConfigError

INSTALL = 'pip install "cner[ray]"'
ENTITIES = "entities"
ORDER = "_cner_order"


class RayMissing(CnerError):
    pass


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissing(f"--engine ray needs Ray Data: {INSTALL}") from None
    return ray


def _entities_json(entities) -> str:
    from cner.inference.writers import entity_dict

    return json.dumps([entity_dict(e) for e in entities], ensure_ascii=False)


class TaggerActor:
    """The class UDF: loads the model once per actor; each call tags a batch (a pandas frame)
    with ``Tagger.pipe`` and adds the entities as JSON (see `annotate_dataset`)."""

    def __init__(self, model_dir: str, text_column: str, threads: int, batch_size: int,
                 min_score: float | None, raw: bool) -> None:
        import torch

        from cner.inference.tagger import Tagger

        torch.set_num_threads(threads)
        self.tagger = Tagger.load(model_dir, device="cpu", batch_size=batch_size)
        self.text_column, self.batch_size = text_column, batch_size
        self.min_score, self.raw = min_score, raw

    def __call__(self, frame):
        from cner.inference.writers import entity_dict, keep_scored

        texts = [str(t) for t in frame[self.text_column]]
        found = list(self.tagger.pipe(texts, chunk_size=max(1, len(texts)),
                                      batch_size=self.batch_size))
        if self.min_score is not None:
            found = [keep_scored(entities, self.min_score) for entities in found]
        frame = frame.copy()
        if self.raw:  # the exact values (scores unrounded), for the writers of annotate_files
            frame[ENTITIES] = [json.dumps([[e.start, e.end, e.label, e.text, float(e.score)]
                                           for e in ents], ensure_ascii=False) for ents in found]
        else:
            frame[ENTITIES] = [json.dumps([entity_dict(e) for e in ents], ensure_ascii=False)
                               for ents in found]
        return frame


def _map(dataset, model_dir, *, text_column: str, workers: int | None, threads: int | None,
         batch_size: int, chunk_size: int | None, min_score: float | None, raw: bool):
    ray = import_ray()
    model_dir = os.fspath(Path(model_dir).resolve())
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // (threads or 1))
    threads = threads or 1
    return dataset.map_batches(
        TaggerActor, batch_format="pandas", batch_size=chunk_size or batch_size * 8,
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads,
        fn_constructor_kwargs={"model_dir": model_dir, "text_column": text_column,
                               "threads": threads, "batch_size": batch_size,
                               "min_score": min_score, "raw": raw})


def annotate_dataset(dataset, model_dir: str | os.PathLike, text_column: str = "text", *,
                     workers: int | None = None, threads: int | None = None,
                     batch_size: int = 64, min_score: float | None = None):
    """``dataset`` (a Ray Dataset) with an ``entities`` column: each row's entities as the
    JSON array `cner annotate` writes (start, end, label, text, score).

    ``workers`` actors (default: the cluster's CPUs // ``threads``), each loading the model
    from ``model_dir`` once (a path every node can read) and running torch on ``threads``
    CPU threads (default 1); ``batch_size`` windows per model call, batches of
    ``8 * batch_size`` rows per UDF call (the single-process chunk)."""
    if text_column not in dataset.schema().names:
        raise ConfigError(f"the dataset has no column {text_column!r}; it has "
                          f"{', '.join(dataset.schema().names)}")
    return _map(dataset, model_dir, text_column=text_column, workers=workers, threads=threads,
                batch_size=batch_size, chunk_size=None, min_score=min_score, raw=False)


class _Entity:
    __slots__ = ("start", "end", "label", "text", "score")

    def __init__(self, start, end, label, text, score) -> None:
        self.start, self.end, self.label, self.text, self.score = start, end, label, text, score


def annotate_files(inputs: Sequence[str | os.PathLike], model_dir: str | os.PathLike, *,
                   output: str | os.PathLike, format: str | None = None,
                   batch_size: int = 64, text_column: str = "text",
                   id_column: str | None = None, errors: str = "strict",
                   min_score: float | None = None, workers: int | None = None,
                   threads: int | None = None, address: str | None = None) -> dict:
    """`cner annotate --engine ray`: annotate ``inputs`` on Ray and write ``output`` (see the
    module docstring); returns counts and seconds. ``address``: a running cluster
    (``ray start --head`` prints it; ``auto`` finds a local one); none: a local Ray."""
    ray = import_ray()
    import pandas as pd

    from cner.inference.documents import all_documents, check_input
    from cner.inference.writers import check_min_score, output_format, write_annotations

    inputs = [os.fspath(p) for p in inputs]
    if not inputs:
        raise ConfigError("no input file given")
    if output is None or os.fspath(output) == "-":
        raise ConfigError("--engine ray writes a file: give --output")
    fmt = output_format(output, format)
    if min_score is not None:
        min_score = check_min_score(min_score)
    for path in inputs:
        check_input(path)
    started = time.perf_counter()
    chunk = batch_size * 8
    documents = [doc for doc, _ in all_documents(inputs, text_column=text_column,
                                                 id_column=id_column, errors=errors)]
    frames = [pd.DataFrame({ORDER: range(first, min(first + chunk, len(documents))),
                            "text": [d.text for d in documents[first:first + chunk]]})
              for first in range(0, len(documents), chunk)]
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        texts = {}
        if frames:
            mapped = _map(ray.data.from_pandas(frames), model_dir, text_column="text",
                          workers=workers, threads=threads, batch_size=batch_size,
                          chunk_size=chunk, min_score=min_score, raw=True)
            for batch in mapped.iter_batches(batch_format="pandas", batch_size=None):
                for order, found in zip(batch[ORDER], batch[ENTITIES]):
                    texts[int(order)] = found  # a retried chunk replaces, never duplicates
    finally:
        if started_ray:
            ray.shutdown()
    missing = len(documents) - len(texts)
    if missing:
        raise CnerError(f"Ray returned {len(texts)} of {len(documents)} documents")

    def triples() -> Iterator[tuple]:
        for order, doc in enumerate(documents):
            yield doc.doc_id, doc.text, [_Entity(*e) for e in json.loads(texts[order])]

    written = write_annotations(output, triples(), format=fmt)
    entities = sum(len(json.loads(v)) for v in texts.values())
    return {"documents": written, "entities": entities,
            "chars": sum(len(d.text) for d in documents),
            "seconds": time.perf_counter() - started}
