"""The `cner` command line: each command parses options and calls one library function.

`CnerGroup` is the one place that turns the project's errors into a one-line failure with
exit status 2; nothing below the CLI exits the process.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from cner.errors import CnerError


class UsageError(CnerError):
    """Options that contradict each other."""


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


@contextlib.contextmanager
def removing_unstarted_run(run_dir: str | Path | None):
    """A training command that fails before its run wrote anything leaves no directory
    behind: ``run_dir``, if this command created it and it holds only cner's run marker,
    is removed (``None``: a resumed run, left alone)."""
    from cner.training.runs import RUN_MARKER

    made = []  # run_dir and the parents this command is about to create, innermost first
    for path in ([] if run_dir is None else [Path(run_dir), *Path(run_dir).parents]):
        if os.path.lexists(path):
            break
        made.append(path)
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            if made and os.listdir(made[0]) == [RUN_MARKER]:
                os.unlink(made[0] / RUN_MARKER)
            for path in made:
                os.rmdir(path)  # only empty ones: stops at the first that is not
        raise


def model_files(model_dir: str | os.PathLike) -> list[Path]:
    """The files of a model directory: inputs that no output may replace."""
    path = Path(model_dir)
    return [p for p in path.iterdir() if p.is_file()] if path.is_dir() else []


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


FORMAT_CHOICE = click.Choice(["auto", "conll", "cluener", "jsonl"])
SCHEME_CHOICE = click.Choice(["auto", "bio", "iob1", "bioes", "bmes", "bilou"])
TOKEN_SUFFIX_CHOICE = click.Choice(["auto", "position", "none"])  # cner.data.conll.TOKEN_SUFFIXES
TOKEN_SUFFIX_HELP = ("Column files: 'position' when each token is a character followed by its "
                     "word position (Weibo NER: 科0), 'none' to read each token as written (a "
                     "multi-character token as a word), 'auto' to read one character per token "
                     "and detect positions.")
LENIENT_HELP = "Repair invalid tag transitions (conlleval convention) instead of failing."


def echo_notes(notes) -> None:
    """What reading a corpus noticed or repaired: one ``note:`` line each on stderr."""
    for note in notes:
        click.echo(f"note: {note}", err=True)


@corpora.command("stats")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Input format.")
@click.option("--scheme", type=SCHEME_CHOICE, default="auto", show_default=True,
              help="Tag scheme of column files.")
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
@click.option("--scheme", type=click.Choice(["bio", "iob1", "bioes", "bmes", "bilou"]),
              default="bio", show_default=True, help="Tag scheme of a column-file output.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Output file (written atomically); standard output if absent.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Input format.")
@click.option("--from-scheme", type=SCHEME_CHOICE, default="auto", show_default=True,
              help="Tag scheme of a column-file input.")
@click.option("--lenient", is_flag=True, help=LENIENT_HELP)
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default="auto", show_default=True,
              help=TOKEN_SUFFIX_HELP)
def corpora_convert(file: str, to: str, scheme: str, output: str | None, fmt: str,
                    from_scheme: str, lenient: bool, token_suffix: str) -> None:
    """Convert FILE to another format and/or tag scheme without losing a character.

    \b
    Example:
      cner corpora convert train.json --to conll --scheme bioes -o train.bioes
      cner corpora convert corpora/sample/dev.conll --to jsonl
    """
    from cner.data.formats import convert_corpus

    report = convert_corpus(file, output, to=to, scheme=scheme, source_format=fmt,
                            source_scheme=from_scheme, mode="lenient" if lenient else "strict",
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


@main.command("train")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config (default: configs/tiny-cpu.yaml's settings built in).")
@click.option("--train", "train_file", type=click.Path(dir_okay=False), help="Training corpus.")
@click.option("--dev", "dev_file", type=click.Path(dir_okay=False),
              help="Dev corpus.  [default: the config's; with --train and no --config, a seeded "
                   "10% of the training file]")
@click.option("--test", "test_file", type=click.Path(dir_okay=False),
              help="Test corpus, scored at the end.  [default: the config's; none with --train "
                   "and no --config]")
@click.option("--output", "-o", type=click.Path(file_okay=False),
              help="Run directory (default: runs/<config-name>-<timestamp>/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key by dotted path; repeatable.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True),
              help="Continue the run in this directory from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--lenient", is_flag=True, help=LENIENT_HELP + "  [config: data.lenient]")
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default=None,
              help=TOKEN_SUFFIX_HELP + "  [config: data.token_suffix, default auto]")
def train_command(config_path, train_file, dev_file, test_file, output, overrides, resume,
                  overwrite, quiet, lenient, token_suffix):
    """Train a character-level BERT+CRF tagger; the best model lands in RUN_DIR/model.

    \b
    Example:
      cner train --config configs/tiny-cpu.yaml --output runs/tiny
      cner train -c configs/msra-small-cpu.yaml --set training.epochs=3
      cner train --resume runs/tiny            # after a crash or kill -9
      cner train --train weibo.train --dev weibo.dev --lenient --token-suffix position
    """
    from cner.config import load_config
    from cner.metrics import format_scores
    from cner.tasks.ner import train_ner
    from cner.training.runs import default_run_dir

    config = None
    if resume is None:
        extra = [f"data.{k}={v}" for k, v in (("train", train_file), ("dev", dev_file),
                                              ("test", test_file),
                                              ("lenient", "true" if lenient else None),
                                              ("token_suffix", token_suffix)) if v]
        if train_file and config_path is None:
            # The built-in defaults name the sample corpus's dev and test files: a user's own
            # training file is evaluated on a seeded 10% of itself instead, not on the sample.
            extra += [f"data.{k}=null" for k, v in (("dev", dev_file), ("test", test_file))
                      if not v]
            extra += [] if dev_file else ["data.dev_fraction=0.1"]
        config = load_config(config_path, [*extra, *overrides])
        output = output or default_run_dir(config)
    elif (config_path or overrides or train_file or dev_file or test_file or lenient
          or token_suffix):
        raise UsageError("--resume continues a run with its saved config; drop --config/--set/"
                         "--train/--dev/--test/--lenient/--token-suffix")
    with removing_unstarted_run(None if resume else output):
        run_dir, result = train_ner(config, output=output, resume=resume, overwrite=overwrite,
                                    progress=not quiet)
    click.echo(f"run directory: {run_dir}  (stopped: {result.stopped_because}, "
               f"{result.state.step} steps)")
    if result.best_metrics:
        click.echo(f"best dev scores (step {result.state.best_step}):")
        click.echo(format_scores(result.best_metrics))
    click.echo(f"model: {run_dir / 'model'}")


@main.command("evaluate")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory written by cner train (RUN_DIR/model).")
@click.option("--data", "-d", required=True, type=click.Path(dir_okay=False),
              help="Labelled corpus in any format cner reads.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the scores as JSON to this file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lenient", is_flag=True, help=LENIENT_HELP)
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default="auto", show_default=True,
              help=TOKEN_SUFFIX_HELP)
def evaluate_command(model_dir, data, fmt, json_out, batch_size, lenient, token_suffix):
    """Strict entity-level precision, recall and F1 per type, micro and macro averaged.

    \b
    Example:
      cner evaluate --model runs/tiny/model --data corpora/sample/test.conll --json scores.json
    """
    import json

    from cner.fileio import check_not_input, open_output
    from cner.metrics import format_scores
    from cner.tasks.ner import evaluate_ner

    check_not_input(json_out, [data, *model_files(model_dir)])
    scores = evaluate_ner(model_dir, data, format=fmt, batch_size=batch_size,
                          mode="lenient" if lenient else "strict", token_suffix=token_suffix)
    click.echo(format_scores(scores))
    if json_out:
        with open_output(json_out) as handle:
            json.dump(scores, handle, indent=1)


@main.command("annotate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory written by cner train (RUN_DIR/model).")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Output file, written atomically; standard output if absent.")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "json", "jsonl", "parquet"]),
              default=None,
              help="Output format.  [default: from the --output suffix, else csv]")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Windows per model call.")
@click.option("--text-column", default="text", show_default=True,
              help="Text column (.csv/.tsv) or key (.jsonl).")
@click.option("--id-column", default=None,
              help="Id column or key.  [default: 'id' when present, else the line/row number]")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict",
              show_default=True, help="Invalid UTF-8: fail with its location, or use U+FFFD.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from OUTPUT.partial (needs --output).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              show_default=True, help="auto: bf16 where the hardware has it (about 2x fp32 on "
                                      "a bf16 CPU), else fp32.")
@click.option("--compile/--no-compile", "compile_model", default=None,
              help="Compile the encoder with TorchInductor first (15-60 s on CPU), then "
                   "annotate 1.05-1.2x faster.  [default: compile a transformer on CPU when "
                   "the input files are large enough to pay it back, e.g. 5 MB for bert-base]")
def annotate_command(inputs, model_dir, output, fmt, batch_size, text_column, id_column, errors,
                     resume, device, precision, compile_model):
    """Find the entities in each document of INPUT... (.txt: one document per line; .jsonl;
    .csv/.tsv; .parquet; .gz/.bz2/.xz of the text formats; - for standard input) and write
    CSV, TSV, JSON, JSONL or Parquet (from the --output suffix or --format).

    With several inputs every doc_id is prefixed with 'INPUT:'.

    \b
    Example:
      cner annotate corpora/sample/news.txt --model runs/tiny/model --output news.csv
      cner annotate docs.jsonl table.csv --model runs/tiny/model -o entities.jsonl --resume
      cat news.txt | cner annotate - --model runs/tiny/model --format json
    """
    from cner.inference.annotate import annotate_files
    from cner.runtime.devices import resolve_device, resolve_precision

    # checked here so that the errors name the options, not the library's arguments
    resolve_precision(precision, resolve_device(device, option="--device"), option="--precision")
    report = annotate_files(inputs, model_dir, output=output, format=fmt, batch_size=batch_size,
                            text_column=text_column, id_column=id_column, errors=errors,
                            resume=resume, device=device, precision=precision,
                            compile=compile_model)
    if output:
        click.echo(f"{report.summary()}; wrote {output}", err=True)


def _register_classification() -> None:
    from cner.cli.classify import make_group

    main.add_command(make_group("sentiment", "chnsenticorp", CnerGroup))
    main.add_command(make_group("glue", None, CnerGroup))


_register_classification()
from cner.cli.hub import push_command  # noqa: E402  (click only)
main.add_command(push_command)
from cner.cli.info import info_command  # noqa: E402  (click only: torch loads when it runs)
main.add_command(info_command)


if __name__ == "__main__":
    main()
