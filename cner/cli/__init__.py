"""The `cner` command line: each command parses options and calls one library function.

This module holds the group, the one error handler and the registration of the commands,
which live in their own modules (`corpora`, `ner`, `classify`, `hub`, `info`; what they share
in `options`). `CnerGroup` is the one place that turns the project's errors into a one-line
failure with exit status 2; nothing below the CLI exits the process. Importing it imports
click only, so that `cner --help` and argument errors start fast.
"""
from __future__ import annotations

import sys

import click

from cner.cli.options import UsageError, model_files, removing_unstarted_run
from cner.errors import CnerError


def _os_error_line(exc: OSError) -> str:
    """An operating-system error no command turned into a `CnerError`: the path it names
    (when it names one) and the system's words."""
    where = "" if exc.filename is None else f"{exc.filename}: "
    return f"{where}{exc.strerror or exc}"


class CnerGroup(click.Group):
    """A click group that prints `CnerError`s (and stray `OSError`s) as one ``error: ...``
    line and exits 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CnerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `cner ... | head` closed the pipe: not an error
            sys.stderr.close()
            sys.exit(0)
        except OSError as exc:
            click.echo(f"error: {_os_error_line(exc)}", err=True)
            sys.exit(CnerError.exit_code)


@click.group(cls=CnerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cner")
def main() -> None:
    """cner: Chinese named-entity recognition with character-level BERT+CRF.

    \b
    Example:
      cner corpora stats corpora/sample/train.conll
    """


def _register() -> None:
    from cner.cli.classify import make_group
    from cner.cli.corpora import corpora
    from cner.cli.hub import push_command
    from cner.cli.info import info_command
    from cner.cli.ner import annotate_command, evaluate_command, train_command

    for command in (corpora, train_command, evaluate_command, annotate_command,
                    make_group("sentiment", "chnsenticorp"), make_group("glue", None),
                    push_command, info_command):
        main.add_command(command)
    from cner.cli.pretrain import register
    register(main)  # pretrain, vocab build, corpora text
    from cner.cli.serve import serve_command
    main.add_command(serve_command)  # cner serve (the serve extra)
    from cner.cli.export import export_command
    main.add_command(export_command)  # cner export --onnx (the onnx extra)
    from cner.cli.distill import distill_command
    main.add_command(distill_command)  # cner distill (teacher -> student)


_register()

__all__ = ["CnerGroup", "UsageError", "main", "model_files", "removing_unstarted_run"]

if __name__ == "__main__":
    main()
