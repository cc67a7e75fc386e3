"""`cner serve`: the models as an HTTP service (`cner.serving`; the ``serve`` extra)."""
from __future__ import annotations

import click

from cner.cli.options import UsageError, check_device, command_help, device_options
from cner.errors import CnerError

SERVE_HELP = command_help(
    "Serve NER and classification models over HTTP, batching concurrent requests.\n\n"
    "POST /v1/ner {\"texts\": [...]} answers the entities of cner annotate's JSONL; "
    "POST /v1/classify, GET /v1/models, /healthz, /readyz, /metrics (Prometheus); the API "
    "is documented at /docs. Listens on 127.0.0.1 unless --host says otherwise. SIGTERM "
    "finishes the requests in flight, then exits. Needs pip install \"cner[serve]\".",
    "cner serve --model runs/x/model --port 8080",
    "curl -s localhost:8080/v1/ner -d '{\"texts\": [\"张伟在北京大学工作。\"]}'",
    "cner serve -m ner=runs/x/model -m senti=runs/senti/model --host 0.0.0.0 --api-key KEY")


class MissingExtra(CnerError):
    """The ``serve`` extra is not installed."""


@click.command("serve", help=SERVE_HELP)
@click.option("--model", "-m", "models", multiple=True, required=True, metavar="[NAME=]DIR",
              help="A model directory (or hub id owner/name), optionally named; repeatable. "
                   "Requests name a model by 'model'; without it, the first of its task.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (use --api-key).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free one, printed at start).")
@click.option("--max-batch-chars", default=16384, show_default=True,
              type=click.IntRange(min=1), help="Character budget of a batch of requests.")
@click.option("--max-wait-ms", default=5.0, show_default=True,
              type=click.FloatRange(0, 10_000),
              help="Longest wait for more requests to batch with the first one.")
@click.option("--no-batching", is_flag=True,
              help="Run each request alone (for comparison; slower under load).")
@click.option("--api-key", envvar="CNER_API_KEY", show_envvar=True, default=None,
              help="Require 'Authorization: Bearer KEY' on /v1/ (401 otherwise).")
@click.option("--max-body-bytes", default=1 << 20, show_default=True,
              type=click.IntRange(min=1), help="Largest request body (413 past it).")
@click.option("--max-texts", default=4096, show_default=True, type=click.IntRange(min=1),
              help="Most texts in one request (413 past it).")
@click.option("--max-text-chars", default=100_000, show_default=True,
              type=click.IntRange(min=1), help="Longest text, in characters (413 past it).")
@click.option("--max-queue", default=1024, show_default=True, type=click.IntRange(min=1),
              help="Most requests waiting for the model (503 past it).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Windows per model call.")
@device_options()
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads for the models.  [default: one per core but one, left to "
                   "the HTTP event loop; OMP_NUM_THREADS if set]")
@click.option("--compile/--no-compile", "compile_model", default=False, show_default=True,
              help="Compile the encoder with TorchInductor before serving (15-60 s on CPU).")
@click.option("--graceful-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0),
              help="Seconds a shutdown waits for the requests in flight.")
@click.option("--access-log", is_flag=True, help="Log every request (uvicorn's access log).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="Least severe message logged.")
def serve_command(models, host, port, max_batch_chars, max_wait_ms, no_batching, api_key,
                  max_body_bytes, max_texts, max_text_chars, max_queue, batch_size, device,
                  precision, threads, compile_model, graceful_timeout, access_log, log_level):
    from cner.serving import INSTALL_HINT, missing_packages

    if missing := missing_packages():
        raise MissingExtra(f"cner serve needs {', '.join(missing)}, not installed here: "
                           f"{INSTALL_HINT}")
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key (or CNER_API_KEY) is empty; give a key or leave it unset")
    check_device(device, precision)

    from cner.serving.schemas import Limits
    from cner.serving.registry import LoadOptions, model_specs
    from cner.serving.server import ServeOptions, is_loopback, serve

    specs = model_specs(models)
    if not is_loopback(host) and not api_key:
        click.echo(f"warning: serving on {host} without an API key: anyone who can reach "
                   f"port {port} can use the models (--api-key or CNER_API_KEY)", err=True)
    options = ServeOptions(
        host=host, port=port, max_batch_chars=max_batch_chars, max_wait_ms=max_wait_ms,
        batching=not no_batching, max_queue=max_queue, api_key=api_key,
        limits=Limits(max_body_bytes, max_texts, max_text_chars),
        graceful_timeout=graceful_timeout, access_log=access_log, log_level=log_level)
    serve(specs, options, LoadOptions(device=device, precision=precision,
                                      batch_size=batch_size, compile=compile_model,
                                      threads=threads))
