"""The server's Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).

One `ServerMetrics` per server, on its own registry (never the process-wide default one, so
two servers in one process, as in the tests, count apart):

* ``cner_http_requests_total{path,method,code}`` and ``cner_http_errors_total{path,code}``
  (responses with a 4xx or 5xx status), ``cner_http_request_duration_seconds{path}`` (a
  latency histogram) and ``cner_http_requests_in_flight``;
* ``cner_queue_requests`` and ``cner_queue_texts``: what waits for the model now;
* ``cner_batches_total{model}``, ``cner_batch_failures_total{model}``, and histograms of the
  requests, texts and characters per batch and of a batch's model time
  (``cner_batch_requests``, ``cner_batch_texts``, ``cner_batch_chars``,
  ``cner_batch_duration_seconds``);
* ``cner_chars_total{model}`` (rate() of it is characters/s) and ``cner_chars_per_second``, the
  characters of the batches finished in the last 10 seconds over 10 seconds, for a glance
  without PromQL;
* ``cner_ready`` (1 once every model is loaded and warmed up).

Paths outside the API are counted under ``path="other"`` so that a scanner probing random
URLs cannot grow the label set.
"""
from __future__ import annotations

import collections
import threading
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)

PATHS = frozenset({"/v1/ner", "/v1/classify", "/v1/models", "/healthz", "/readyz", "/metrics",
                   "/docs", "/openapi.json"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CHAR_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 262144, 1048576)
WINDOW_S = 10.0  # cner_chars_per_second looks back this far


class ServerMetrics:
    """The metrics of one server; ``queue_depth`` is called at scrape time and returns
    ``(requests, texts)`` waiting."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("cner_http_requests", "HTTP requests answered.",
                                ["path", "method", "code"], registry=registry)
        self.errors = Counter("cner_http_errors", "HTTP responses with a 4xx or 5xx status.",
                              ["path", "code"], registry=registry)
        self.latency = Histogram("cner_http_request_duration_seconds",
                                 "Time from request to the end of the response.", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("cner_http_requests_in_flight", "Requests being answered now.",
                               registry=registry)
        self.queue_requests = Gauge("cner_queue_requests", "Requests waiting for the model.",
                                    registry=registry)
        self.queue_texts = Gauge("cner_queue_texts", "Texts waiting for the model.",
                                 registry=registry)
        self.batches = Counter("cner_batches", "Batches run through a model.", ["model"],
                               registry=registry)
        self.failures = Counter("cner_batch_failures", "Batches in which the model failed.",
                                ["model"], registry=registry)
        self.batch_requests = Histogram("cner_batch_requests", "Requests per batch.",
                                        buckets=COUNT_BUCKETS, registry=registry)
        self.batch_texts = Histogram("cner_batch_texts", "Texts per batch.",
                                     buckets=COUNT_BUCKETS, registry=registry)
        self.batch_chars = Histogram("cner_batch_chars", "Characters per batch.",
                                     buckets=CHAR_BUCKETS, registry=registry)
        self.batch_seconds = Histogram("cner_batch_duration_seconds", "Model time per batch.",
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.chars = Counter("cner_chars", "Characters run through a model.", ["model"],
                             registry=registry)
        self.ready = Gauge("cner_ready", "1 once every model is loaded and warmed up.",
                           registry=registry)
        Gauge("cner_chars_per_second", f"Characters of the batches finished in the last "
              f"{WINDOW_S:g} s, per second.", registry=registry).set_function(self._recent_rate)
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()
        self.queue_depth = lambda: (0, 0)

    def observe_request(self, path: str, method: str, code: int, seconds: float) -> None:
        path = path if path in PATHS else "other"
        self.requests.labels(path, method, str(code)).inc()
        if code >= 400:
            self.errors.labels(path, str(code)).inc()
        self.latency.labels(path).observe(seconds)

    def observe_batch(self, model: str, requests: int, texts: int, chars: int,
                      seconds: float) -> None:
        self.batches.labels(model).inc()
        self.batch_requests.observe(requests)
        self.batch_texts.observe(texts)
        self.batch_chars.observe(chars)
        self.batch_seconds.observe(seconds)
        self.chars.labels(model).inc(chars)
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, chars))
            self._forget(now)

    def observe_failure(self, model: str) -> None:
        self.failures.labels(model).inc()

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - WINDOW_S:
            self._recent.popleft()

    def _recent_rate(self) -> float:
        with self._lock:
            self._forget(time.monotonic())
            return sum(chars for _, chars in self._recent) / WINDOW_S

    def exposition(self) -> tuple[bytes, str]:
        """``(body, content type)`` of a scrape."""
        requests, texts = self.queue_depth()
        self.queue_requests.set(requests)
        self.queue_texts.set(texts)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
