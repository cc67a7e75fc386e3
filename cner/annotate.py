"""Annotating files: streaming readers, chunked tagging, atomic and resumable output.

Inputs are read lazily. ``.txt`` (also unknown suffixes and ``-``, standard input): a document
per line, ``doc_id`` = 1-based line number; empty lines give no document but keep the numbering;
NUL bytes are text. ``.jsonl``/``.ndjson``/``.json``: an object per line with ``text`` and
optional ``id`` (else the line number). ``.csv``/``.tsv``: a header, a text column and an
optional id column (``id`` when present; else the 1-based data row). With several inputs every
``doc_id`` becomes ``"INPUT:doc_id"`` (``INPUT`` as given). Invalid UTF-8 is an `InputError`
naming the line and 0-based byte offset; ``errors="replace"`` decodes it as U+FFFD.

A file output grows in ``OUT.partial`` (flushed per chunk) beside ``OUT.partial.json`` (documents
done; inputs with sizes and mtimes, options, model fingerprint); success renames it to ``OUT``
and removes the state. ``resume=True`` continues an interrupted job on the same chunk grid, so
with the same options the output is byte-identical to an uninterrupted run.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cner.errors import CnerError, ConfigError, InputError
from cner.fileio import atomic_write, decode_lines
from cner.writers import FORMATS, format_from_suffix, make_writer

STATE_VERSION = 1
_ERRORS = ("strict", "replace")
# ``compile=None`` (auto) compiles a transformer encoder on CPU for inputs whose encoder work
# is at least this many FLOPs: ~20 minutes of uncompiled bf16 annotation on 2 cores. Compiling
# costs 15-60 s once and was measured 1.07x (bert-base) to 1.18x (small shape) faster than the
# uncompiled engine with packed weights (README), so it pays back about twice over there.
# Input characters are estimated as bytes / 3 (UTF-8 Chinese): bert-base compiles from ~5 MB
# of text on, the 256-wide small shape from ~140 MB. Decided from the input sizes alone, so
# that a resumed job runs the same engine as the one it continues.
AUTO_COMPILE_MIN_FLOPS = 300e12
_SURROGATES = re.compile("[\ud800-\udfff]")


class Document(NamedTuple):
    doc_id: Any  # int (line or row number), or the id found in the input
    text: str
    line: int  # 1-based line where the document starts


@dataclass
class AnnotateReport:
    documents: int
    entities: int
    seconds: float
    chars: int
    resumed: int = 0  # documents that an earlier, interrupted run had already written

    def summary(self) -> str:
        rate = self.chars / max(self.seconds, 1e-9)
        return (f"annotated {self.documents:,} documents ({self.chars:,} characters), "
                f"{self.entities:,} entities in {self.seconds:.1f} s ({rate:,.0f} characters/s)"
                + (f"; {self.resumed:,} were done before resuming" if self.resumed else ""))


def input_kind(path: str | os.PathLike) -> str:
    """``txt``, ``jsonl``, ``csv`` or ``tsv`` from the file name (``-`` is ``txt``)."""
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
            ".tsv": "tsv"}.get(Path(os.fspath(path)).suffix.lower(), "txt")


def _check_input(path: str) -> None:
    if path != "-" and not Path(path).is_file():
        raise InputError("is a directory, expected a file" if Path(path).is_dir()
                         else "file not found", path=path)


def _lines(path: str, errors: str, *, keep_ends: bool = False
           ) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, byte offset after the line)``; ``-`` reads standard input."""
    _check_input(path)
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    name, where = ("<stdin>", "of standard input") if path == "-" else (path, "of the file")
    try:
        yield from decode_lines(handle, name=name, errors=errors, where=where,
                                hint="re-encode it as UTF-8, or pass --errors replace",
                                keep_ends=keep_ends)
    finally:
        if path != "-":
            handle.close()


