"""Annotating files: chunked tagging of streamed documents, atomic and resumable output.

Inputs: see `cner.inference.documents` (``.txt``, ``.jsonl``, ``.csv``/``.tsv``, ``.parquet``,
any of the text ones ``.gz``/``.bz2``/``.xz``-compressed, ``-``). Outputs: see
`cner.inference.writers` (CSV, TSV, JSON, JSONL, Parquet; the format from ``--format`` or the
output's suffix, an unknown suffix being an error before anything is written).

A file output grows in ``OUT.partial`` (flushed per chunk) beside ``OUT.partial.json``, under
a lock; success renames it to ``OUT``. ``resume=True`` continues an interrupted job on the
same chunk grid, so with the same options the output is byte-identical to an uninterrupted
run. `cner.inference.jobs` owns that file's life: the job's identity, the lock, the state
file, resuming, publishing, and what a failed job leaves behind (its partial, only when it can
be resumed). An output that is a symlink is followed (the partial grows beside its target); a
device, FIFO or ``/dev/stdout`` is written as a stream (no partial, no resume), like ``-``.
Parquet cannot be appended to, so a Parquet output must be a regular file, never a stream.

This module owns the entry point (`annotate_files`, `AnnotateReport`), the checks made before
the model loads, loading the model (and compiling it when `worth_compiling`) and the chunk
loop. Inputs and options are checked first: an output naming one of the inputs is refused,
and the first document of every regular file is read, so that a missing column or key is
reported at once. An output that cannot be written (a folder that cannot be created or
written, a full device) is one `InputError` naming it.
"""
from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cner.errors import ConfigError, InputError, ModelError
from cner.fileio import check_not_input, files_in, output_target
from cner.inference.documents import (ERRORS, Document, all_documents, check_input, input_kind,
                                      input_size, is_stream, read_documents)
from cner.inference.jobs import (Sink, job_identity, new_progress, open_sink, partial_of,
                                 state_of)
from cner.inference.tagger import Tagger
from cner.inference.writers import (STREAMED, check_min_score, import_pyarrow, keep_scored,
                                    output_format)
from cner.runtime.engine import encoder_flops_per_position, is_transformer

# ``compile=None`` (auto) compiles a transformer encoder on CPU for inputs whose encoder work
# is at least this many FLOPs: ~20 minutes of uncompiled bf16 annotation on 2 cores. Compiling
# costs 15-60 s once and was measured 1.07x (bert-base) to 1.18x (small shape) faster than the
# uncompiled engine with packed weights (README), so it pays back about twice over there.
# Input characters are estimated as bytes / 3 (UTF-8 Chinese): bert-base compiles from ~5 MB
# of text on, the 256-wide small shape from ~140 MB. Decided from the input sizes alone, so
# that a resumed job runs the same engine as the one it continues.
AUTO_COMPILE_MIN_FLOPS = 300e12
# The largest batch_size (windows per model call): far beyond any memory, and small enough
# that a chunk (8 batches) stays an index. `cner.cli.options.MAX_BATCH_SIZE` is the same.
MAX_BATCH_SIZE = 1 << 20


@dataclass
class AnnotateReport:
    documents: int
    entities: int
    seconds: float
    chars: int
    resumed: int = 0  # documents that an earlier, interrupted run had already written
    resumed_chars: int = 0  # their characters: not part of this session's rate

    def summary(self) -> str:
        rate = (self.chars - self.resumed_chars) / max(self.seconds, 1e-9)
        return (f"annotated {self.documents:,} documents ({self.chars:,} characters), "
                f"{self.entities:,} entities in {self.seconds:.1f} s ({rate:,.0f} characters/s)"
                + (f"; {self.resumed:,} were done before resuming" if self.resumed else ""))


def worth_compiling(tagger: Tagger, input_bytes: int) -> bool:
    """Whether ``compile=None`` (auto) compiles ``tagger`` for ``input_bytes`` of input: a
    transformer encoder on CPU, and at least `AUTO_COMPILE_MIN_FLOPS` of work."""
    engine = tagger.engine
    if (engine.compiled or engine.device.type != "cpu"
            or getattr(engine, "backend", "torch") != "torch"
            or not is_transformer(getattr(engine.model, "encoder", None))):  # BiLSTM: not measured
        return False
    work = input_bytes / 3 * encoder_flops_per_position(engine.model)
    return work >= AUTO_COMPILE_MIN_FLOPS


