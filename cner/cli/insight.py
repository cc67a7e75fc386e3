"""The options of `cner evaluate` that explain a model (``--errors``, ``--examples``,
``--probe``, ``--report``), `cner annotate --min-score`, and the ``curves.png`` that
`cner train` draws at the end; the library side is `cner.insight`.

Importing this module imports click only.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from cner.cli.options import UsageError, model_files
from cner.insight import PLOTS_HINT

PROBE_CHOICE = click.Choice(["names"])  # cner.insight.probe.PROBES
# The probe's options, which mean nothing without --probe.
PROBE_OPTIONS = (("types", "--types"), ("seed", "--seed"), ("probe_train", "--train"),
                 ("mentions", "--mentions"))


def insight_options(func):
    """``--errors``, ``--examples``, ``--probe`` (with ``--types``, ``--seed``, ``--train``,
    ``--mentions``) and ``--report`` of `cner evaluate`."""
    for option in reversed([
        click.option("--errors", "errors", is_flag=True,
                     help="Also print the error breakdown per type: every gold and predicted "
                          "entity classed as correct, wrong type, wrong boundary, wrong "
                          "boundary and type, missed or spurious."),
        click.option("--examples", "examples_out", type=click.Path(dir_okay=False),
                     help="Write every error with its context as a JSON line to this file "
                          "(implies --errors)."),
        click.option("--probe", type=PROBE_CHOICE, default=None,
                     help="Memorisation probe: replace every gold mention of --types by a "
                          "synthetic one (names: a common surname and a one- or two-character "
                          "given name) and score again, F1 per type before and after."),
        click.option("--types", multiple=True, metavar="TYPE[,TYPE]",
                     help="Entity types the probe replaces; repeatable.  [default: the "
                          "person-name types: PER, PERSON, NR, PER.NAM...]"),
        click.option("--seed", type=int, default=None,
                     help="Seed of the probe's draws.  [default: 0]"),
        click.option("--train", "probe_train", type=click.Path(dir_okay=False),
                     help="Training corpus of the model: the probe never makes up a name seen "
                          "in it and draws the other types' replacements from its mentions."),
        click.option("--mentions", type=click.Path(dir_okay=False),
                     help="TYPE<TAB>MENTION lines the probe draws replacements from (before "
                          "made-up names and --train's mentions)."),
        click.option("--report", "report_dir", type=click.Path(file_okay=False),
                     help="Write DIR/report.html (one self-contained page: tables, pictures, "
                          "the sentences with the most errors highlighted) and "
                          f"DIR/report.json.  Needs matplotlib: {PLOTS_HINT}"),
    ]):
        func = option(func)
    return func


def check_insight(options: dict, data: str, model_dir: str) -> None:
    """Refuse what contradicts itself before the model loads: probe options without
    ``--probe``, an output naming an input, ``--report`` without matplotlib."""
    given = [name for key, name in PROBE_OPTIONS if options[key] not in (None, ())]
    if given and options["probe"] is None:
        raise UsageError(f"{', '.join(given)} only tune the probe: add --probe names")
    from cner.fileio import check_not_input

    inputs = [data, *model_files(model_dir),
              *(p for p in (options["probe_train"], options["mentions"]) if p)]
    check_not_input(options["examples_out"], inputs)
    if options["report_dir"]:
        from cner.insight.plots import require_matplotlib

        require_matplotlib()
        for name in ("report.html", "report.json"):
            check_not_input(str(Path(options["report_dir"]) / name), inputs)


def _types(values: Sequence[str]) -> list[str] | None:
    types = [t.strip() for value in values for t in value.split(",") if t.strip()]
    return types or None


def echo_insight(run, options: dict) -> dict:
    """Print the calibration, and what ``options`` ask for (error tables, probe table);
    write the examples file and the report. Returns the JSON keys for ``--json``
    (``errors``, ``probe``)."""
    from cner.insight.calibration import format_calibration

    extra = {}
    calibration = run.calibration()
    click.echo("")
    click.echo(format_calibration(calibration))
    analysis = None
    if options["errors"] or options["examples_out"] or options["report_dir"]:
        analysis = run.errors()
    if options["errors"] or options["examples_out"]:
        click.echo("")
        click.echo(analysis.format())
        extra["errors"] = analysis.to_dict()
    if options["examples_out"]:
        from cner.fileio import open_output

        with open_output(options["examples_out"]) as handle:
            for row in analysis.event_rows():
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        click.echo(f"wrote {analysis.n_events()} errors to {options['examples_out']}", err=True)
    probe = None
    if options["probe"]:
        probe = _run_probe(run, options)
        click.echo("")
        from cner.insight.probe import format_probe

        click.echo(format_probe(probe))
        extra["probe"] = probe
    if options["report_dir"]:
        from cner.insight.report import write_report

        page = write_report(options["report_dir"], scores=run.scores, analysis=analysis,
                            calibration=calibration, probe=probe, model=run.model, data=run.data)
        click.echo(f"wrote {page}", err=True)
    return extra


def _run_probe(run, options: dict) -> dict:
    from cner.insight.evaluation import read_examples
    from cner.insight.probe import read_mention_list

    train = read_examples(options["probe_train"]) if options["probe_train"] else ()
    mentions = read_mention_list(options["mentions"]) if options["mentions"] else None
    return run.probe(options["probe"], types=_types(options["types"]),
                     seed=options["seed"] or 0, train=train, mentions=mentions)


def write_run_curves(run_dir: Path) -> None:
    """`cner train`'s last step: ``RUN_DIR/curves.png``, or a one-line note why not (no
    matplotlib, no log): a finished run never fails for its picture."""
    from cner.insight.plots import have_matplotlib, write_curves

    if not have_matplotlib():
        click.echo(f"note: no curves.png: drawing it needs matplotlib ({PLOTS_HINT})", err=True)
        return
    try:
        path = write_curves(run_dir)
    except Exception as exc:  # noqa: BLE001 - the model is saved; the picture is a bonus
        click.echo(f"note: no curves.png: {exc}", err=True)
        return
    click.echo(f"curves: {path}")


__all__ = ["check_insight", "echo_insight", "insight_options", "write_run_curves"]