def _clean(value: str, errors: str, path: str, line: int, what: str) -> str:
    """JSON ``\\ud800`` escapes make lone surrogates, which cannot be written as UTF-8."""
    if not _SURROGATES.search(value):
        return value
    if errors == "replace":
        return _SURROGATES.sub("\ufffd", value)  # one character for one: offsets do not move
    raise InputError(f"the {what} holds a lone surrogate (an unpaired \\ud800-\\udfff escape)",
                     path=path, line=line, hint="fix the escape, or pass --errors replace")


def _txt(path: str, errors: str) -> Iterator[tuple[Document, int]]:
    for number, text, offset in _lines(path, errors):
        if text:
            yield Document(number, text, number), offset


def _jsonl(path: str, errors: str, text_key: str, id_key: str | None
           ) -> Iterator[tuple[Document, int]]:
    for number, line, offset in _lines(path, errors):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON at column {exc.colno}: {exc.msg}", path=path,
                             line=number, hint="expected one JSON object per line") from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, found {type(obj).__name__}", path=path,
                             line=number, hint="expected one JSON object per line")
        for key, option in ((text_key, "--text-column"), (id_key, "--id-column")):
            if key is not None and key not in obj:
                raise InputError(f"no key {key!r}; the keys are: {', '.join(obj)}", path=path,
                                 line=number, hint=f"choose the key with {option}")
        text = "" if obj[text_key] is None else obj[text_key]
        if not isinstance(text, str):
            raise InputError(f"{text_key!r} must be a string, found {type(text).__name__}",
                             path=path, line=number)
        doc_id = obj.get(id_key or "id")
        doc_id = _clean(doc_id, errors, path, number, "id") if isinstance(doc_id, str) else doc_id
        yield Document(number if doc_id is None else doc_id,
                       _clean(text, errors, path, number, "text"), number), offset


def _table(path: str, errors: str, delimiter: str, text_column: str, id_column: str | None
           ) -> Iterator[tuple[Document, int]]:
    csv.field_size_limit(max(csv.field_size_limit(), 2 ** 31 - 1))
    where = [0, 0]  # line number and byte offset of the last line the csv reader took

    def feed() -> Iterator[str]:
        for number, text, offset in _lines(path, errors, keep_ends=True):
            where[:] = [number, offset]
            yield text

    rows, header, row_number = csv.reader(feed(), delimiter=delimiter), None, 0
    while True:
        first_line = where[0] + 1
        try:
            row = next(rows, None)
        except csv.Error as exc:
            raise InputError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}",
                             path=path, line=where[0]) from None
        if row is None:
            return
        if not row:  # a blank line
            continue
        if header is None:
            header = row
            for name, option in ((text_column, "--text-column"), (id_column, "--id-column")):
                if name is not None and name not in header:
                    raise InputError(f"no column {name!r}; the columns are: {', '.join(header)}",
                                     path=path, line=first_line,
                                     hint=f"choose one with {option}")
            id_name = id_column or ("id" if "id" in header else None)
            text_at, id_at = header.index(text_column), id_name and header.index(id_name)
            continue
        if len(row) != len(header):
            raise InputError(f"{len(row)} fields where the header has {len(header)}",
                             path=path, line=first_line,
                             hint="quote fields that hold the delimiter or a line break")
        row_number += 1
        doc_id = row_number if id_at is None or row[id_at] == "" else row[id_at]
        yield Document(doc_id, row[text_at], first_line), where[1]


def _read(path: str, *, text_column: str, id_column: str | None, errors: str
          ) -> Iterator[tuple[Document, int]]:
    if errors not in _ERRORS:
        raise ConfigError(f"errors must be 'strict' or 'replace', got {errors!r}")
    kind = "txt" if path == "-" else input_kind(path)
    if kind in ("csv", "tsv"):
        return _table(path, errors, "," if kind == "csv" else "\t", text_column, id_column)
    return _jsonl(path, errors, text_column, id_column) if kind == "jsonl" else _txt(path, errors)


