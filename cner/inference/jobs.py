"""The output file of an annotation job: its identity, lock, saved progress and resumption.

A file output ``OUT`` grows in ``OUT.partial`` (flushed per chunk) beside ``OUT.partial.json``,
the state file: the documents done and where the output ended then, and what identifies the
job (inputs with sizes and mtimes, options, a model fingerprint: `job_identity`). Success
renames the partial to ``OUT`` and removes the state; resuming (`open_sink` with ``resume``)
continues the same job from its last save, refusing a state file of another job.

A job holds an exclusive lock (``flock``) on ``OUT.partial`` from before it touches it until it
ends (`lock_partial`), so a second job writing the same output fails at once, naming the pid
that holds it where ``/proc/locks`` tells, and leaves the first one's files alone. Standard
output, a device or a FIFO is written in place as a stream (no partial, no resume).

After a failure the partial stays only when it can be resumed: documents were saved and the
failure was an interruption or a crash, not an error in the inputs or the output. Parquet
cannot be appended to: its rows grow in the partial as JSON lines and the Parquet file is
written from them at the end. Every I/O failure on the output is one `InputError` naming it.

`cner.inference.annotate` runs the job; this module owns everything about its output file.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cner.errors import CnerError, InputError
from cner.fileio import atomic_write, target_mode, utf8_stdout, writing
from cner.inference.writers import STREAMED, ParquetWriter, Writer, make_writer

STATE_VERSION = 1
# what the state file records of a job's progress (with the job's identity)
PROGRESS = ("documents", "entities", "chars", "written", "bytes", "chunk_size")


def partial_of(output: Path) -> Path:
    """``OUT.partial``: where the output ``OUT`` grows."""
    return output.with_name(output.name + ".partial")


def state_of(output: Path) -> Path:
    """``OUT.partial.json``: the state file of the output ``OUT``."""
    return output.with_name(output.name + ".partial.json")


def new_progress(chunk_size: int) -> dict:
    """The progress of a job that has done nothing yet, in chunks of ``chunk_size``."""
    return {**dict.fromkeys(PROGRESS, 0), "chunk_size": chunk_size}


def job_identity(inputs: Sequence[str], tagger, options: dict) -> dict:
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


def resume_state(state_path: Path, partial: Path, job: dict) -> dict | None:
    """The saved progress of the same job, ``None`` when there is none to continue."""
    if not state_path.is_file() or not partial.is_file():
        return None
    try:
        state = json.loads(state_path.read_text("utf-8"))
        saved, progress = {k: state[k] for k in job}, {k: int(state[k]) for k in PROGRESS}
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


def lock_partial(partial: Path, output: Path) -> tuple[int, bool]:
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


@dataclass
class Sink:
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
        return partial_of(self.output)

    @property
    def state_path(self) -> Path:
        return state_of(self.output)

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


def open_sink(target, fmt: str, name: str, stats: dict, resume: bool, job) -> Sink:
    """The `Sink` for ``target`` (an `OutputTarget`; ``None``: standard output); a file
    resumes from its saved state into ``stats`` when ``resume``. ``job()``: the job's
    identity (`job_identity`), computed for a file only."""
    if target is None or target.kind == "stdout":
        handle, wrapped = utf8_stdout()
        return Sink(handle, make_writer(fmt, handle), "<stdout>", wrapped=wrapped, owned=False)
    if target.kind == "stream":  # a device or FIFO: written in place, like standard output
        with writing(name):
            handle = open(target.path, "a", encoding="utf-8", newline="")
        return Sink(handle, make_writer(fmt, handle), name)
    output, job = target.path, job()
    with writing(name):
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, created = lock_partial(partial_of(output), output)  # held to the end
    try:
        saved = resume_state(state_of(output), partial_of(output), job) \
            if resume and not created else None
        stats.update(saved or {})
        # a resumed job drops rows written after the last save; a new one starts empty
        os.ftruncate(fd, stats["bytes"])
        os.lseek(fd, 0, os.SEEK_END)
        handle = open(fd, "a", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise
    sink = Sink(handle, make_writer(fmt, handle, written=stats["written"]), name,
                output=output, job=job)
    if saved is None:
        with writing(name):
            sink.writer.begin()
    return sink

