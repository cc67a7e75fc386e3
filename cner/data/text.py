"""Raw text: what pre-training reads, and the text of any corpus or classification file.

Two directions:

* `corpus_text` turns the files cner reads (NER corpora in any format, classification files,
  the registered sentiment / GLUE tasks) into plain text, one sentence or document per line,
  labels dropped: pre-training text made from what a user has. A sentence-pair row gives its
  two texts as two lines. ``exclude`` removes every line that also occurs in other files (a
  task's dev and test splits), compared exactly after the same normalisation (`normalize_line`),
  and counts what it removed.
* `read_documents` reads pre-training text: one line per sentence (or document), a blank line
  (or the end of a file) ends a document. Lines of one document may be packed into one training
  sequence; lines of two documents never are (`cner.encoding.packing`).

A source is named by its path, or ``TASK:SPLIT`` (``afqmc:train``, ``chnsenticorp_htl:dev``)
for a registered classification task whose files lie under the corpora root; a path that is a
registered task's file is read with that task's reader (ChnSentiCorp's three different headers,
AFQMC's headerless pairs). Other ``.csv``/``.tsv``/``.jsonl`` files with a ``text`` column
(``text_column``) are classification files; anything else is a NER corpus (`read_corpus`,
format detected, invalid tag transitions tolerated: only the text is kept).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cner.errors import InputError
from cner.fileio import iter_lines

# What str.splitlines() breaks on: one text stays one line of the output.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_TASK_SPLIT = re.compile(r"([A-Za-z0-9_]+):(train|dev|test|all)")


def normalize_line(text: str) -> str:
    """One text as one line: line breaks inside it become a space, surrounding whitespace goes.
    The same function decides what ``exclude`` matches, so removal is exact after it."""
    return _LINE_BREAKS.sub(" ", text).strip()


@dataclass(frozen=True)
class TextSource:
    """Where texts come from: ``kind`` is ``task`` (a registered task's split), ``table``
    (a classification file read by columns) or ``corpus`` (a NER corpus)."""

    name: str  # as the user wrote it
    kind: str
    path: Path | None = None
    task: str | None = None
    split: str | None = None


def _task_of_file(path: Path) -> tuple[str, str] | None:
    """``(task, split)`` when ``path`` is one of a registered task's files."""
    from cner.config import corpora_root
    from cner.data.task_registry import TASKS

    root = corpora_root()
    for spec in TASKS.values():
        for split, relative in spec.files.items():
            candidate = root / relative
            try:
                if candidate.is_file() and os.path.samefile(candidate, path):
                    return spec.name, "all" if "all" in spec.files else split
            except OSError:
                continue
    return None


def _looks_tabular(path: Path, text_column: str) -> bool:
    """A ``.csv``/``.tsv`` whose header names ``text_column``, or a JSON Lines file whose
    first object has a ``text_column`` string and no NER labels."""
    from cner.fileio import uncompressed_name

    suffix = Path(uncompressed_name(path)).suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".json"):
        return False
    for _, line in iter_lines(path):
        if not line.strip():
            continue
        if suffix in (".jsonl", ".json"):
            try:
                obj = json.loads(line)
            except ValueError:
                return False
            return (isinstance(obj, dict) and isinstance(obj.get(text_column), str)
                    and "entities" not in obj and not isinstance(obj.get("label"), dict)
                    and "label" in obj)
        delimiter = "," if suffix == ".csv" else "\t"
        return text_column in [c.strip().strip('"') for c in line.split(delimiter)]
    return False


def resolve_source(name: str, *, text_column: str | None = None) -> TextSource:
    """The `TextSource` that ``name`` names (see the module docstring)."""
    from cner.data.task_registry import TASKS

    path = Path(name)
    match = _TASK_SPLIT.fullmatch(name)
    if not path.exists() and match:
        task, split = match.groups()
        if task not in TASKS:
            raise InputError(f"no file {name}, and {task!r} is not a registered task "
                             f"({', '.join(TASKS)})")
        if split not in TASKS[task].files:
            raise InputError(f"task {task!r} has no split {split!r}; its splits: "
                             + ", ".join(TASKS[task].files))
        return TextSource(name, "task", task=task, split=split)
    if not path.exists():
        raise InputError("file not found", path=name,
                         hint="name a corpus or classification file, or TASK:SPLIT "
                              "(afqmc:train)")
    if path.is_dir():
        raise InputError("is a directory, expected a file", path=name)
    found = _task_of_file(path)
    if found is not None and text_column is None:
        return TextSource(name, "task", path=path, task=found[0], split=found[1])
    if _looks_tabular(path, text_column or "text"):
        return TextSource(name, "table", path=path)
    if text_column is not None:
        raise InputError(f"no column {text_column!r} in the first line", path=name)
    return TextSource(name, "corpus", path=path)


def source_texts(source: TextSource, *, text_column: str | None = None,
                 text_pair_column: str | None = None) -> Iterator[str]:
    """The texts of ``source`` in file order, as written (a pair row gives two texts)."""
    if source.kind == "task":
        from cner.data.task_registry import get_task, load_split

        spec = get_task(source.task)
        if source.path is not None:
            rows = spec.read(source.path, source.split)
        else:
            rows = load_split(spec, source.split)
        for row in rows:
            yield row.text
            if row.text_pair is not None:
                yield row.text_pair
        return
    if source.kind == "table":
        from cner.data.classification import iter_classification_file

        for row in iter_classification_file(source.path, text_column=text_column or "text",
                                            text_pair_column=text_pair_column,
                                            empty_text="skip"):
            yield row.text
            if row.text_pair is not None:
                yield row.text_pair
        return
    from cner.data.formats import read_corpus

    for example in read_corpus(source.path, mode="lenient").examples:
        yield example.text