def read_documents(path: str | os.PathLike, *, text_column: str = "text",
                   id_column: str | None = None, errors: str = "strict") -> Iterator[Document]:
    """Lazily yield the `Document`s of one input file (or ``-`` for standard input)."""
    for document, _ in _read(os.fspath(path), text_column=text_column, id_column=id_column,
                             errors=errors):
        yield document


def _all_documents(inputs: Sequence[str], **options) -> Iterator[tuple[Document, int]]:
    """Documents of every input, ids prefixed when there are several; bytes read so far."""
    done = 0
    for path in inputs:
        last = 0
        for doc, last in _read(path, **options):
            if len(inputs) > 1:
                doc = doc._replace(doc_id=f"{path}:{doc.doc_id}")
            yield doc, done + last
        done += last if path == "-" else os.path.getsize(path)


def worth_compiling(tagger, input_bytes: int) -> bool:
    """Whether ``compile=None`` (auto) compiles ``tagger`` for ``input_bytes`` of input: a
    transformer encoder on CPU, and at least `AUTO_COMPILE_MIN_FLOPS` of work."""
    from cner.inference import encoder_flops_per_position

    predictor = tagger.predictor
    encoder = getattr(predictor.model, "encoder", None)
    if (predictor.compiled or predictor.device.type != "cpu"
            or not hasattr(encoder, "set_attn_implementation")):  # BiLSTM: not measured
        return False
    work = input_bytes / 3 * encoder_flops_per_position(predictor.model)
    return work >= AUTO_COMPILE_MIN_FLOPS


def _load_tagger(tagger, inputs: Sequence[str], device: str, batch_size: int | None,
                 precision: str, compile: bool | None):
    """A `Tagger` given as such is used as it is; a model directory is loaded and, with
    ``compile=None``, compiled when `worth_compiling` (a failure then only warns)."""
    if not isinstance(tagger, (str, os.PathLike)):
        return tagger
    from cner.errors import ModelError
    from cner.inference import Tagger

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


def _utf8_stdout():
    """Standard output, re-wrapped as UTF-8 when the locale gave it another encoding."""
    out = sys.stdout
    if (out.encoding or "utf-8").lower().replace("-", "") == "utf8" or not hasattr(out, "buffer"):
        return out, False
    out.flush()
    return io.TextIOWrapper(out.buffer, encoding="utf-8", newline="", write_through=True), True


