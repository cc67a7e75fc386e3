"""`cner distill`: train a small, fast student tagger on a teacher's soft targets."""
from __future__ import annotations

import click

from cner.cli.options import check_device, device_options, removing_unstarted_run, run_options


@click.command("distill")
@click.option("--teacher", "-m", default=None,
              help="The teacher: a cner NER model directory (RUN_DIR/model), or a hub id "
                   "owner/name.")
@click.option("--text", "-t", "texts", multiple=True, type=click.Path(dir_okay=False),
              help="Raw text for the teacher to annotate: one text per line (blank lines "
                   "allowed; .gz/.bz2/.xz too); repeatable.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config: the student (model:), its training and the distill: "
                   "section (configs/distill-tiny.yaml, distill-msra-cpu.yaml).")
@run_options
@device_options(None, None, extra="  [config: training.{key}, default auto]")
def distill_command(teacher, texts, config_path, output, overrides, resume, overwrite, quiet,
                    device, precision) -> None:
    """Distil a teacher NER model into a student: the teacher annotates the --text lines
    (and data.train) once, its per-character CRF marginals (at distill.temperature) are
    cached in the run, and the student the config describes learns them, with the gold
    tags of data.train weighted by 1 - distill.alpha. It is scored on data.dev and by its
    agreement with the teacher on held-out text; the best student lands in RUN_DIR/model.

    \b
    Example:
      cner distill --teacher runs/tiny/model --text corpora/sample/news.txt \\
          -c configs/distill-tiny.yaml -o runs/student
      cner distill --resume runs/student              # after a crash or kill -9
      cner annotate corpora/sample/news.txt -m runs/student/model -o news.csv
    """
    from cner.cli import UsageError
    from cner.cli.ner import echo_test_scores
    from cner.config import load_config
    from cner.metrics import format_scores
    from cner.tasks.distill import MODEL, distill
    from cner.training.runs import default_run_dir

    config = None
    if resume is None:
        if teacher is None:
            raise UsageError("give --teacher MODEL_DIR (the model to distil) or --resume RUN_DIR")
        check_device(device)
        extra = [f"{key}={value}" for key, value in (
            ("training.device", device), ("training.precision", precision)) if value]
        config = load_config(config_path, [*extra, *overrides])
        if precision is not None:
            check_device(config.training.device, precision, device_option="training.device")
        output = output or default_run_dir(config)
    elif teacher or texts or config_path or overrides or device or precision:
        raise UsageError("--resume continues a run with its saved config, teacher and text; "
                         "drop --teacher/--text/--config/--set/--device/--precision")
    with removing_unstarted_run(None if resume else output):
        run_dir, result = distill(config, teacher=teacher, text=texts, output=output,
                                  resume=resume, overwrite=overwrite, progress=not quiet)
    click.echo(f"run directory: {run_dir}  (stopped: {result.stopped_because}, "
               f"{result.state.step} steps)")
    best = result.best_metrics
    if "f1" in best:
        click.echo(f"best dev scores (step {result.state.best_step}):")
        click.echo(format_scores(best))
    if "agreement_f1" in best:
        click.echo(f"agreement with the teacher on held-out text: F1 {best['agreement_f1']:.4f} "
                   f"(P {best['agreement_precision']:.4f}, R {best['agreement_recall']:.4f})")
    echo_test_scores(run_dir, format_scores)
    click.echo(f"student: {run_dir / MODEL}")
