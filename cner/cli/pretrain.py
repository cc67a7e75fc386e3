"""`cner pretrain`, `cner vocab build` and `cner corpora text`: pre-training an encoder.

`register(main)` adds ``pretrain`` and the ``vocab`` group to the ``cner`` group and ``text``
to its ``corpora`` group (wherever that group is defined).
"""
from __future__ import annotations

import click

from cner.cli.options import check_device, device_options, removing_unstarted_run, run_options

EXCLUDE_HELP = ("Leave out every line that also occurs in this file (a dev or test split; "
                "a file or TASK:SPLIT), compared after the same normalisation; repeatable.")


@click.command("text")
@click.argument("files", nargs=-1, required=True)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Text file to write (atomically), one sentence or document per line; - "
                   "for standard output.")
@click.option("--exclude", "-x", multiple=True, metavar="FILE", help=EXCLUDE_HELP)
@click.option("--unique", is_flag=True, help="Write each line once (drop repeats).")
@click.option("--text-column", default=None,
              help="Text column of a classification file (default: text).")
@click.option("--text-pair-column", default=None,
              help="Second text column of a sentence-pair file (written as its own line).")
def corpora_text(files, output, exclude, unique, text_column, text_pair_column) -> None:
    """Write the raw text of FILE... (NER corpora in any format, classification files,
    TASK:SPLIT of a registered task such as afqmc:train): labels dropped, one sentence,
    review or question per line, for `cner pretrain --text`.

    \b
    Example:
      cner corpora text ../shared/corpora/msra_ner/msra_train_bio afqmc:train \\
          -x ../shared/corpora/msra_ner/msra_test_bio -x afqmc:dev -o pretrain.txt
    """
    from cner.data.text import corpus_text

    report = corpus_text(files, output, exclude=exclude, unique=unique,
                         text_column=text_column, text_pair_column=text_pair_column)
    for name, count in report.per_source.items():
        removed = report.removed_per_source.get(name, 0)
        click.echo(f"{name}: {count:,} lines" + (f" ({removed:,} removed by --exclude)"
                                                 if removed else ""), err=True)
    click.echo(report.summary() + ("" if output == "-" else f" to {output}"), err=True)


@click.group("vocab")
def vocab_group() -> None:
    """Character vocabularies for pre-training from scratch.

    \b
    Example:
      cner vocab build pretrain.txt --size 8000 --output runs/vocab
    """


@vocab_group.command("build")
@click.argument("texts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--size", type=click.IntRange(min=8), required=True,
              help="Tokens in the vocabulary, special tokens and reserved slots included.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Directory for vocab.txt, tokenizer.json, tokenizer_config.json and "
                   "cner_vocab.json.")
@click.option("--reserved", type=click.IntRange(min=0), default=100, show_default=True,
              help="[unusedN] slots kept for characters added later.")
@click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Leave out characters seen fewer times.")
@click.option("--lowercase/--no-lowercase", default=True, show_default=True,
              help="Look characters up lower-cased (as data.lowercase).")
@click.option("--halfwidth/--no-halfwidth", default=True, show_default=True,
              help="Look full-width forms up as half-width (as data.halfwidth).")
def vocab_build(texts, size, output, reserved, min_count, lowercase, halfwidth) -> None:
    """Build a character vocabulary from TEXT... (one sentence or document per line): the
    special tokens, the most frequent characters, reserved slots. AutoTokenizer loads the
    directory (one token per character); pretrain.vocab names it.

    \b
    Example:
      cner vocab build pretrain.txt --size 8000 --output runs/vocab
    """
    from cner.tasks.pretrain import build_vocab_dir

    info = build_vocab_dir(texts, output, size=size, reserved=reserved, min_count=min_count,
                           lowercase=lowercase, halfwidth=halfwidth)
    click.echo(f"{info['size']:,} tokens ({info['kept']:,} characters of {info['distinct']:,} "
               f"distinct, covering {info['coverage']:.4%} of {info['characters']:,} "
               f"characters; {info['reserved']} reserved) in {output}")


@click.command("pretrain")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config (configs/pretrain-small.yaml, pretrain-bert-base.yaml).")
@click.option("--text", "-t", "texts", multiple=True, type=click.Path(dir_okay=False),
              help="Pre-training text: one sentence or document per line, a blank line "
                   "between documents; repeatable.")
@click.option("--from", "from_model", default=None,
              help="Continue pre-training this model: a hub id (bert-base-chinese) or a "
                   "directory (a cner pretrain or cner train output).  [config: model.encoder]")
@run_options
@device_options(None, None, extra="  [config: training.{key}, default auto]")
def pretrain_command(config_path, texts, from_model, output, overrides, resume, overwrite,
                     quiet, device, precision) -> None:
    """Pre-train a character encoder with a masked-LM objective (whole-word masking by
    default) on raw text, or continue pre-training one (--from). The encoder with the lowest
    held-out MLM loss lands in RUN_DIR/model, which any task config takes as model.encoder.

    \b
    Example:
      cner pretrain -c configs/pretrain-small.yaml --text pretrain.txt -o runs/pt
      cner pretrain --resume runs/pt                  # after a crash or kill -9
      cner train -c configs/msra-small-bert-cpu.yaml --set model.encoder=runs/pt/model
      cner pretrain -c configs/pretrain-bert-base.yaml --from bert-base-chinese \\
          --text domain.txt -o runs/dapt
    """
    from cner.cli import UsageError
    from cner.config import load_config
    from cner.tasks.pretrain import MODEL, pretrain
    from cner.training.runs import default_run_dir

    config = None
    if resume is None:
        check_device(device)  # the option named, before the config's own checks
        # data.train names the (first) text: the NER sample corpus the defaults name is not
        # read, and need not exist
        extra = [f"{key}={value}" for key, value in (
            ("data.train", texts[0] if texts else None), ("data.dev", "null" if texts else None),
            ("data.test", "null" if texts else None), ("model.encoder", from_model),
            ("training.device", device), ("training.precision", precision)) if value]
        config = load_config(config_path, [*extra, *overrides])
        if precision is not None:
            check_device(config.training.device, precision, device_option="training.device")
        output = output or default_run_dir(config)
    elif config_path or overrides or texts or from_model or device or precision:
        raise UsageError("--resume continues a run with its saved config and text; drop "
                         "--config/--set/--text/--from/--device/--precision")
    with removing_unstarted_run(None if resume else output):
        run_dir, result = pretrain(config, text=texts, output=output, resume=resume,
                                   overwrite=overwrite, progress=not quiet)
    click.echo(f"run directory: {run_dir}  (stopped: {result.stopped_because}, "
               f"{result.state.step} steps)")
    best = result.best_metrics
    if best:
        click.echo(f"held-out MLM loss {best['mlm_loss']:.4f}, accuracy "
                   f"{best['mlm_accuracy']:.4f} (step {result.state.best_step})")
    click.echo(f"encoder: {run_dir / MODEL}  (use it as model.encoder)")


def register(main: click.Group) -> None:
    """Add the commands to ``cner`` (and ``text`` to its ``corpora`` group)."""
    main.add_command(pretrain_command)
    main.add_command(vocab_group)
    corpora = main.commands.get("corpora")
    if isinstance(corpora, click.Group):
        corpora.add_command(corpora_text)
