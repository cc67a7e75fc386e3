"""Reading text files line by line with exact error locations, and writing outputs safely.

The line readers (`iter_lines`, and `decode_lines` under `checked_lines`) read ``*.gz``,
``*.bz2`` and ``*.xz`` files decompressed, chosen by the name's last suffix (`compression`).

Every command that writes a user's output goes through `open_output`: a regular file (or a
new one) is written atomically (`atomic_write`), a symlink is followed and its target replaced
the same way, and a device, FIFO, ``/dev/stdout``-like path or ``-`` is written as a stream,
never replaced. `check_not_input` refuses an output that is one of the command's inputs. An
output that cannot be written (a folder that cannot be created or written, a full or read-only
device) is one `InputError` naming it (`writing`), never a traceback.
"""
from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import json
import lzma
import os
import re
import stat
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cner.errors import InputError

BOM = "\ufeff"


# Compressed inputs, recognised by the last suffix of their name (``train.conll.gz``).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}


def compression(path: str | os.PathLike) -> str | None:
    """``gzip``, ``bzip2`` or ``xz`` when the name of ``path`` ends in ``.gz``, ``.bz2`` or
    ``.xz``; else ``None``."""
    return COMPRESSIONS.get(Path(os.fspath(path)).suffix.lower())


def uncompressed_name(path: str | os.PathLike) -> str:
    """The name without its compression suffix: ``docs.jsonl.gz`` -> ``docs.jsonl``."""
    name = os.fspath(path)
    return name[:-len(Path(name).suffix)] if compression(name) else name


def decompressing(handle: IO[bytes], kind: str | None) -> IO[bytes]:
    """``handle`` read through the decompressor ``kind`` (see `compression`), or as it is."""
    if kind is None:
        return handle
    if kind == "gzip":
        return gzip.GzipFile(fileobj=handle, mode="rb")
    return bz2.BZ2File(handle, "rb") if kind == "bzip2" else lzma.LZMAFile(handle, "rb")


@contextlib.contextmanager
def decompression_errors(name: str, kind: str | None) -> Iterator[None]:
    """With ``kind`` set, a file that is not ``kind`` data, or that ends before its compressed
    data does, is an `InputError` naming it rather than a traceback."""
    try:
        yield
    except EOFError:
        if kind is None:
            raise
        raise InputError(f"ends before its {kind} data does: the file is truncated",
                         path=name) from None
    except (OSError, lzma.LZMAError, zlib.error) as exc:
        if kind is None:
            raise
        raise InputError(f"is not valid {kind} data ({exc})", path=name,
                         hint=f"decompress it first, or rename it if it is not {kind}") from None


def checked_lines(handle: IO[bytes], *, name: str, kind: str | None) -> Iterator[bytes]:
    """The raw lines of ``handle``, read under `decompression_errors`."""
    lines = iter(handle)
    while True:
        with decompression_errors(name, kind):
            raw = next(lines, None)
        if raw is None:
            return
        yield raw


def iter_lines(path: str | Path, *, errors: str = "strict", binary_check: bool = True
               ) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a UTF-8 file, 1-based.

    The line terminator (LF or CRLF) is removed and a leading BOM is dropped. With
    ``errors="strict"`` an undecodable line raises `InputError` naming the line and the
    byte offset in the file; ``errors="replace"`` substitutes U+FFFD instead.
    ``binary_check`` rejects files whose first 8 KiB contain a NUL byte. A file named
    ``*.gz``, ``*.bz2`` or ``*.xz`` is decompressed as it is read (the byte offsets and the
    binary check then apply to the decompressed text).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path=path)
    kind = compression(path)
    where = "of the file" if kind is None else f"of the decompressed ({kind}) file"
    with open(path, "rb") as raw, decompressing(raw, kind) as handle:
        if binary_check:
            with decompression_errors(str(path), kind):
                head = handle.read(8192)
                handle.seek(0)
            if b"\x00" in head:
                raise InputError("looks like a binary file (contains NUL bytes), expected UTF-8 "
                                 "text", path=path, line=1)
        for number, text, _ in decode_lines(checked_lines(handle, name=str(path), kind=kind),
                                            name=str(path), errors=errors, where=where,
                                            hint="re-encode the file as UTF-8"):
            yield number, text


def decode_lines(handle: Iterable[bytes], *, name: str, errors: str = "strict",
                 where: str = "of the file", hint: str | None = None,
                 keep_ends: bool = False) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, byte offset after the line)`` for each line of a binary stream
    (or any iterable of raw lines).

    Decodes UTF-8 (an undecodable line raises `InputError` with its line and byte offset
    ``where``, e.g. "of the file", unless ``errors="replace"``), drops a leading BOM and,
    unless ``keep_ends``, the LF or CRLF line end.
    """
    offset = 0
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8", errors=errors)
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {offset + exc.start} {where}",
                             path=name, line=number, hint=hint) from None
        offset += len(raw)
        if number == 1 and text.startswith(BOM):
            text = text[1:]
        if not keep_ends and text.endswith("\n"):
            text = text[:-2] if text.endswith("\r\n") else text[:-1]
        yield number, text, offset


def target_mode(path: Path) -> int:
    """The mode for a new ``path``: that of the file it replaces, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    try:  # Linux: read the umask without changing it (os.umask is process-wide)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def parse_json_line(line: str, *, path: str | Path, number: int) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at column {exc.colno}: {exc.msg}", path=path,
                         line=number) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, found {type(obj).__name__}", path=path,
                         line=number)
    return obj


# What a write itself fails with when the device or file system holding the output is full or
# read-only (the OSError then names no file): turned into one line naming the output.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Creating, writing or renaming the output ``path``: an `OSError` in the block becomes
    one `InputError` naming ``path`` (``out.csv: cannot write there: No space left on
    device``). A closed pipe (`BrokenPipeError`) is left to the caller."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write there: {exc.strerror or exc}", path=path) from None


