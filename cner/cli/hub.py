"""`cner push`: upload a model directory to the Hugging Face hub."""
from __future__ import annotations

import click


@click.command("push")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repository as private (when it is new).")
@click.option("--token", default=None, metavar="TOKEN",
              help="Hugging Face access token with write access (default: HF_TOKEN, or the "
                   "login saved by `hf auth login`).")
def push_command(model_dir: str, repo_id: str, private: bool, token: str | None) -> None:
    """Upload MODEL_DIR (written by cner train) to the hub as REPO_ID (owner/name).

    The repository is created if missing. Its model card names REPO_ID, so that others can
    load it with `Tagger.load("owner/name")`, `cner annotate --model owner/name` or, for
    BERT-encoder taggers, transformers' AutoModelForTokenClassification.

    \b
    Example:
      cner push runs/msra/model my-name/cner-msra --private
    """
    from cner.models.hub import push_model_dir

    url = push_model_dir(model_dir, repo_id, private=private, token=token)
    click.echo(f"uploaded {model_dir} to {url}")
