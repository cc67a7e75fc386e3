"""`cner train`, `cner evaluate` and `cner annotate`: the NER commands."""
from __future__ import annotations

import json
from pathlib import Path

import click

from cner.cli.insight import insight_options
from cner.cli.options import (BATCH_SIZE, FORMAT_CHOICE, FORMAT_HELP, LENIENT_HELP, MODEL_HELP,
                              TOKEN_SUFFIX_CHOICE, TOKEN_SUFFIX_HELP, UsageError, check_device,
                              device_options, format_alias_note, model_files, output_format,
                              output_format_options, positional_or_alias, removing_unstarted_run,
                              run_options)


def _train_overrides(train_file, dev_file, test_file, lenient, token_suffix, device, precision,
                     own_config: bool) -> list[str]:
    """The ``--set`` overrides that the data and device options stand for."""
    extra = [f"{k}={v}" for k, v in (
        ("data.train", train_file), ("data.dev", dev_file), ("data.test", test_file),
        ("data.lenient", "true" if lenient else None), ("data.token_suffix", token_suffix),
        ("training.device", device), ("training.precision", precision)) if v]
    if train_file and not own_config:
        # The built-in defaults name the sample corpus's dev and test files: a user's own
        # training file is evaluated on a seeded 10% of itself instead, not on the sample.
        extra += [f"data.{k}=null" for k, v in (("dev", dev_file), ("test", test_file))
                  if not v]
        extra += [] if dev_file else ["data.dev_fraction=0.1"]
    return extra


def echo_train_result(run_dir: Path, result, format_scores) -> None:
    """What `cner train` prints at the end: the run, the best dev scores, and the test scores
    the run computed (``summary.json``'s ``test``)."""
    click.echo(f"run directory: {run_dir}  (stopped: {result.stopped_because}, "
               f"{result.state.step} steps)")
    if result.best_metrics:
        click.echo(f"best dev scores (step {result.state.best_step}):")
        click.echo(format_scores(result.best_metrics))
    echo_test_scores(run_dir, format_scores)


def echo_test_scores(run_dir: Path, format_scores) -> None:
    """The test scores of a run's best model, when the run computed them (``summary.json``'s
    ``test``: `cner train` and `cner distill` with ``data.test``)."""
    try:
        test = json.loads((run_dir / "summary.json").read_text("utf-8")).get("test")
    except (OSError, ValueError, AttributeError):
        test = None
    if test:
        click.echo("test scores (best model):")
        click.echo(format_scores(test))


@click.command("train")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config (default: configs/tiny-cpu.yaml's settings built in).")
@click.option("--train", "train_file", type=click.Path(dir_okay=False), help="Training corpus.")
@click.option("--dev", "dev_file", type=click.Path(dir_okay=False),
              help="Dev corpus.  [default: the config's; with --train and no --config, a seeded "
                   "10% of the training file]")
@click.option("--test", "test_file", type=click.Path(dir_okay=False),
              help="Test corpus, scored at the end.  [default: the config's; none with --train "
                   "and no --config]")
@run_options
@click.option("--lenient", is_flag=True, help=LENIENT_HELP + "  [config: data.lenient]")
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default=None,
              help=TOKEN_SUFFIX_HELP + "  [config: data.token_suffix, default auto]")
