"""Running the application under uvicorn, with the shutdown a service manager expects.

SIGTERM (or SIGINT, Ctrl-C) stops accepting connections, lets the requests in flight finish
(their batches run to the end; at most ``graceful_timeout`` seconds), finishes whatever is
still queued, ends the model thread and returns; a second SIGINT quits at once. A model that
fails to load stops the server too: `serve` then raises its one-line `ModelError`.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from dataclasses import dataclass

import uvicorn

from cner.errors import InputError, ModelError
from cner.serving.app import create_app
from cner.serving.schemas import Limits
from cner.serving.batcher import Batcher
from cner.serving.metrics import ServerMetrics
from cner.serving.registry import LoadOptions, ServedModel, open_models, runner_for

log = logging.getLogger("cner.serving")


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_chars: int = 16384
    max_wait_ms: float = 5.0
    batching: bool = True
    max_queue: int = 1024
    api_key: str | None = None
    limits: Limits = Limits()
    graceful_timeout: float = 30.0
    access_log: bool = False
    log_level: str = "info"


class Server(uvicorn.Server):
    """uvicorn's server with its own signal handling: a signal starts the graceful shutdown
    (and marks the batcher as draining, so that /readyz answers 503 on connections still
    open) and is not raised again once the server has stopped, so the process ends by
    returning, exit status 0."""

    batcher: Batcher | None = None

    def handle_exit(self, sig, frame) -> None:
        if self.batcher is not None:
            self.batcher.draining = True
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: a free one); a failure is one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="--host/--port") from None
    sock.set_inheritable(True)
    return sock


def _log_like_uvicorn(level: str) -> None:
    """cner's server messages (models loaded, a batch failed) on stderr as uvicorn prints."""
    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("cner.serving")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def build_server(models: dict[str, ServedModel], options: ServeOptions) -> Server:
    """The server for ``models`` (their runners on one `Batcher`), not yet started."""
    metrics = ServerMetrics()
    server: Server | None = None

    def fatal(message: str) -> None:  # a model failed to load: stop serving
        if server is not None:
            server.should_exit = True

    batcher = Batcher({name: runner_for(model) for name, model in models.items()},
                      max_batch_chars=options.max_batch_chars, max_wait_ms=options.max_wait_ms,
                      batching=options.batching, max_queue=options.max_queue, metrics=metrics,
                      on_fatal=fatal)
    app = create_app(models, batcher, limits=options.limits, api_key=options.api_key,
                     metrics=metrics)
    config = uvicorn.Config(app, host=options.host, port=options.port,
                            log_level=options.log_level, access_log=options.access_log,
                            timeout_graceful_shutdown=options.graceful_timeout,
                            server_header=False, lifespan="on")
    server = Server(config)
    server.batcher = batcher
    return server


def serve(specs: list[tuple[str, str]], options: ServeOptions,
          load: LoadOptions | None = None) -> None:
    """Serve the models ``specs`` names (``(name, directory)``) until a signal stops it."""
    models = open_models(specs, load)
    sock = bind_socket(options.host, options.port)
    _log_like_uvicorn(options.log_level)
    where = sock.getsockname()
    host = f"[{where[0]}]" if sock.family == socket.AF_INET6 else where[0]
    log.info("listening on http://%s:%d (SIGTERM or Ctrl-C to stop); loading %s", host,
             where[1], ", ".join(f"{name}={model.directory}" for name, model in models.items()))
    server = build_server(models, options)
    server.run(sockets=[sock])
    if server.batcher.error is not None:
        raise ModelError(f"the server stopped: loading the models failed: "
                         f"{server.batcher.error}")
