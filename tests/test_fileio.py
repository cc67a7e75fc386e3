"""Line reading with exact error locations, and atomic writes."""
from __future__ import annotations

import os
import stat

import pytest

from cner.errors import InputError
from cner.fileio import atomic_write, iter_lines


class Boom(RuntimeError):
    pass


def leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")
    with atomic_write(target) as handle:
        handle.write("new 文本\n")
        assert target.read_text(encoding="utf-8") == "old\n"  # not visible before the end
    assert target.read_text(encoding="utf-8") == "new 文本\n"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_atomic_write_leaves_no_partial_new_file_on_exception(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(Boom):
        with atomic_write(target) as handle:
            handle.write("partial" * 1000)
            raise Boom()
    assert not target.exists()
    assert leftovers(tmp_path, set()) == []


def test_atomic_write_keeps_the_old_file_on_exception(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"old contents\n")
    with pytest.raises(Boom):
        with atomic_write(target) as handle:
            handle.write("half written")
            handle.flush()
            raise Boom()
    assert target.read_bytes() == b"old contents\n"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_atomic_write_keeps_the_old_file_on_keyboard_interrupt(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"old\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as handle:
            handle.write("x")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old\n"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_atomic_write_binary_and_newlines_untranslated(tmp_path):
    with atomic_write(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"\x00\x01\r\n")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01\r\n"
    with atomic_write(tmp_path / "t.txt") as handle:
        handle.write("a\nb\n")
    assert (tmp_path / "t.txt").read_bytes() == b"a\nb\n"


def test_atomic_write_creates_missing_directories(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_write(target) as handle:
        handle.write("x")
    assert target.read_text() == "x"


def test_atomic_write_gives_new_files_the_usual_mode(tmp_path):
    # A plain open() creates 0666 less the umask; the temporary file must not stay 0600.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "atomic.txt"
    with atomic_write(target) as handle:
        handle.write("x")
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_atomic_write_keeps_the_mode_of_a_replaced_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_write(target) as handle:
        handle.write("new")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


# --------------------------------------------------------------------------------------
# iter_lines
# --------------------------------------------------------------------------------------

def test_iter_lines_numbers_lines_and_strips_terminators(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\n\nc\r\nlast")
    assert list(iter_lines(path)) == [(1, "a"), (2, "b"), (3, ""), (4, "c"), (5, "last")]


def test_iter_lines_only_drops_a_leading_bom(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("x\n\ufeffy\n".encode("utf-8"))
    assert list(iter_lines(path)) == [(1, "x"), (2, "\ufeffy")]


def test_iter_lines_keeps_other_whitespace(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("  a\t\n\u3000\u2028b\n".encode("utf-8"))
    assert list(iter_lines(path)) == [(1, "  a\t"), (2, "\u3000\u2028b")]


def test_iter_lines_invalid_utf8_names_line_and_byte(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("好\nok\n".encode("utf-8") + b"ab\xffc\n")
    with pytest.raises(InputError) as info:
        list(iter_lines(path))
    err = info.value
    assert err.path == str(path) and err.line == 3
    # "好\n" is 4 bytes, "ok\n" 3, then "ab": the bad byte is at offset 9
    assert "byte 9" in str(err)
    assert str(err).startswith(f"{path}:3: ")
    assert list(iter_lines(path, errors="replace"))[2] == (3, "ab\ufffdc")


def test_iter_lines_rejects_binary_files(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc\x00def\n")
    with pytest.raises(InputError, match="binary"):
        list(iter_lines(path))
    assert list(iter_lines(path, binary_check=False)) == [(1, "abc\x00def")]


def test_iter_lines_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        list(iter_lines(tmp_path / "nope.txt"))
    assert str(tmp_path / "nope.txt") in str(info.value)
    with pytest.raises(InputError, match="directory"):
        list(iter_lines(tmp_path))