def _load_tagger(tagger, inputs: Sequence[str], device: str, batch_size: int | None,
                 precision: str, compile: bool | None, backend: str = "torch"):
    """A `Tagger` given as such is used as it is; a model directory is loaded (on
    ``backend``) and, with ``compile=None``, compiled when `worth_compiling` (a failure then
    only warns)."""
    if not isinstance(tagger, (str, os.PathLike)):
        return tagger
    tagger = Tagger.load(tagger, device=device, batch_size=batch_size or 64, precision=precision,
                         compile=bool(compile), backend=backend)
    input_bytes = sum(input_size(p) or 0 for p in inputs)  # streams: unknown, counted as 0
    if compile is None and worth_compiling(tagger, input_bytes):
        print("note: compiling the model for this large input (TorchInductor, under a minute; "
              "--no-compile skips it)", file=sys.stderr)
        try:
            tagger.compile()
        except ModelError as exc:
            print(f"note: {exc}; annotating uncompiled", file=sys.stderr)
    return tagger


def annotate_files(inputs: Sequence[str | os.PathLike] | str | os.PathLike, tagger, *,
                   output: str | os.PathLike | None = None, format: str | None = None,
                   batch_size: int | None = None, text_column: str = "text",
                   id_column: str | None = None, errors: str = "strict", resume: bool = False,
                   progress: bool = True, device: str = "cpu", precision: str = "auto",
                   compile: bool | None = None, min_score: float | None = None,
                   backend: str = "torch") -> AnnotateReport:
    """Annotate ``inputs`` with ``tagger`` and write CSV/TSV/JSON/JSONL/Parquet to ``output``
    (standard output when ``None``).

    ``tagger``: a `Tagger`, used as it is, or a model directory, loaded on ``device`` at
    ``precision`` and compiled with TorchInductor if ``compile`` is true; ``None`` (auto)
    compiles for large inputs (see `AUTO_COMPILE_MIN_FLOPS`). ``backend``: ``torch``, or
    ``onnx`` for the model's ONNX export run by onnxruntime (`Tagger.load`).

    ``format`` defaults from the output suffix (one naming no format is an `InputError`),
    else CSV. ``batch_size`` (windows per model call, 1 to `MAX_BATCH_SIZE`) defaults to the
    tagger's. ``min_score`` drops the entities scored below it (as written: `keep_scored`);
    it is part of the job, so ``resume`` continues only with the same threshold. See the
    module docstring for inputs, ids, ``resume`` and what a failed job leaves behind.
    """
    inputs = [os.fspath(p) for p in
              ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    target, fmt = _check_job(inputs, tagger, output, format, errors, resume, batch_size)
    if min_score is not None:
        min_score = check_min_score(min_score)
    for path in inputs:
        check_input(path)
    _check_first_documents(inputs, text_column=text_column, id_column=id_column, errors=errors)
    tagger = _load_tagger(tagger, inputs, device, batch_size, precision, compile, backend)
    # The engine is part of the job: compiled (or onnx) scores may differ in the last digits.
    # The backend is named only when it is not torch, so older partial outputs still resume.
    engine, backend = tagger.engine, getattr(tagger.engine, "backend", "torch")
    return _run(inputs, tagger, target, fmt, resume, progress,
                {"format": fmt, "text_column": text_column, "id_column": id_column,
                 "errors": errors, "compiled": engine.compiled, "min_score": min_score,
                 **({} if backend == "torch" else {"backend": backend})},
                batch_size or tagger.predictor.batch_size,
                "<stdout>" if output is None else os.fspath(output))


def _check_job(inputs: list[str], tagger, output, format: str | None, errors: str,
               resume: bool, batch_size: int | None):
    """Everything about a job that can be refused before its inputs are read and its model
    loaded; returns the output's `OutputTarget` (``None``: standard output) and format."""
    if errors not in ERRORS:
        raise ConfigError(f"errors must be strict or replace, got {errors!r}")
    if batch_size is not None and (not isinstance(batch_size, int)
                                   or not 1 <= batch_size <= MAX_BATCH_SIZE):
        raise ConfigError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE:,}, "
                          f"got {batch_size!r}")
    if format is not None:
        output_format(output, format)  # an unknown format: before anything else
    for problem, bad in (("no input file given", not inputs),
                         ("standard input ('-') can be read only once", inputs.count("-") > 1),
                         ("--resume needs --output", resume and output is None),
                         ("--output is a directory", output and Path(output).is_dir()),
                         ("a job reading standard input cannot be resumed",
                          resume and "-" in inputs)):
        if bad:
            raise InputError(problem)
    target = None if output is None else output_target(output)
    if target is not None and target.kind == "file":
        model_dir = tagger if isinstance(tagger, (str, os.PathLike)) else None
        check_not_input(output, [*inputs, *files_in(model_dir)],
                        also=[partial_of(target.path), state_of(target.path)])
    elif target is not None and resume:
        raise InputError(f"--resume needs a regular file --output; {os.fspath(output)} is "
                         + ("standard output" if target.kind == "stdout" else "a stream"))
    fmt = output_format(output, format)  # after the output-is-an-input check: that one first
    if fmt not in STREAMED:
        if target is None or target.kind != "file":
            raise InputError(f"{fmt.capitalize()} output is written whole at the end, so it "
                             f"needs a file: -o NAME.{fmt}, not "
                             + ("standard output" if target is None or target.kind == "stdout"
                                else f"the stream {os.fspath(output)}"))
        import_pyarrow()
    return target, fmt