@device_options(None, None, extra="  [config: training.{key}, default auto]")
def train_command(config_path, train_file, dev_file, test_file, output, overrides, resume,
                  overwrite, quiet, lenient, token_suffix, device, precision):
    """Train a character-level BERT+CRF tagger; the best model lands in RUN_DIR/model.

    \b
    Example:
      cner train --config configs/tiny-cpu.yaml --output runs/tiny
      cner train -c configs/msra-small-cpu.yaml --set training.epochs=3 --device cuda
      cner train --resume runs/tiny            # after a crash or kill -9
      cner train --train weibo.train --dev weibo.dev --lenient --token-suffix position
    """
    from cner.config import load_config
    from cner.metrics import format_scores
    from cner.tasks.ner import train_ner
    from cner.training.runs import default_run_dir

    config = None
    if resume is None:
        check_device(device)  # the option named, before the config's own checks
        config = load_config(config_path, [
            *_train_overrides(train_file, dev_file, test_file, lenient, token_suffix, device,
                              precision, own_config=config_path is not None), *overrides])
        if precision is not None:
            check_device(config.training.device, precision, device_option="training.device")
        output = output or default_run_dir(config)
    elif (config_path or overrides or train_file or dev_file or test_file or lenient
          or token_suffix or device or precision):
        raise UsageError("--resume continues a run with its saved config; drop --config/--set/"
                         "--train/--dev/--test/--lenient/--token-suffix/--device/--precision")
    with removing_unstarted_run(None if resume else output):
        run_dir, result = train_ner(config, output=output, resume=resume, overwrite=overwrite,
                                    progress=not quiet)
    echo_train_result(run_dir, result, format_scores)
    click.echo(f"model: {run_dir / 'model'}")
    from cner.cli.insight import write_run_curves

    write_run_curves(run_dir)


@click.command("evaluate")
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False),
              help=MODEL_HELP)
@click.option("--data", "-d", "data_alias", type=click.Path(dir_okay=False), hidden=True,
              help="Old name of the DATA argument.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help=FORMAT_HELP)
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the scores as JSON to this file.")
@click.option("--batch-size", type=BATCH_SIZE, default=64, show_default=True,
              help="Rows per model call (a row: one window of a text, or several short "
                   "ones with a BERT-type encoder).")
@click.option("--lenient", is_flag=True, help=LENIENT_HELP)
@click.option("--token-suffix", type=TOKEN_SUFFIX_CHOICE, default="auto", show_default=True,
              help=TOKEN_SUFFIX_HELP)
@device_options()
@insight_options
def evaluate_command(data, model_dir, data_alias, fmt, json_out, batch_size, lenient,
                     token_suffix, device, precision, **insight):
    """Strict entity-level precision, recall and F1 per type, micro and macro averaged, of the
    model on the labelled corpus DATA, and how well the entity scores predict correctness
    (calibration error; precision and recall at score thresholds, for annotate --min-score).

    \b
    Example:
      cner evaluate --model runs/tiny/model corpora/sample/test.conll --json scores.json
      cner evaluate -m runs/tiny/model test.conll --errors --examples errors.jsonl
      cner evaluate -m runs/msra/model msra_test.conll --probe names --train msra_train.conll
      cner evaluate -m runs/tiny/model test.conll --report report/   # report/report.html
    """
    from cner.cli.insight import check_insight, echo_insight
    from cner.fileio import check_not_input, open_output
    from cner.insight.evaluation import evaluate_corpus
    from cner.metrics import format_scores

    data = positional_or_alias(data, data_alias, "DATA", "--data")
    check_not_input(json_out, [data, *model_files(model_dir)])
    check_device(device, precision)
    check_insight(insight, data, model_dir)
    run = evaluate_corpus(model_dir, data, format=fmt, batch_size=batch_size,
                          mode="lenient" if lenient else "strict", token_suffix=token_suffix,
                          device=device, precision=precision)
    click.echo(format_scores(run.scores))
    extra = echo_insight(run, insight)  # --errors / --probe: their figures join the JSON
    if json_out:
        with open_output(json_out) as handle:
            json.dump({**run.scores, **extra}, handle, indent=1)


@click.command("annotate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False),
              help=MODEL_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Output file, written atomically; standard output if absent.")
@output_format_options
@click.option("--batch-size", type=BATCH_SIZE, default=64, show_default=True,
              help="Rows per model call (a row: one window of a text, or several short "
                   "ones with a BERT-type encoder).")
@click.option("--text-column", default="text", show_default=True,
              help="Text column (.csv/.tsv/.parquet) or key (.jsonl).")
@click.option("--id-column", default=None,
              help="Id column or key.  [default: 'id' when present, else the line/row number]")
@click.option("--decode-errors", "--errors", "errors", type=click.Choice(["strict", "replace"]),
              default="strict", show_default=True,
              help="Invalid UTF-8: fail with its location, or use U+FFFD.  (--errors, its old "
                   "name, is the error analysis on evaluate.)")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from OUTPUT.partial (needs --output).")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None,
              help="Drop the entities scored below this (cner evaluate prints precision and "
                   "recall at thresholds, and the one with the best F1).")
@device_options()
@click.option("--compile/--no-compile", "compile_model", default=None,
              help="Compile the encoder with TorchInductor first (15-60 s on CPU), then "
                   "annotate 1.05-1.2x faster.  [default: compile a transformer on CPU when "
                   "the input files are large enough to pay it back, e.g. 5 MB for bert-base]")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch",
              show_default=True,
              help='onnx: run the encoder exported by cner export --onnx (MODEL_DIR/onnx/'
                   'model.onnx; a missing or stale export is an error saying to run it) '
                   'through onnxruntime, fp32 on the CPU (pip install "cner[onnx]").')
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help='ray: annotate on Ray Data actors (pip install '
              '"cner[ray]"), the same output file.')
