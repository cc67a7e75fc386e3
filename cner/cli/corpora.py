"""`cner corpora`: list the formats and public corpora, print statistics, convert."""
from __future__ import annotations

import sys

import click

from cner.cli.options import (FORMAT_CHOICE, FORMAT_HELP, LENIENT_HELP, OUTPUT_SCHEME_CHOICE,
                              SCHEME_CHOICE, SCHEME_HELP, TOKEN_SUFFIX_CHOICE,
                              TOKEN_SUFFIX_HELP, UsageError, echo_notes)


@click.group("corpora")
def corpora() -> None:
    """Read, inspect and convert NER corpora.

    \b
    Example:
      cner corpora stats corpora/sample/dev.conll
    """


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


@corpora.command("stats")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help=FORMAT_HELP)
@click.option("--scheme", type=SCHEME_CHOICE, default="auto", show_default=True,
              help=SCHEME_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default="auto", show_default=True,
              help=TOKEN_SUFFIX_HELP)
def corpora_stats(files: tuple[str, ...], fmt: str, scheme: str, as_json: bool,
                  token_suffix: str) -> None:
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
        corpus = read_corpus(path, format=fmt, scheme=scheme, mode="lenient",
                             token_suffix=token_suffix)
        echo_notes(corpus.notes)
        stats = corpus_stats(corpus)
        if as_json:
            click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))
        else:
            click.echo(("\n" if k else "") + format_stats(stats))


@corpora.command("convert")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--to", "to", type=click.Choice(["conll", "cluener", "jsonl", "spacy"]),
              required=True, help="Output format (spacy: a spaCy DocBin, needs -o).")
@click.option("--to-scheme", type=OUTPUT_SCHEME_CHOICE, default="bio", show_default=True,
              help="Tag scheme of a column-file output.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Output file (written atomically); standard output if absent.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help=FORMAT_HELP)
@click.option("--scheme", type=SCHEME_CHOICE, default=None,
              help=SCHEME_HELP + "  [default: auto]")
@click.option("--from-scheme", type=SCHEME_CHOICE, default=None, hidden=True,
              help="Old name of --scheme.")
@click.option("--lenient", is_flag=True, help=LENIENT_HELP)
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default="auto", show_default=True,
              help=TOKEN_SUFFIX_HELP)
def corpora_convert(file: str, to: str, to_scheme: str, output: str | None, fmt: str,
                    scheme: str | None, from_scheme: str | None, lenient: bool,
                    token_suffix: str) -> None:
    """Convert FILE to another format and/or tag scheme without losing a character.

    --format and --scheme describe FILE, --to and --to-scheme the output.

    \b
    Example:
      cner corpora convert train.json --to conll --to-scheme bioes -o train.bioes
      cner corpora convert corpora/sample/dev.conll --to jsonl
    """
    from cner.data.formats import convert_corpus

    if scheme is not None and from_scheme is not None and scheme != from_scheme:
        raise UsageError("--from-scheme is the old name of --scheme (the input's tag scheme); "
                         "give --scheme alone")
    report = convert_corpus(file, output, to=to, scheme=to_scheme, source_format=fmt,
                            source_scheme=scheme or from_scheme or "auto",
                            mode="lenient" if lenient else "strict",
                            out=None if output else sys.stdout, token_suffix=token_suffix)
    echo_notes(report.notes)
    if output and output != "-":
        click.echo(f"wrote {report.examples:,} examples, {report.entities:,} entities to {output}",
                   err=True)
    if report.unaligned:
        click.echo(f"warning: left out {report.unaligned} entities that do not align to spaCy's "
                   "tokens (they start or end on whitespace)", err=True)
    if report.dropped_nested:
        click.echo(f"warning: dropped {report.dropped_nested} nested entities that a column file "
                   "cannot hold (the outer entity was kept)", err=True)
