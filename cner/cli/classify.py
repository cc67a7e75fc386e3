"""`cner sentiment` and `cner glue`: train / evaluate / predict sequence classifiers.

The two groups share every option; `sentiment` defaults to the ChnSentiCorp task.
"""
from __future__ import annotations

import click

from cner.cli.options import (MODEL_HELP, UsageError, check_device, command_help,
                              device_options, format_alias_note, model_files, output_format,
                              output_format_options, positional_or_alias, removing_unstarted_run,
                              run_options)
from cner.errors import ConfigError


def _data_overrides(task, train, dev, test, text_column, text_pair_column, label_column, kind):
    if train is not None:  # custom files: no NER sample defaults for the splits not given
        dev = "null" if dev is None else dev
        test = "null" if test is None else test
    pairs = [("classify.task", task), ("data.train", train), ("data.dev", dev), ("data.test", test),
             ("classify.text_column", text_column), ("classify.text_pair_column", text_pair_column),
             ("classify.label_column", label_column), ("classify.kind", kind)]
    return [f"{k}={v}" for k, v in pairs if v is not None]


def _column_options(func):
    for option in reversed([
        click.option("--text-column", help="Text column of a custom file (default: text)."),
        click.option("--text-pair-column", help="Second text column (sentence-pair tasks)."),
        click.option("--label-column", help="Label column of a custom file (default: label)."),
    ]):
        func = option(func)
    return func


def _apply_options(command_options: dict):
    """The options that evaluate and predict share: the file argument (``DATA`` / ``INPUT``,
    with its old option name hidden), the model, the task split, the columns, the device."""
    def decorate(func):
        for option in reversed([
            click.argument("data_file", metavar=f"[{command_options['metavar']}]", required=False,
                           type=click.Path(dir_okay=False)),
            click.option("--model", "-m", "model_dir", required=True,
                         type=click.Path(file_okay=False), help=MODEL_HELP),
            click.option("--task", default=None, help="Registered task (default: the model's)."),
            click.option("--split", default=command_options["split"], show_default=True,
                         help="Split of the registered task: train, dev or test."),
            click.option(command_options["alias"], "data_alias", type=click.Path(dir_okay=False),
                         hidden=True, help=f"Old name of the {command_options['metavar']} "
                                           "argument."),
            _column_options,
            device_options(),
        ]):
            func = option(func)
        return func
    return decorate


def _default_id_column(path) -> str | None:
    """``id`` when the custom file's header (JSON Lines: its first object) has that column,
    as `cner annotate` does; else ``None`` (rows are numbered)."""
    from cner.data.classification import (JSON_LINES, detect_delimiter, iter_delimited_rows,
                                          iter_json_lines)

    delimiter = detect_delimiter(path)
    rows = (iter_json_lines(path) if delimiter == JSON_LINES
            else iter_delimited_rows(path, delimiter=delimiter, quoting=True))
    try:
        first = next(rows, None)
    finally:
        rows.close()
    names = [] if first is None else [str(name).strip() for name in first[1]]
    return "id" if "id" in names else None


def _examples(model_dir, task, split, data_file, columns, labelled: bool, id_column=None):
    """The rows to evaluate or predict: a registered task's split, or a custom file read with
    the ``columns`` given (text, pair, label; defaulting to those the model was trained with)."""
    from pathlib import Path

    from cner.config import load_config
    from cner.data.classification import read_classification_file
    from cner.data.task_registry import load_split
    from cner.models.modeldir import RUN_CONFIG

    text_column, text_pair_column, label_column = columns
    saved = Path(model_dir) / RUN_CONFIG
    cfg = load_config(saved if saved.is_file() else None)
    if data_file is None:
        name = task or cfg.classify.task
        if not name:
            raise ConfigError("name a --task or give a data file with its columns")
        return load_split(name, split, root=cfg.classify.corpora_root)
    kind = cfg.classify.kind
    return read_classification_file(
        data_file, text_column=text_column or cfg.classify.text_column,
        text_pair_column=text_pair_column or cfg.classify.text_pair_column,
        label_column=(label_column or cfg.classify.label_column) if labelled else None,
        id_column=id_column, label_kind="single" if kind == "pair" else kind,
        label_separator=cfg.classify.label_separator)


