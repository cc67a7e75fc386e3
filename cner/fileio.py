"""Reading text files line by line with exact error locations, and atomic writes."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cner.errors import InputError

BOM = "\ufeff"


def iter_lines(path: str | Path, *, errors: str = "strict", binary_check: bool = True
               ) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a UTF-8 file, 1-based.

    The line terminator (LF or CRLF) is removed and a leading BOM is dropped. With
    ``errors="strict"`` an undecodable line raises `InputError` naming the line and the
    byte offset in the file; ``errors="replace"`` substitutes U+FFFD instead.
    ``binary_check`` rejects files whose first 8 KiB contain a NUL byte.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path=path)
    with open(path, "rb") as handle:
        if binary_check and b"\x00" in handle.read(8192):
            raise InputError("looks like a binary file (contains NUL bytes), expected UTF-8 text",
                             path=path, line=1)
        handle.seek(0)
        for number, text, _ in decode_lines(handle, name=str(path), errors=errors,
                                            hint="re-encode the file as UTF-8"):
            yield number, text


def decode_lines(handle: IO[bytes], *, name: str, errors: str = "strict",
                 where: str = "of the file", hint: str | None = None,
                 keep_ends: bool = False) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, byte offset after the line)`` for each line of a binary stream.

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


def _target_mode(path: Path) -> int:
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


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                 newline: str | None = "") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched, so a
    reader never sees a half-written output.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
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
            os.chmod(tmp, _target_mode(path))
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