@click.option("--workers", type=click.IntRange(1), default=None,
              help="--engine ray: actors.  [default: the cluster's CPUs]")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="--engine ray: torch threads per actor.  [default: 1]")
@click.option("--address", default=None,
              help="--engine ray: a running cluster (ray start --head; 'auto').  [default: a "
                   "local Ray]")
def annotate_command(inputs, model_dir, output, to, format_alias, batch_size, text_column,
                     id_column, errors, resume, min_score, device, precision, compile_model,
                     backend, engine, workers, threads, address):
    """Find the entities in each document of INPUT... (.txt: one document per line; .jsonl;
    .csv/.tsv; .parquet; .gz/.bz2/.xz of the text formats; - for standard input) and write
    CSV, TSV, JSON, JSONL or Parquet (from the --output suffix or --to).

    With several inputs every doc_id is prefixed with 'INPUT:'.

    \b
    Example:
      cner annotate corpora/sample/news.txt --model runs/tiny/model --output news.csv
      cner annotate docs.jsonl table.csv --model runs/tiny/model -o entities.jsonl --resume
      cat news.txt | cner annotate - --model runs/tiny/model --to json
      cner annotate news.txt --model runs/tiny/model --backend onnx -o news.csv
    """
    from cner.inference.annotate import annotate_files

    fmt = output_format(to, format_alias)
    if engine == "ray":
        ignored = [name for name, given in (("--resume", resume), ("--compile/--no-compile",
                   compile_model is not None), ("--device", device != "cpu"),
                   ("--precision", precision != "auto"), ("--backend", backend != "torch"))
                   if given]
        if ignored:  # each actor loads the model as Tagger.load does by default
            raise UsageError(f"--engine ray does not take {', '.join(ignored)}; drop them, or "
                             "annotate with the local engine")
        from cner.distributed import annotate_files as annotate_on_ray

        done = annotate_on_ray(inputs, model_dir, output=output, format=fmt,
                               batch_size=batch_size, text_column=text_column,
                               id_column=id_column, errors=errors, min_score=min_score,
                               workers=workers, threads=threads, address=address)
        click.echo(f"annotated {done['documents']:,} documents, {done['entities']:,} entities "
                   f"in {done['seconds']:.1f} s on Ray; wrote {output}", err=True)
        return
    if threads is not None:
        raise UsageError("--threads is for --engine ray (torch threads per actor); the local "
                         "engine uses torch's default (set OMP_NUM_THREADS to change it)")
    check_device(device, precision)  # here, so that the errors name the options
    report = annotate_files(inputs, model_dir, output=output, format=fmt, batch_size=batch_size,
                            text_column=text_column, id_column=id_column, errors=errors,
                            resume=resume, device=device, precision=precision,
                            compile=compile_model, min_score=min_score, backend=backend)
    if output:
        click.echo(f"{report.summary()}; wrote {output}", err=True)
    format_alias_note(format_alias)