def make_group(name: str, default_task: str | None) -> click.Group:
    """The ``cner sentiment`` or ``cner glue`` group: train, evaluate, predict."""
    example_task = default_task or "afqmc"
    kind = "sentiment" if default_task else "GLUE/CLUE-style"
    group = click.Group(name=name, help=command_help(
        f"Fine-tune and apply a {kind} classifier.",
        f"cner {name} train --task {example_task} --output runs/{example_task}"))
    group.add_command(_train_command(default_task))
    group.add_command(_evaluate_command(name, example_task))
    group.add_command(_predict_command(name, example_task))
    return group


def _train_command(default_task: str | None) -> click.Command:
    @click.command("train")
    @click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
                  help="YAML config (default: built-in settings).")
    @click.option("--task", default=default_task, show_default=True,
                  help="Registered task (chnsenticorp, chnsenticorp_htl, afqmc, sst2, mrpc); "
                       "'none' for custom --train/--dev files.")
    @click.option("--train", "train_file", type=click.Path(dir_okay=False),
                  help="Custom training file (.csv/.tsv/.jsonl).")
    @click.option("--dev", "dev_file", type=click.Path(dir_okay=False), help="Custom dev file.")
    @click.option("--test", "test_file", type=click.Path(dir_okay=False), help="Custom test file.")
    @_column_options
    @click.option("--kind", type=click.Choice(["single", "pair", "multilabel", "regression"]),
                  help="Custom data: the head to train.")
    @run_options
    @device_options(None, None, extra="  [config: training.{key}, default auto]")
    def train(config_path, task, train_file, dev_file, test_file, text_column, text_pair_column,
              label_column, kind, overrides, output, resume, overwrite, quiet, device,
              precision):
        """Fine-tune a classifier; the best model lands in RUN_DIR/model.

        \b
        Example:
          cner sentiment train --output runs/senti --set training.max_minutes=20
          cner glue train --task none --train a.csv --dev b.csv --text-column review
        """
        runtime = [f"training.{k}={v}" for k, v in (("device", device),
                                                      ("precision", precision)) if v]
        if resume is not None and runtime:
            raise UsageError("--resume continues a run with its saved config; drop "
                             "--device/--precision")
        check_device(device)
        _train(default_task, config_path, task, train_file, dev_file, test_file,
               (text_column, text_pair_column, label_column, kind), [*runtime, *overrides],
               output, resume, overwrite, quiet, precision)
    return train


def _train(default_task, config_path, task, train_file, dev_file, test_file, columns,
           overrides, output, resume, overwrite, quiet, precision) -> None:
    from cner.config import load_config
    from cner.metrics import format_classification_scores
    from cner.tasks.classification import train_classifier
    from cner.training.runs import default_run_dir

    config = None
    if resume is None:
        if train_file:
            task = None if task in (None, "none", default_task) else task
        task = None if task == "none" else task
        config = load_config(config_path, [
            *_data_overrides(task, train_file, dev_file, test_file, *columns), *overrides])
        if task is None and not train_file:
            raise ConfigError("give --task or --train FILE")
        if task is not None and config.classify.task is None:
            config.classify.task = task
        if precision is not None:
            check_device(config.training.device, precision, device_option="training.device")
        output = output or default_run_dir(config)
    with removing_unstarted_run(None if resume else output):
        run_dir, result = train_classifier(config, output=output, resume=resume,
                                           overwrite=overwrite, progress=not quiet)
    click.echo(f"run directory: {run_dir}  (stopped: {result.stopped_because}, "
               f"{result.state.step} steps)")
    if result.best_metrics:
        click.echo(f"best dev scores (step {result.state.best_step}):")
        click.echo(format_classification_scores(result.best_metrics))


