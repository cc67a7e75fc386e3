"""Annotating files: chunked tagging of streamed documents, atomic and resumable output.

Inputs: see `cner.inference.documents` (``.txt``, ``.jsonl``, ``.csv``/``.tsv``, ``.parquet``,
any of the text ones ``.gz``/``.bz2``/``.xz``-compressed, ``-``). Outputs: see
`cner.inference.writers` (CSV, TSV, JSON, JSONL, Parquet; the format from ``--format`` or the
output's suffix, an unknown suffix being an error before anything is written).

A file output grows in ``OUT.partial`` (flushed per chunk) beside ``OUT.partial.json`` (documents
done; inputs with sizes and mtimes, options, model fingerprint); success renames it to ``OUT``
and removes the state. ``resume=True`` continues an interrupted job on the same chunk grid, so
with the same options the output is byte-identical to an uninterrupted run.

A job holds an exclusive lock (``flock``) on ``OUT.partial`` from before it touches it until it
ends, so a second job writing the same output fails at once and leaves the first one's files
alone. An output that is a symlink is followed (the partial grows beside its target); a
device, FIFO or ``/dev/stdout`` is written as a stream (no partial, no resume), like ``-``.
An output naming one of the inputs is refused.

Inputs and options are checked before the model loads: the first document of every regular
file is read then, so that a missing column or key is reported at once. A job that fails
removes its ``OUT.partial`` and state file, except when it can be resumed: documents were
saved and the failure was an interruption or a crash, not an error in its inputs or output.
An output that cannot be written (a folder that cannot be created or written, a full device)
is one `InputError` naming it.

Parquet cannot be appended to: its rows grow in ``OUT.partial`` as JSON lines (so ``--resume``
works for it as for the other formats) and the Parquet file is written from them at the end,
atomically; a Parquet output must therefore be a regular file, never a stream.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cner.errors import CnerError, ConfigError, InputError, ModelError
from cner.fileio import (atomic_write, check_not_input, output_target, target_mode, utf8_stdout,
                         writing)
from cner.inference.documents import (ERRORS, Document, all_documents, check_input, input_kind,
                                      input_size, is_stream, read_documents)
from cner.inference.tagger import Tagger
from cner.inference.writers import (STREAMED, ParquetWriter, Writer, import_pyarrow, make_writer,
                                    output_format)
from cner.runtime.engine import encoder_flops_per_position, is_transformer

STATE_VERSION = 1
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
            or not is_transformer(getattr(engine.model, "encoder", None))):  # BiLSTM: not measured
        return False
    work = input_bytes / 3 * encoder_flops_per_position(engine.model)
    return work >= AUTO_COMPILE_MIN_FLOPS


def _load_tagger(tagger, inputs: Sequence[str], device: str, batch_size: int | None,
                 precision: str, compile: bool | None):
    """A `Tagger` given as such is used as it is; a model directory is loaded and, with
    ``compile=None``, compiled when `worth_compiling` (a failure then only warns)."""
    if not isinstance(tagger, (str, os.PathLike)):
        return tagger
    tagger = Tagger.load(tagger, device=device, batch_size=batch_size or 64, precision=precision,
                         compile=bool(compile))
    input_bytes = sum(os.path.getsize(p) for p in inputs if p != "-")
    if compile is None and worth_compiling(tagger, input_bytes):
        print("note: compiling the model for this large input (TorchInductor, under a minute; "
              "--no-compile skips it)", file=sys.stderr)
        try:
            tagger.compile()
        except ModelError as exc:
            print(f"note: {exc}; annotating uncompiled", file=sys.stderr)
    return tagger


def _job(inputs: Sequence[str], tagger, options: dict) -> dict:
    """What identifies a job: inputs (path, size, mtime), options, and a model fingerprint
    (tags, window sizes and a sample of every weight tensor)."""
    files = []
    for path in inputs:
        stat = None if path == "-" else os.stat(path)
        files.append({"path": "-"} if stat is None else {
            "path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    predictor, model = tagger.predictor, tagger.predictor.model
    digest = hashlib.sha256(repr((list(model.tags), model.scheme, predictor.max_chars,
                                  predictor.overlap)).encode())
    state_dict = getattr(model, "state_dict", None)
    for name, tensor in (state_dict() if callable(state_dict) else {}).items():
        sample = tensor.detach().flatten()[:256].float().cpu().numpy().tobytes()
        digest.update(f"{name}{tuple(tensor.shape)}".encode() + sample)
    return {"version": STATE_VERSION, "inputs": files, "options": options,
            "model": digest.hexdigest()[:20]}


_PROGRESS = ("documents", "entities", "chars", "written", "bytes", "chunk_size")


def _resume_state(state_path: Path, partial: Path, job: dict) -> dict | None:
    """The saved progress of the same job, ``None`` when there is none to continue."""
    if not state_path.is_file() or not partial.is_file():
        return None
    try:
        state = json.loads(state_path.read_text("utf-8"))
        saved, progress = {k: state[k] for k in job}, {k: int(state[k]) for k in _PROGRESS}
    except (ValueError, KeyError, TypeError):
        raise InputError("is not a cner annotation state file", path=state_path,
                         hint="delete it, or rerun without --resume") from None
    for key, label in (("version", "format version"), ("inputs", "input files"),
                       ("options", "options"), ("model", "model")):
        if saved[key] != job[key]:
            raise InputError(f"records a different job (the {label} differ), so it cannot be "
                             "resumed", path=state_path, hint="rerun with the same inputs, "
                             "model and options, or without --resume to start over")
    if partial.stat().st_size < progress["bytes"]:
        raise InputError("is shorter than its state file records", path=partial,
                         hint="rerun without --resume to start over")
    return progress


def _lock_holder(fd: int) -> str:
    """`` (pid N)`` for the process holding the lock on ``fd``'s file, from /proc/locks
    (Linux), else an empty string."""
    info = os.fstat(fd)
    exact = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii") as locks:
            held = [(f[5], f[4]) for f in map(str.split, locks)
                    if len(f) > 5 and f[1] == "FLOCK" and f[3] == "WRITE"]
    except (OSError, ValueError):
        return ""
    # the device can read differently on overlay filesystems: fall back to the inode alone
    for same in (lambda where: where == exact,
                 lambda where: where.rsplit(":", 1)[-1] == str(info.st_ino)):
        pids = {pid for where, pid in held if same(where)}
        if len(pids) == 1:
            return f" (pid {pids.pop()})"
    return ""


def _lock_partial(partial: Path, output: Path) -> tuple[int, bool]:
    """Open ``partial`` (created empty if absent, never truncated here) and take an exclusive,
    non-blocking lock on it; returns the descriptor and whether this call created the file.
    Another job holding the lock is an error."""
    while True:
        try:
            fd, created = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), True
        except FileExistsError:
            try:
                fd, created = os.open(partial, os.O_RDWR), False
            except FileNotFoundError:  # renamed away meanwhile: try again
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _lock_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise InputError(f"{output} is being written by another cner job{holder}") from None
        try:  # the job that held it may have renamed it to OUT meanwhile: lock the new one
            if os.path.samestat(os.fstat(fd), os.stat(partial)):
                return fd, created
        except FileNotFoundError:
            pass
        os.close(fd)


def annotate_files(inputs: Sequence[str | os.PathLike] | str | os.PathLike, tagger, *,
                   output: str | os.PathLike | None = None, format: str | None = None,
                   batch_size: int | None = None, text_column: str = "text",
                   id_column: str | None = None, errors: str = "strict", resume: bool = False,
                   progress: bool = True, device: str = "cpu", precision: str = "auto",
                   compile: bool | None = None) -> AnnotateReport:
    """Annotate ``inputs`` with ``tagger`` and write CSV/TSV/JSON/JSONL/Parquet to ``output``
    (standard output when ``None``).

    ``tagger``: a `Tagger`, used as it is, or a model directory, loaded on ``device`` at
    ``precision`` and compiled with TorchInductor if ``compile`` is true; ``None`` (auto)
    compiles for large inputs (see `AUTO_COMPILE_MIN_FLOPS`).

    ``format`` defaults from the output suffix (one naming no format is an `InputError`),
    else CSV. ``batch_size`` (windows per model call, 1 to `MAX_BATCH_SIZE`) defaults to the
    tagger's. See the module docstring for inputs, ids, ``resume`` and what a failed job
    leaves behind.
    """
    inputs = [os.fspath(p) for p in
              ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    target, fmt = _check_job(inputs, tagger, output, format, errors, resume, batch_size)
    for path in inputs:
        check_input(path)
    _check_first_documents(inputs, text_column=text_column, id_column=id_column, errors=errors)
    tagger = _load_tagger(tagger, inputs, device, batch_size, precision, compile)
    # The engine is part of the job: compiled scores may differ in the last digits.
    return _run(inputs, tagger, target, fmt, resume, progress,
                {"format": fmt, "text_column": text_column, "id_column": id_column,
                 "errors": errors, "compiled": tagger.engine.compiled},
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
        model_dir = Path(tagger) if isinstance(tagger, (str, os.PathLike)) else None
        model_files = ([p for p in model_dir.iterdir() if p.is_file()]
                       if model_dir is not None and model_dir.is_dir() else [])
        check_not_input(output, [*inputs, *model_files],
                        also=[_beside(target.path, ".partial"),
                              _beside(target.path, ".partial.json")])
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


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


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


@dataclass
class _Sink:
    """Where the annotations go: standard output or a stream, written in place, or a regular
    file ``output`` written through ``OUT.partial`` (locked) beside ``OUT.partial.json``.
    Every I/O failure on it is one `InputError` naming ``name``, the output as given."""

    handle: IO[str]
    writer: Writer
    name: str
    output: Path | None = None
    job: dict | None = None
    wrapped: bool = False  # standard output re-wrapped as UTF-8: detached, never closed
    owned: bool = True  # closed at the end (not standard output)

    @property
    def partial(self) -> Path:
        return _beside(self.output, ".partial")

    @property
    def state_path(self) -> Path:
        return _beside(self.output, ".partial.json")

    def begin_lazily(self, stats: dict) -> None:
        """Standard output and streams begin at the first chunk: an early input error then
        prints nothing."""
        if self.output is None and stats["documents"] == 0:
            self.writer.begin()

    def write(self, chunk: list, found: list, stats: dict) -> None:
        with writing(self.name):
            self.begin_lazily(stats)
            for (doc, _), entities in zip(chunk, found):
                self.writer.write(doc.doc_id, doc.text, entities)
                stats["entities"] += len(entities)
                stats["chars"] += len(doc.text)
        stats["documents"] += len(chunk)

    def save(self, stats: dict) -> None:
        """Flush; a file also records its progress in the state file."""
        with writing(self.name):
            self.handle.flush()
            if self.output is not None:
                os.fsync(self.handle.fileno())
                stats["bytes"] = os.fstat(self.handle.fileno()).st_size
                stats["written"] = self.writer.written
                with atomic_write(self.state_path) as state_file:
                    json.dump({**self.job, **stats}, state_file, ensure_ascii=False)

    def publish(self, fmt: str, stats: dict) -> None:
        """End the output; a file is renamed (Parquet: written whole) into place."""
        with writing(self.name):
            self.begin_lazily(stats)
            self.writer.end()  # not saved: a resume after a crash here redoes the end
            self.handle.flush()
            if self.output is None:
                return
            os.fchmod(self.handle.fileno(), target_mode(self.output))  # of a file it replaces
            os.fsync(self.handle.fileno())
            if fmt in STREAMED:
                os.replace(self.partial, self.output)  # still under the lock
            else:  # Parquet, written whole from the rows in the partial; then the partial goes
                ParquetWriter.publish(self.partial, self.output)
                self.partial.unlink()
            self.state_path.unlink(missing_ok=True)

    def fail(self, exc: BaseException, stats: dict) -> None:
        """After a failure a file's partial stays only when it can be resumed: documents were
        saved and the failure was an interruption or crash, not an error in the inputs or
        the output (`CnerError`); otherwise it goes, with its state file."""
        if self.output is None:
            return
        if stats["documents"] and not isinstance(exc, CnerError):
            print(f"note: {stats['documents']:,} documents are saved in {self.partial}; rerun "
                  "with --resume to continue", file=sys.stderr)
            return
        for path in (self.partial, self.state_path):  # still under the lock
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a stream's last flush failed already
            if self.wrapped:
                self.handle.detach()
            elif self.owned:
                self.handle.close()  # releases the lock on OUT.partial


def _open_sink(target, fmt: str, name: str, stats: dict, resume: bool, job) -> _Sink:
    """The `_Sink` for ``target`` (an `OutputTarget`; ``None``: standard output); a file
    resumes from its saved state into ``stats`` when ``resume``. ``job()``: the job's
    identity (`_job`), computed for a file only."""
    if target is None or target.kind == "stdout":
        handle, wrapped = utf8_stdout()
        return _Sink(handle, make_writer(fmt, handle), "<stdout>", wrapped=wrapped, owned=False)
    if target.kind == "stream":  # a device or FIFO: written in place, like standard output
        with writing(name):
            handle = open(target.path, "a", encoding="utf-8", newline="")
        return _Sink(handle, make_writer(fmt, handle), name)
    output, job = target.path, job()
    with writing(name):
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, created = _lock_partial(_beside(output, ".partial"), output)  # held to the end
    try:
        state_path = _beside(output, ".partial.json")
        saved = _resume_state(state_path, _beside(output, ".partial"), job) \
            if resume and not created else None
        stats.update(saved or {})
        # a resumed job drops rows written after the last save; a new one starts empty
        os.ftruncate(fd, stats["bytes"])
        os.lseek(fd, 0, os.SEEK_END)
        handle = open(fd, "a", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise
    sink = _Sink(handle, make_writer(fmt, handle, written=stats["written"]), name,
                 output=output, job=job)
    if saved is None:
        with writing(name):
            sink.writer.begin()
    return sink


def _progress_bar(inputs: list[str], progress: bool):
    from tqdm import tqdm

    sizes = [input_size(p) for p in inputs]  # None for a stream; a compressed file's own size
    return tqdm(total=None if None in sizes else sum(sizes), unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, desc="annotating",
                disable=not progress or not sys.stderr.isatty())


def _annotate(documents, tagger: Tagger, sink: _Sink, stats: dict, batch_size: int, bar,
              rate) -> None:
    """Tag the documents not done yet, a chunk at a time, saving after each chunk."""
    remaining = itertools.islice(documents, stats["documents"], None)
    while chunk := list(itertools.islice(remaining, stats["chunk_size"])):
        found = list(tagger.pipe([doc.text for doc, _ in chunk], chunk_size=len(chunk),
                                 batch_size=batch_size))
        sink.write(chunk, found, stats)
        sink.save(stats)
        bar.update(chunk[-1][1] - bar.n)
        bar.set_postfix_str(f"{rate():,.0f} lines/s", refresh=False)


def _run(inputs: list[str], tagger: Tagger, target, fmt: str, resume: bool,
         progress: bool, options: dict, batch_size: int, name: str) -> AnnotateReport:
    """Annotate into ``target`` (an `OutputTarget`; ``None``: standard output), named
    ``name`` in messages."""
    started = time.perf_counter()
    stats = dict.fromkeys(_PROGRESS, 0)
    stats["chunk_size"] = batch_size * 8
    bar = _progress_bar(inputs, progress)
    sink = _open_sink(target, fmt, name, stats, resume, lambda: _job(inputs, tagger, options))
    resumed, resumed_chars = stats["documents"], stats["chars"]
    documents = all_documents(inputs, text_column=options["text_column"],
                              id_column=options["id_column"], errors=options["errors"])
    try:
        sink.save(stats)
        _annotate(documents, tagger, sink, stats, batch_size, bar, lambda: (
            (stats["documents"] - resumed) / max(time.perf_counter() - started, 1e-9)))
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
