"""What the commands share: option types, the options every command spells the same way, and
the helpers that merge an option with its old spelling.

One meaning per option name across commands: ``--format`` and ``--scheme`` name the *input*
format and tag scheme, ``--to`` / ``--to-scheme`` the *output* ones; inputs are positional
arguments; ``--device`` / ``--precision`` are the same on every command that runs a model.
Old spellings (``annotate --format csv``, ``evaluate --data F``, ``predict --input F``,
``convert --from-scheme``) still work as hidden aliases.

Importing this module imports click only (`cner --help` stays fast).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import click

from cner.errors import CnerError


class UsageError(CnerError):
    """Options that contradict each other."""


FORMAT_CHOICE = click.Choice(["auto", "conll", "cluener", "jsonl"])
SCHEME_CHOICE = click.Choice(["auto", "bio", "iob1", "bioes", "bmes", "bilou"])
OUTPUT_SCHEME_CHOICE = click.Choice(["bio", "iob1", "bioes", "bmes", "bilou"])
OUTPUT_CHOICE = click.Choice(["csv", "tsv", "json", "jsonl", "parquet"])
PRECISION_CHOICE = click.Choice(["auto", "fp32", "bf16", "fp16"])
TOKEN_SUFFIX_CHOICE = click.Choice(["auto", "position", "none"])  # cner.data.conll.TOKEN_SUFFIXES
# The largest --batch-size: far beyond any memory, and small enough that a chunk of 8 batches
# stays an index (the same bound as cner.inference.annotate.MAX_BATCH_SIZE, not imported from
# there because that module loads torch).
MAX_BATCH_SIZE = 1 << 20
BATCH_SIZE = click.IntRange(min=1, max=MAX_BATCH_SIZE)

FORMAT_HELP = "Input format."
SCHEME_HELP = "Tag scheme of a column-file input."
TOKEN_SUFFIX_HELP = ("Column files: 'position' when each token is a character followed by its "
                     "word position (Weibo NER: 科0), 'none' to read each token as written (a "
                     "multi-character token as a word), 'auto' to read one character per token "
                     "and detect positions.")
LENIENT_HELP = "Repair invalid tag transitions (conlleval convention) instead of failing."
MODEL_HELP = "Model directory written by cner train (RUN_DIR/model), or a hub id owner/name."
DEVICE_HELP = "cpu, cuda, cuda:N or auto (a CUDA GPU when there is one)."
PRECISION_HELP = ("auto: bf16 where the hardware has it (about 2x fp32 on a bf16 CPU), else "
                  "fp32; fp16 needs a GPU.")
TO_HELP = "Output format.  [default: from the --output suffix, else csv]"


def echo_notes(notes) -> None:
    """What reading a corpus noticed or repaired: one ``note:`` line each on stderr."""
    for note in notes:
        click.echo(f"note: {note}", err=True)


def run_options(func):
    """The options of every command that trains a run: ``--output``, ``--set``, ``--resume``,
    ``--overwrite``, ``--quiet``."""
    for option in reversed([
        click.option("--output", "-o", type=click.Path(file_okay=False),
                     help="Run directory (default: runs/<config-name>-<timestamp>/)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config key by dotted path; repeatable."),
        click.option("--resume", type=click.Path(file_okay=False, exists=True),
                     help="Continue the run in this directory from its last checkpoint."),
        click.option("--overwrite", is_flag=True,
                     help="Replace an existing cner run in --output."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]):
        func = option(func)
    return func


def command_help(summary: str, *examples: str) -> str:
    """A command's help: ``summary``, then its examples, laid out as written."""
    return summary + "\n\n\b\nExample:\n" + "\n".join(f"  {line}" for line in examples)


def device_options(default_device: str | None = "cpu", default_precision: str | None = "auto",
                   extra: str = "") -> Callable:
    """``--device`` and ``--precision``, spelled and checked alike on every command that runs
    a model (``None`` defaults: the config's, with ``extra`` naming its key)."""
    def decorate(func):
        func = click.option("--precision", type=PRECISION_CHOICE, default=default_precision,
                            show_default=default_precision is not None,
                            help=PRECISION_HELP + extra.format(key="precision"))(func)
        return click.option("--device", default=default_device,
                            show_default=default_device is not None,
                            help=DEVICE_HELP + extra.format(key="device"))(func)
    return decorate


def check_device(device: str | None, precision: str | None = None, *,
                 device_option: str = "--device") -> None:
    """Refuse a device, or a precision on it, that this machine cannot run, in errors naming
    the options (``--device=cuda but no CUDA GPU is available``); ``None`` is not checked."""
    if device is None:
        return
    from cner.runtime.devices import resolve_device, resolve_precision

    where = resolve_device(device, option=device_option)
    if precision is not None:
        resolve_precision(precision, where, option="--precision")


def output_format_options(func):
    """``--to`` (the output format) and ``--format``, its hidden old name on the commands where
    it once named the output format (see `output_format`)."""
    func = click.option("--format", "format_alias", type=OUTPUT_CHOICE, default=None,
                        hidden=True, help="Old name of --to.")(func)
    return click.option("--to", "to", type=OUTPUT_CHOICE, default=None, help=TO_HELP)(func)


def output_format(to: str | None, format_alias: str | None) -> str | None:
    """The output format from ``--to`` or its old name ``--format`` (both: they must agree)."""
    if to is not None and format_alias is not None and to != format_alias:
        raise UsageError(f"--to {to} and --format {format_alias} disagree; --format is the old "
                         "name of --to here, give --to alone")
    return to or format_alias


def format_alias_note(format_alias: str | None) -> None:
    """The one-line note a command using ``--format`` for its output format prints at the end."""
    if format_alias is not None:
        click.echo(f"note: --format names the output format here only for compatibility; use "
                   f"--to {format_alias} (elsewhere --format is the input format)", err=True)


def positional_or_alias(value, alias, name: str, option: str, *, required: bool = True):
    """A positional argument and its hidden old option (``DATA`` / ``--data``): one of them."""
    if value is not None and alias is not None and value != alias:
        raise UsageError(f"give {name} once: as the argument or with {option}, not both")
    chosen = value if value is not None else alias
    if chosen is None and required:
        raise click.UsageError(f"Missing argument '{name}'.")
    return chosen


def model_files(model_dir: str | os.PathLike) -> list[Path]:
    """The files of a model directory: inputs that no output may replace."""
    from cner.fileio import files_in

    return files_in(model_dir)


@contextlib.contextmanager
def removing_unstarted_run(run_dir: str | Path | None):
    """A training command that fails before its first checkpoint leaves nothing behind.

    ``run_dir`` (``None``: a resumed run, left alone) is the new run's directory. On any
    failure (an error, an interruption) that comes before the run's first checkpoint, what
    this command wrote there goes (`cner.training.runs.discard_unstarted_run`), and so do the
    directories it created, so that the same command can simply be run again. A run that has
    a checkpoint stays, to be continued with ``--resume``.
    """
    if run_dir is None:
        yield
        return
    from cner.training.runs import discard_unstarted_run, run_stamp

    run_dir = Path(run_dir)
    made = []  # run_dir and the parents this command is about to create, innermost first
    for path in [run_dir, *run_dir.parents]:
        if os.path.lexists(path):
            break
        made.append(path)
    before = run_stamp(run_dir)
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            if discard_unstarted_run(run_dir, before):
                for path in made:
                    if os.path.lexists(path):
                        os.rmdir(path)  # only empty ones: stops at the first that is not
        raise