@dataclass
class TextReport:
    """What `corpus_text` wrote and removed."""

    lines: int = 0  # lines written
    characters: int = 0  # characters written (line ends not counted)
    removed: int = 0  # lines left out because an --exclude file has them
    excluded_lines: int = 0  # distinct normalised lines in the --exclude files
    duplicates: int = 0  # lines left out as repeats (unique=True)
    empty: int = 0  # texts that are empty after normalisation
    per_source: dict[str, int] = field(default_factory=dict)  # lines written per source
    removed_per_source: dict[str, int] = field(default_factory=dict)  # --exclude, per source

    def summary(self) -> str:
        text = f"wrote {self.lines:,} lines, {self.characters:,} characters"
        if self.excluded_lines or self.removed:
            text += (f"; removed {self.removed:,} lines that occur in the --exclude files "
                     f"({self.excluded_lines:,} distinct lines)")
        if self.duplicates:
            text += f"; left out {self.duplicates:,} repeated lines"
        return text


def exclusion_set(names: Iterable[str], *, text_column: str | None = None,
                  text_pair_column: str | None = None) -> set[str]:
    """The normalised lines of the files (or ``TASK:SPLIT``) in ``names``."""
    out: set[str] = set()
    for name in names:
        source = resolve_source(name, text_column=text_column)
        for text in source_texts(source, text_column=text_column,
                                 text_pair_column=text_pair_column):
            line = normalize_line(text)
            if line:
                out.add(line)
    return out


def iter_corpus_lines(names: Sequence[str], *, exclude: Iterable[str] = (), unique: bool = False,
                      text_column: str | None = None, text_pair_column: str | None = None,
                      report: TextReport | None = None) -> Iterator[str]:
    """The output lines of `corpus_text`, counted into ``report``."""
    report = report if report is not None else TextReport()
    sources = [resolve_source(n, text_column=text_column) for n in names]  # fail before reading
    excluded = exclusion_set(exclude, text_column=text_column, text_pair_column=text_pair_column)
    report.excluded_lines = len(excluded)
    seen: set[str] = set()
    for source in sources:
        written = removed = 0
        for text in source_texts(source, text_column=text_column,
                                 text_pair_column=text_pair_column):
            line = normalize_line(text)
            if not line:
                report.empty += 1
                continue
            if line in excluded:
                removed += 1
                continue
            if unique:
                if line in seen:
                    report.duplicates += 1
                    continue
                seen.add(line)
            report.lines += 1
            report.characters += len(line)
            written += 1
            yield line
        report.per_source[source.name] = report.per_source.get(source.name, 0) + written
        report.removed_per_source[source.name] = (
            report.removed_per_source.get(source.name, 0) + removed)
        report.removed += removed


def corpus_text(names: Sequence[str], output: str | Path, *, exclude: Iterable[str] = (),
                unique: bool = False, text_column: str | None = None,
                text_pair_column: str | None = None) -> TextReport:
    """Write the text of ``names`` to ``output`` (atomically; ``-``: standard output), one
    line per text, leaving out the lines of ``exclude``; returns what was written."""
    from cner.fileio import check_not_input, open_output

    inputs = [n for n in [*names, *exclude] if Path(n).exists()]
    check_not_input(output, inputs)
    report = TextReport()
    lines = iter_corpus_lines(names, exclude=exclude, unique=unique, text_column=text_column,
                              text_pair_column=text_pair_column, report=report)
    first = next(lines, None)  # read (and fail on) the inputs before the output is opened
    with open_output(output) as handle:
        if first is not None:
            handle.write(first + "\n")
        for line in lines:
            handle.write(line + "\n")
    return report


# --- pre-training text ---------------------------------------------------------------------

def read_documents(paths: Sequence[str | Path]) -> Iterator[list[str]]:
    """The documents of plain-text files: each a list of non-blank lines (stripped of
    surrounding whitespace); a blank line or the end of a file ends a document. ``.gz``,
    ``.bz2`` and ``.xz`` files are read decompressed; invalid UTF-8 is an `InputError` with
    file, line and byte offset."""
    for path in paths:
        document: list[str] = []
        for _, line in iter_lines(path):
            line = normalize_line(line)
            if line:
                document.append(line)
            elif document:
                yield document
                document = []
        if document:
            yield document


def text_stats(paths: Sequence[str | Path]) -> list[dict]:
    """Per file: path, SHA-256, bytes, characters, lines and documents, as `read_documents`
    counts them (for the model card of a pre-trained encoder)."""
    import hashlib

    out = []
    for path in paths:
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        chars = lines = docs = 0
        for document in read_documents([path]):
            docs += 1
            lines += len(document)
            chars += sum(len(line) for line in document)
        out.append({"path": str(path), "sha256": digest.hexdigest(), "bytes": size,
                    "characters": chars, "lines": lines, "documents": docs})
    return out