@contextlib.contextmanager
def _caller_writes(path: str | os.PathLike) -> Iterator[None]:
    """Around the caller's block that writes ``path``'s handle: a full or read-only device
    (`WRITE_ERRNOS`, an error naming no file) is `writing`'s error; any other `OSError` in
    the block, such as one reading an input, is left as it is."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno not in WRITE_ERRNOS:
            raise
        raise InputError(f"cannot write there: {exc.strerror}", path=path) from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                 newline: str | None = "") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched, so a
    reader never sees a half-written output. A folder that cannot be created or written,
    or a full device, is an `InputError` naming ``path`` (`writing`).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    with writing(path):
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if "b" in mode:
            handle = os.fdopen(fd, mode)
        else:
            handle = os.fdopen(fd, mode, encoding=encoding, newline=newline)
        with handle:
            # mkstemp creates the file 0600; give the output the mode a plain open() would
            # (or keep the mode of the file being replaced).
            os.chmod(tmp, target_mode(path))
            with _caller_writes(path):
                yield handle
            with writing(path):
                handle.flush()
                os.fsync(handle.fileno())
        with writing(path):
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# /dev/stdout, /dev/fd/N, /proc/self/fd/N...: an open descriptor, not a file to replace.
_FD_LINK = re.compile(r"/dev/(stdin|stdout|stderr|fd/\d+)|/proc/(self|thread-self|\d+)/fd/\d+")


@dataclass(frozen=True)
class OutputTarget:
    """What an output path names. ``kind``: ``stdout`` (``-``), ``stream`` (a device, FIFO,
    socket or open descriptor: written in place, never renamed over) or ``file`` (a regular
    file or a new one; ``path`` is the file itself, symlinks followed)."""

    kind: str
    path: Path | None


def _names_a_descriptor(path: str) -> bool:
    """Whether ``path`` or a symlink it leads through is a ``/proc/*/fd`` entry."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own symlink limit
        if _FD_LINK.fullmatch(current):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current),
                                                os.readlink(current)))
    return False


def output_target(path: str | os.PathLike) -> OutputTarget:
    """Classify an output path (see `OutputTarget`); a directory is an `InputError`."""
    raw = os.fspath(path)
    if raw == "-":
        return OutputTarget("stdout", None)
    if _names_a_descriptor(raw):
        return OutputTarget("stream", Path(raw))
    try:
        mode = os.stat(raw).st_mode  # follows symlinks
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write there: {exc.strerror}", path=raw) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError("is a directory, expected a file", path=raw)
    if mode is not None and not stat.S_ISREG(mode):
        return OutputTarget("stream", Path(raw))
    # A symlink (dangling or not) is followed: its target is what gets replaced.
    return OutputTarget("file", Path(os.path.realpath(raw)) if os.path.islink(raw)
                        else Path(raw))


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def files_in(directory: str | os.PathLike | None) -> list[Path]:
    """The regular files directly inside ``directory`` (none when it is not a directory): a
    model directory's files are inputs that no output may replace."""
    path = None if directory is None else Path(directory)
    return [p for p in path.iterdir() if p.is_file()] if path is not None and path.is_dir() else []


def check_not_input(output: str | os.PathLike | None, inputs: Iterable[str | os.PathLike],
                    *, also: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse (`InputError`) to replace an input: ``output`` (or any path in ``also``, such as
    the output's ``.partial``) names one of ``inputs``, directly, through a symlink or as a
    hard link. Streams and standard output replace nothing and pass."""
    if output is None or output_target(output).kind != "file":
        return
    for candidate in (output, *also):
        for source in inputs:
            if os.fspath(source) != "-" and _same_file(candidate, source):
                raise InputError(f"the output {os.fspath(output)} is the input file "
                                 f"{os.fspath(source)}; cner never writes over an input, "
                                 "so choose another output path")


def utf8_stdout() -> tuple[IO[str], bool]:
    """Standard output, re-wrapped as UTF-8 when the locale gave it another encoding;
    ``(stream, wrapped)`` (a wrapped stream is to be ``detach()``ed, not closed)."""
    out = sys.stdout
    if (out.encoding or "utf-8").lower().replace("-", "") == "utf8" or not hasattr(out, "buffer"):
        return out, False
    out.flush()
    return io.TextIOWrapper(out.buffer, encoding="utf-8", newline="", write_through=True), True


@contextlib.contextmanager
def open_output(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = "") -> Iterator[IO]:
    """Open a user's output for writing, the same way for every command (see `OutputTarget`):
    a file atomically (`atomic_write` on the symlink's target when ``path`` is a symlink),
    a stream in place (appending: no truncation, no rename), ``-`` as standard output."""
    binary = "b" in mode
    target = output_target(path)
    if target.kind == "stdout":
        with _caller_writes("<stdout>"):
            yield from _stdout_output(binary)
    elif target.kind == "stream":
        with writing(path):
            handle = (open(target.path, "ab") if binary else
                      open(target.path, "a", encoding=encoding, newline=newline))
        try:
            with _caller_writes(path):
                yield handle
            with writing(path):
                handle.flush()
        finally:
            with contextlib.suppress(OSError):  # its last flush failed already
                handle.close()
    else:
        with atomic_write(target.path, mode, encoding=encoding, newline=newline) as handle:
            yield handle


def _stdout_output(binary: bool) -> Iterator[IO]:
    if binary:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    handle, wrapped = utf8_stdout()
    try:
        yield handle
        handle.flush()
    finally:
        if wrapped:
            handle.detach()
