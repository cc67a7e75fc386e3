"""The catalogue's own machinery: a case that breaks its promise fails."""
from __future__ import annotations

import pytest

from reliability_catalogue import Case, check_case


def test_a_case_that_changes_a_kept_file_fails(tmp_path):
    case = Case("overwrites its input", {"in.conll": "张\tB-PER\n"},
                ["corpora", "convert", "in.conll", "--to", "jsonl", "-o", "out.jsonl"], 0, "")
    check_case(case, tmp_path / "ok")  # converting to another file keeps the input
    bad = Case("expects exit 2", case.files, case.command, 2, "")
    with pytest.raises(AssertionError, match="exit 0, expected 2"):
        check_case(bad, tmp_path / "bad")
    gone = Case("expects no output", case.files, case.command, 0, "", absent=("out.jsonl",))
    with pytest.raises(AssertionError, match="out.jsonl was left behind"):
        check_case(gone, tmp_path / "gone")