def _check_first_documents(inputs: Sequence[str], **options) -> None:
    """Read the first document of every regular-file input, so that a missing column or key,
    or a bad first line, is reported before the model loads (a stream is read once, later)."""
    for path in inputs:
        if is_stream(path):
            continue
        documents = read_documents(path, **options)
        try:
            next(documents, None)
        finally:
            documents.close()


def _progress_bar(inputs: list[str], progress: bool):
    from tqdm import tqdm

    sizes = [input_size(p) for p in inputs]  # None for a stream; a compressed file's own size
    return tqdm(total=None if None in sizes else sum(sizes), unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, desc="annotating",
                disable=not progress or not sys.stderr.isatty())


def _annotate(documents, tagger: Tagger, sink: Sink, stats: dict, batch_size: int, bar,
              rate, min_score: float | None) -> None:
    """Tag the documents not done yet, a chunk at a time, saving after each chunk."""
    remaining = itertools.islice(documents, stats["documents"], None)
    while chunk := list(itertools.islice(remaining, stats["chunk_size"])):
        found = list(tagger.pipe([doc.text for doc, _ in chunk], chunk_size=len(chunk),
                                 batch_size=batch_size))
        if min_score is not None:
            found = [keep_scored(entities, min_score) for entities in found]
        sink.write(chunk, found, stats)
        sink.save(stats)
        bar.update(chunk[-1][1] - bar.n)
        bar.set_postfix_str(f"{rate():,.0f} lines/s", refresh=False)


def _run(inputs: list[str], tagger: Tagger, target, fmt: str, resume: bool,
         progress: bool, options: dict, batch_size: int, name: str) -> AnnotateReport:
    """Annotate into ``target`` (an `OutputTarget`; ``None``: standard output), named
    ``name`` in messages."""
    started = time.perf_counter()
    stats = new_progress(chunk_size=batch_size * 8)
    bar = _progress_bar(inputs, progress)
    sink = open_sink(target, fmt, name, stats, resume,
                     lambda: job_identity(inputs, tagger, options))
    resumed, resumed_chars = stats["documents"], stats["chars"]
    documents = all_documents(inputs, text_column=options["text_column"],
                              id_column=options["id_column"], errors=options["errors"])
    try:
        sink.save(stats)
        _annotate(documents, tagger, sink, stats, batch_size, bar, lambda: (
            (stats["documents"] - resumed) / max(time.perf_counter() - started, 1e-9)),
            options["min_score"])
        sink.publish(fmt, stats)
    except BaseException as exc:
        sink.fail(exc, stats)
        raise
    finally:
        bar.close()
        sink.close()
    return AnnotateReport(stats["documents"], stats["entities"], time.perf_counter() - started,
                          stats["chars"], resumed, resumed_chars)


__all__ = ["AnnotateReport", "Document", "annotate_files", "input_kind", "read_documents"]