def annotate_files(inputs: Sequence[str | os.PathLike] | str | os.PathLike, tagger, *,
                   output: str | os.PathLike | None = None, format: str | None = None,
                   batch_size: int | None = None, text_column: str = "text",
                   id_column: str | None = None, errors: str = "strict", resume: bool = False,
                   progress: bool = True, device: str = "cpu", precision: str = "auto",
                   compile: bool | None = None) -> AnnotateReport:
    """Annotate ``inputs`` with ``tagger`` and write CSV/JSON/JSONL to ``output`` (standard
    output when ``None``).

    ``tagger``: a `Tagger`, used as it is, or a model directory, loaded on ``device`` at
    ``precision`` and compiled with TorchInductor if ``compile`` is true; ``None`` (auto)
    compiles for large inputs (see `AUTO_COMPILE_MIN_FLOPS`).

    ``format`` defaults from the output suffix, else CSV. ``batch_size`` (windows per model
    call) defaults to the tagger's. See the module docstring for inputs, ids and ``resume``.
    """
    inputs = [os.fspath(p) for p in
              ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    fmt = format or format_from_suffix(output)
    if fmt not in FORMATS or errors not in _ERRORS:
        raise ConfigError(f"format must be csv, json or jsonl (got {fmt!r}) and errors strict "
                          f"or replace (got {errors!r})")
    for problem, bad in (("no input file given", not inputs),
                         ("standard input ('-') can be read only once", inputs.count("-") > 1),
                         ("--resume needs --output", resume and output is None),
                         ("--output is a directory", output and Path(output).is_dir()),
                         ("a job reading standard input cannot be resumed",
                          resume and "-" in inputs)):
        if bad:
            raise InputError(problem)
    for path in inputs:
        _check_input(path)
    tagger = _load_tagger(tagger, inputs, device, batch_size, precision, compile)
    predictor = tagger.predictor
    old_batch_size, predictor.batch_size = predictor.batch_size, batch_size or predictor.batch_size
    try:  # the engine is part of the job: compiled scores may differ in the last digits
        return _run(inputs, tagger, None if output is None else Path(output), fmt, resume,
                    progress, {"format": fmt, "text_column": text_column,
                               "id_column": id_column, "errors": errors,
                               "compiled": predictor.compiled})
    finally:
        predictor.batch_size = old_batch_size


def _run(inputs: list[str], tagger, output: Path | None, fmt: str, resume: bool,
         progress: bool, options: dict) -> AnnotateReport:
    from tqdm import tqdm

    started = time.perf_counter()
    stats = dict.fromkeys(_PROGRESS, 0)
    stats["chunk_size"] = tagger.predictor.batch_size * 8
    saved = wrapped = None
    if output is None:
        handle, wrapped = _utf8_stdout()
        writer = make_writer(fmt, handle)  # begun lazily: an early input error prints nothing
    else:
        partial = output.with_name(output.name + ".partial")
        state_path = output.with_name(output.name + ".partial.json")
        job = _job(inputs, tagger, options)
        saved = _resume_state(state_path, partial, job) if resume else None
        if saved is not None:
            stats.update(saved)
            os.truncate(partial, stats["bytes"])  # drop rows written after the last save
        output.parent.mkdir(parents=True, exist_ok=True)
        handle = open(partial, "w" if saved is None else "a", encoding="utf-8", newline="")
        writer = make_writer(fmt, handle, written=stats["written"])
        if saved is None:
            writer.begin()
    resumed = stats["documents"]

    def save() -> None:
        handle.flush()
        if output is not None:
            os.fsync(handle.fileno())
            stats["bytes"], stats["written"] = os.fstat(handle.fileno()).st_size, writer.written
            with atomic_write(state_path) as state_file:
                json.dump({**job, **stats}, state_file, ensure_ascii=False)

    bar = tqdm(total=None if "-" in inputs else sum(os.path.getsize(p) for p in inputs),
               unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
               desc="annotating", disable=not progress or not sys.stderr.isatty())
    documents = _all_documents(inputs, text_column=options["text_column"],
                               id_column=options["id_column"], errors=options["errors"])
    try:
        if output is not None:
            save()
        remaining = itertools.islice(documents, stats["documents"], None)
        while chunk := list(itertools.islice(remaining, stats["chunk_size"])):
            found = list(tagger.pipe([doc.text for doc, _ in chunk], chunk_size=len(chunk)))
            if output is None and stats["documents"] == 0:
                writer.begin()
            for (doc, _), entities in zip(chunk, found):
                writer.write(doc.doc_id, doc.text, entities)
                stats["entities"] += len(entities)
                stats["chars"] += len(doc.text)
            stats["documents"] += len(chunk)
            save()
            bar.update(chunk[-1][1] - bar.n)
            rate = (stats["documents"] - resumed) / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{rate:,.0f} lines/s", refresh=False)
        if output is None and stats["documents"] == 0:
            writer.begin()
        writer.end()  # not save()d: a resume after a crash here truncates the end and redoes it
        handle.flush()
        if output is not None:
            os.fsync(handle.fileno())
            handle.close()
            os.replace(partial, output)
            state_path.unlink(missing_ok=True)
    except BaseException as exc:
        if output is not None:
            handle.close()
            if stats["documents"] and not isinstance(exc, CnerError):
                print(f"note: {stats['documents']:,} documents are saved in {partial}; rerun "
                      "with --resume to continue", file=sys.stderr)
        raise
    finally:
        bar.close()
        if wrapped:
            handle.detach()
    return AnnotateReport(stats["documents"], stats["entities"], time.perf_counter() - started,
                          stats["chars"], resumed)


__all__ = ["AnnotateReport", "Document", "annotate_files", "input_kind", "read_documents"]
