"""The project's errors. Each one renders as a single line the CLI can print as is.

Messages say what was expected, what was found, and how to fix it. Nothing below the
CLI exits the process: library code raises these and `cner.cli` turns them into exit 2.
"""
from __future__ import annotations

from pathlib import Path


class CnerError(Exception):
    """Base class: a user-facing problem (bad input, bad config, missing model file)."""

    exit_code = 2


class InputError(CnerError):
    """A problem in a file the user gave us, located by path and 1-based line."""

    def __init__(self, problem: str, *, path: str | Path | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        text = where + self.problem
        if self.hint:
            text += f" ({self.hint})"
        return text.replace("\n", " ")


class SchemeError(CnerError):
    """An invalid tag or tag transition under a declared scheme."""


class ConfigError(CnerError):
    """A config key, value or type that does not fit the schema."""


class ModelError(CnerError):
    """A model that cannot be built, found or loaded."""
