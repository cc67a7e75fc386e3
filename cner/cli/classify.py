"""`cner sentiment` and `cner glue`: train / evaluate / predict sequence classifiers.

The two groups share every option; `sentiment` defaults to the ChnSentiCorp task.
"""
from __future__ import annotations

import click

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


def _examples(model_dir, task, split, data_file, text_column, text_pair_column, label_column,
              labelled: bool):
    """The rows to evaluate or predict: a registered task's split, or a custom file read with
    the columns given (defaulting to those the model was trained with)."""
    from pathlib import Path

    from cner.config import load_config
    from cner.data.classification import read_classification_file
    from cner.data.task_registry import load_split
    from cner.models.modeldir import RUN_CONFIG

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
        label_kind="single" if kind == "pair" else kind,
        label_separator=cfg.classify.label_separator)


def make_group(name: str, default_task: str | None, group_cls) -> click.Group:
    """The ``cner sentiment`` or ``cner glue`` group: train, evaluate, predict."""
    example_task = default_task or "afqmc"
    kind = "sentiment" if default_task else "GLUE/CLUE-style"
    group = group_cls(name=name, help=(
        f"Fine-tune and apply a {kind} classifier.\n\n\b\nExample:\n  cner {name} train "
        f"--task {example_task} --output runs/{example_task}"))
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
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config key by dotted path; repeatable.")
    @click.option("--output", "-o", type=click.Path(file_okay=False),
                  help="Run directory (default: runs/<config-name>-<timestamp>/).")
    @click.option("--resume", type=click.Path(file_okay=False, exists=True),
                  help="Continue the run in this directory from its last checkpoint.")
    @click.option("--overwrite", is_flag=True, help="Replace an existing cner run in --output.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def train(config_path, task, train_file, dev_file, test_file, text_column, text_pair_column,
              label_column, kind, overrides, output, resume, overwrite, quiet):
        """Fine-tune a classifier; the best model lands in RUN_DIR/model.

        \b
        Example:
          cner sentiment train --output runs/senti --set training.max_minutes=20
          cner glue train --task none --train a.csv --dev b.csv --text-column review
        """
        _train(default_task, config_path, task, train_file, dev_file, test_file,
               (text_column, text_pair_column, label_column, kind), overrides, output, resume,
               overwrite, quiet)
    return train


def _train(default_task, config_path, task, train_file, dev_file, test_file, columns,
           overrides, output, resume, overwrite, quiet) -> None:
    from cner.cli import removing_unstarted_run
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
    @click.command("evaluate", help=(
        "Accuracy, macro-F1 (and F1/MCC or Pearson/Spearman where they apply).\n\n\b\n"
        f"Example:\n  cner {group} evaluate --model runs/{example_task}/model --task "
        f"{example_task} --split dev --json scores.json"))
    @click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False),
                  help="Model directory written by train (RUN_DIR/model).")
    @click.option("--task", default=None, help="Registered task (default: the model's).")
    @click.option("--split", default="dev", show_default=True,
                  help="Split of the registered task: train, dev or test.")
    @click.option("--data", "data_file", type=click.Path(dir_okay=False),
                  help="A labelled custom file instead of a task split.")
    @_column_options
    @click.option("--json", "json_out", type=click.Path(dir_okay=False),
                  help="Also write the scores as JSON to this file.")
    def evaluate(model_dir, task, split, data_file, text_column, text_pair_column, label_column,
                 json_out):
        import json

        from cner.cli import model_files
        from cner.fileio import check_not_input, open_output
        from cner.inference.classifier import Classifier
        from cner.metrics import format_classification_scores
        from cner.tasks.classification import evaluate_classifier

        check_not_input(json_out, [*([data_file] if data_file else []), *model_files(model_dir)])
        classifier = Classifier.load(model_dir)
        examples = _examples(model_dir, task, split, data_file, text_column, text_pair_column,
                             label_column, labelled=True)
        check_not_input(json_out, {ex.source for ex in examples if ex.source})
        scores = evaluate_classifier(classifier, examples)
        click.echo(format_classification_scores(scores))
        if json_out:
            with open_output(json_out) as handle:
                json.dump(scores, handle, indent=1)
    return evaluate


def _predict_command(group: str, example_task: str) -> click.Command:
    @click.command("predict", help=(
        "Write the predicted label and every label's probability per row (atomically)."
        f"\n\n\b\nExample:\n  cner {group} predict --model runs/{example_task}/model "
        f"--split test -o test_pred.csv\n  cner {group} predict -m runs/{example_task}/model "
        "--input rows.csv --text-column review -o out.jsonl"))
    @click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False),
                  help="Model directory written by train (RUN_DIR/model).")
    @click.option("--task", default=None, help="Registered task (default: the model's).")
    @click.option("--split", default="test", show_default=True,
                  help="Split of the registered task: train, dev or test.")
    @click.option("--input", "data_file", type=click.Path(dir_okay=False),
                  help="A custom file instead of a task split.")
    @_column_options
    @click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
                  help="Output file, written atomically.")
    @click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "json", "jsonl", "parquet"]),
                  help="Default: from the output suffix, else csv.")
    def predict(model_dir, task, split, data_file, text_column, text_pair_column, label_column,
                output, fmt):
        from cner.cli import model_files
        from cner.fileio import check_not_input
        from cner.inference.classifier import Classifier, predict_file

        inputs = [*([data_file] if data_file else []), *model_files(model_dir)]
        check_not_input(output, inputs)  # before the model is loaded
        classifier = Classifier.load(model_dir)
        examples = _examples(model_dir, task, split, data_file, text_column, text_pair_column,
                             label_column, labelled=False)
        rows = predict_file(classifier, examples, output, format=fmt,
                            inputs=[*inputs, *{ex.source for ex in examples if ex.source}])
        click.echo(f"wrote {rows:,} predictions to {output}", err=True)

    return predict
