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

    saved = Path(model_dir) / "cner_config.yaml"
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
    example_task = default_task or "afqmc"

    @click.group(name=name, cls=group_cls,
                 help=f"Fine-tune and apply a {'sentiment' if default_task else 'GLUE/CLUE-style'} "
                      f"classifier.\n\n\b\nExample:\n  cner {name} train --task {example_task} "
                      f"--output runs/{example_task}")
    def group() -> None:
        pass

    @group.command("train")
    @click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False))
    @click.option("--task", default=default_task, show_default=True,
                  help="Registered task (chnsenticorp, chnsenticorp_htl, afqmc, sst2, mrpc); "
                       "'none' for custom --train/--dev files.")
    @click.option("--train", "train_file", type=click.Path(dir_okay=False))
    @click.option("--dev", "dev_file", type=click.Path(dir_okay=False))
    @click.option("--test", "test_file", type=click.Path(dir_okay=False))
    @_column_options
    @click.option("--kind", type=click.Choice(["single", "pair", "multilabel", "regression"]),
                  help="Custom data: the head to train.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
    @click.option("--output", "-o", type=click.Path(file_okay=False))
    @click.option("--resume", type=click.Path(file_okay=False, exists=True))
    @click.option("--overwrite", is_flag=True)
    @click.option("--quiet", "-q", is_flag=True)
    def train(config_path, task, train_file, dev_file, test_file, text_column, text_pair_column,
              label_column, kind, overrides, output, resume, overwrite, quiet):
        """Fine-tune a classifier; the best model lands in RUN_DIR/model.

        \b
        Example:
          cner sentiment train --output runs/senti --set training.max_minutes=20
          cner glue train --task none --train a.csv --dev b.csv --text-column review
        """
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
                *_data_overrides(task, train_file, dev_file, test_file, text_column,
                                 text_pair_column, label_column, kind), *overrides])
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

    @group.command("evaluate")
    @click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False))
    @click.option("--task", default=None, help="Registered task (default: the model's).")
    @click.option("--split", default="dev", show_default=True)
    @click.option("--data", "data_file", type=click.Path(dir_okay=False),
                  help="A labelled custom file instead of a task split.")
    @_column_options
    @click.option("--json", "json_out", type=click.Path(dir_okay=False))
    def evaluate(model_dir, task, split, data_file, text_column, text_pair_column, label_column,
                 json_out):
        """Accuracy, macro-F1 (and F1/MCC or Pearson/Spearman where they apply).

        \b
        Example:
          cner glue evaluate --model runs/afqmc/model --task afqmc --split dev
        """
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

    @group.command("predict")
    @click.option("--model", "-m", "model_dir", required=True, type=click.Path(file_okay=False))
    @click.option("--task", default=None, help="Registered task (default: the model's).")
    @click.option("--split", default="test", show_default=True)
    @click.option("--input", "data_file", type=click.Path(dir_okay=False),
                  help="A custom file instead of a task split.")
    @_column_options
    @click.option("--output", "-o", required=True, type=click.Path(dir_okay=False))
    @click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]),
                  help="Default: from the output suffix, else csv.")
    def predict(model_dir, task, split, data_file, text_column, text_pair_column, label_column,
                output, fmt):
        """Write the predicted label and every label's probability per row (atomically).

        \b
        Example:
          cner sentiment predict --model runs/senti/model --split test -o test_pred.csv
          cner glue predict -m runs/afqmc/model --input pairs.tsv --text-column 0 -o out.jsonl
        """
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

    return group
