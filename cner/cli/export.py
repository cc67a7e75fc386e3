"""`cner export --onnx`: a tagger's encoder as ONNX, for `cner annotate --backend onnx`."""
from __future__ import annotations

import click

from cner.cli.options import UsageError

MIN_OPSET = 18  # cner.runtime.onnxexport.MIN_OPSET (not imported: that module loads torch)


@click.command("export")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--onnx", "onnx", is_flag=True,
              help="Export to ONNX (the one format so far; required).")
@click.option("--output", "-o", type=click.Path(), default=None,
              help="A .onnx file, or a folder to write model.onnx in; model.onnx.json goes "
                   "beside it.  [default: MODEL_DIR/onnx/model.onnx, which --backend onnx "
                   "reads]")
@click.option("--opset", type=click.IntRange(min=MIN_OPSET), default=None,
              help="ONNX opset.  [default: torch's exporter's own]")
def export_command(model_dir: str, onnx: bool, output: str | None, opset: int | None) -> None:
    """Export the NER model in MODEL_DIR (or hub id owner/name) to ONNX: the encoder and tag
    layer (with the bigram, word-boundary and lexicon embeddings it uses), ids in, per-character
    tag scores out, fp32, dynamic batch and length. Features, windows, CRF decoding and offsets
    stay in cner. The file is checked against PyTorch and written atomically; needs pip
    install "cner[onnx]".

    \b
    Example:
      cner export --onnx runs/tiny/model
      cner annotate news.txt --model runs/tiny/model --backend onnx -o news.csv
    """
    from cner.runtime.onnxexport import export_onnx

    if not onnx:
        raise UsageError("give the format to export to: cner export --onnx MODEL_DIR")
    click.echo(export_onnx(model_dir, output, opset=opset).summary())