def _evaluate_command(group: str, example_task: str) -> click.Command:
    @click.command("evaluate", help=command_help(
        "Accuracy, macro-F1 (and F1/MCC or Pearson/Spearman where they apply) on a task's "
        "split, or on the labelled custom file DATA.",
        f"cner {group} evaluate --model runs/{example_task}/model --task {example_task} "
        "--split dev --json scores.json",
        f"cner {group} evaluate -m runs/{example_task}/model rows.csv --text-column review"))
    @_apply_options({"metavar": "DATA", "alias": "--data", "split": "dev"})
    @click.option("--json", "json_out", type=click.Path(dir_okay=False),
                  help="Also write the scores as JSON to this file.")
    def evaluate(data_file, model_dir, task, split, data_alias, text_column, text_pair_column,
                 label_column, device, precision, json_out):
        import json

        from cner.fileio import check_not_input, open_output
        from cner.inference.classifier import Classifier
        from cner.metrics import format_classification_scores
        from cner.tasks.classification import evaluate_classifier

        data_file = positional_or_alias(data_file, data_alias, "DATA", "--data", required=False)
        check_not_input(json_out, [*([data_file] if data_file else []), *model_files(model_dir)])
        check_device(device, precision)
        examples = _examples(model_dir, task, split, data_file,
                             (text_column, text_pair_column, label_column), labelled=True)
        check_not_input(json_out, {ex.source for ex in examples if ex.source})
        classifier = Classifier.load(model_dir, device=device, precision=precision)
        scores = evaluate_classifier(classifier, examples)
        click.echo(format_classification_scores(scores))
        if json_out:
            with open_output(json_out) as handle:
                json.dump(scores, handle, indent=1)
    return evaluate


def _predict_command(group: str, example_task: str) -> click.Command:
    @click.command("predict", help=command_help(
        "Write the predicted label and every label's probability per row of a task's split or "
        "of the custom file INPUT (atomically), keyed by its 'id' column when it has one.",
        f"cner {group} predict --model runs/{example_task}/model --split test -o test_pred.csv",
        f"cner {group} predict -m runs/{example_task}/model rows.csv --text-column review "
        "-o out.jsonl"))
    @_apply_options({"metavar": "INPUT", "alias": "--input", "split": "test"})
    @click.option("--id-column", default=None,
                  help="Id column or key of INPUT.  [default: 'id' when present, else the row "
                       "number]")
    @click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
                  help="Output file, written atomically.")
    @output_format_options
    def predict(data_file, model_dir, task, split, data_alias, text_column, text_pair_column,
                label_column, device, precision, id_column, output, to, format_alias):
        from cner.fileio import check_not_input
        from cner.inference.classifier import Classifier, predict_file
        from cner.inference.writers import output_format as output_file_format

        data_file = positional_or_alias(data_file, data_alias, "INPUT", "--input",
                                        required=False)
        fmt = output_format(to, format_alias)
        if id_column is not None and data_file is None:
            raise UsageError("--id-column names a column of INPUT; give the file")
        inputs = [*([data_file] if data_file else []), *model_files(model_dir)]
        check_not_input(output, inputs)  # all of these before the model is loaded
        output_file_format(output, fmt)
        check_device(device, precision)
        examples = _examples(model_dir, task, split, data_file,
                             (text_column, text_pair_column, label_column), labelled=False,
                             id_column=id_column or (data_file and _default_id_column(data_file)))
        classifier = Classifier.load(model_dir, device=device, precision=precision)
        rows = predict_file(classifier, examples, output, format=fmt,
                            inputs=[*inputs, *{ex.source for ex in examples if ex.source}])
        click.echo(f"wrote {rows:,} predictions to {output}", err=True)
        format_alias_note(format_alias)

    return predict
