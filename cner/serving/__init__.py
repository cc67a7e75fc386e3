"""`cner serve`: taggers and classifiers as an HTTP service with dynamic batching.

* `batcher` - the queue and the one model thread: concurrent requests run together through
  the same length-sorted, cost-planned batches as `Tagger.pipe`;
* `registry` - the served models (``--model [NAME=]DIR``), read before the server starts and
  loaded on the model thread;
* `app` - the FastAPI application: ``/v1/ner``, ``/v1/classify``, ``/v1/models``, probes,
  ``/metrics``; limits, API key, errors;
* `metrics` - the Prometheus metrics;
* `server` - uvicorn, binding and the graceful shutdown (`serve`).

Needs the ``serve`` extra (``pip install "cner[serve]"``: FastAPI, uvicorn,
prometheus-client); nothing here is imported by the rest of cner.
"""
from __future__ import annotations

INSTALL_HINT = 'pip install "cner[serve]"'
REQUIRED = ("fastapi", "uvicorn", "prometheus_client")


def missing_packages() -> list[str]:
    """The packages of the ``serve`` extra that cannot be imported here."""
    import importlib

    missing = []
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def __getattr__(name: str):
    if name in ("serve", "ServeOptions", "build_server"):
        from cner.serving import server

        return getattr(server, name)
    raise AttributeError(f"module 'cner.serving' has no attribute {name!r}")
