"""The `cner` command line: each command parses options and calls one library function.

`CnerGroup` is the one place that turns the project's errors into a one-line failure with
exit status 2; nothing below the CLI exits the process.
"""
from __future__ import annotations

import sys

import click

from cner.errors import CnerError


class CnerGroup(click.Group):
    """A click group that prints `CnerError`s as ``error: ...`` and exits 2."""

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


@click.group(cls=CnerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cner")
def main() -> None:
    """cner: Chinese named-entity recognition with character-level BERT+CRF.

    \b
    Example:
      cner corpora stats corpora/sample/train.conll
    """


@main.group(cls=CnerGroup)
def corpora() -> None:
    """Read, inspect and convert NER corpora."""


@corpora.command("list")
def corpora_list() -> None:
    """List the formats cner reads and the public corpora it knows.

    \b
    Example:
      cner corpora list
    """
    from cner.data.catalog import PUBLIC_CORPORA
    from cner.data.formats import FORMATS
    from cner.schemes import SCHEMES

    click.echo("Formats (--format):")
    for fmt in FORMATS.values():
        click.echo(f"  {fmt.name:<8} {fmt.description}")
    click.echo(f"Tag schemes for column files (--scheme): {', '.join(SCHEMES)}; "
               "labels may carry dotted suffixes (B-PER.NAM)")
    click.echo("Public corpora (download them yourself; cner reads them as they are published):")
    for c in PUBLIC_CORPORA:
        click.echo(f"  {c.name:<18} {c.task}; {c.format}")
        click.echo(f"  {'':<18} files: {', '.join(c.files)}; {c.note}")
        click.echo(f"  {'':<18} source: {c.source}")


FORMAT_CHOICE = click.Choice(["auto", "conll", "cluener", "jsonl"])
SCHEME_CHOICE = click.Choice(["auto", "bio", "iob1", "bioes", "bmes", "bilou"])


@corpora.command("stats")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Input format.")
@click.option("--scheme", type=SCHEME_CHOICE, default="auto", show_default=True,
              help="Tag scheme of column files.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def corpora_stats(files: tuple[str, ...], fmt: str, scheme: str, as_json: bool) -> None:
    """Print sentences, characters, entities per type, the longest sentence and the number
    of invalid tag transitions of each FILE.

    \b
    Example:
      cner corpora stats corpora/sample/train.conll
      cner corpora stats --format cluener dev.json --json
    """
    import json

    from cner.data.formats import read_corpus
    from cner.data.stats import corpus_stats, format_stats

    for k, path in enumerate(files):
        stats = corpus_stats(read_corpus(path, format=fmt, scheme=scheme, mode="lenient"))
        if as_json:
            click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))
        else:
            click.echo(("\n" if k else "") + format_stats(stats))


@corpora.command("convert")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--to", "to", type=click.Choice(["conll", "cluener", "jsonl"]), required=True,
              help="Output format.")
@click.option("--scheme", type=click.Choice(["bio", "iob1", "bioes", "bmes", "bilou"]),
              default="bio", show_default=True, help="Tag scheme of a column-file output.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Output file (written atomically); standard output if absent.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Input format.")
@click.option("--from-scheme", type=SCHEME_CHOICE, default="auto", show_default=True,
              help="Tag scheme of a column-file input.")
@click.option("--lenient", is_flag=True,
              help="Repair invalid tag transitions (conlleval convention) instead of failing.")
def corpora_convert(file: str, to: str, scheme: str, output: str | None, fmt: str,
                    from_scheme: str, lenient: bool) -> None:
    """Convert FILE to another format and/or tag scheme without losing a character.

    \b
    Example:
      cner corpora convert train.json --to conll --scheme bioes -o train.bioes
      cner corpora convert corpora/sample/dev.conll --to jsonl
    """
    from cner.data.formats import convert_corpus

    report = convert_corpus(file, output, to=to, scheme=scheme, source_format=fmt,
                            source_scheme=from_scheme, mode="lenient" if lenient else "strict",
                            out=None if output else sys.stdout)
    if output:
        click.echo(f"wrote {report.examples:,} examples, {report.entities:,} entities to {output}",
                   err=True)
    if report.dropped_nested:
        click.echo(f"warning: dropped {report.dropped_nested} nested entities that a column file "
                   "cannot hold (the outer entity was kept)", err=True)


if __name__ == "__main__":
    main()
