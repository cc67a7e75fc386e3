"""The HTTP API (FastAPI): ``POST /v1/ner``, ``POST /v1/classify``, ``GET /v1/models``,
``GET /healthz``, ``GET /readyz``, ``GET /metrics``; the OpenAPI page at ``/docs``.

Every request body is read (`cner.serving.schemas`) within ``Limits.max_body_bytes`` (413 past it, before the
rest is read), parsed as JSON and checked against the request's schema (422 naming the
field: ``texts[2]: Input should be a valid string``); texts are checked for their count and
length (413 with the limit) and for lone surrogates (422: such a string is not Unicode text
and could not be written back as UTF-8). Offsets are Python string indices (Unicode code
points), end exclusive, as in ``cner annotate``: ``text[start:end] == entity.text``.

With an API key, the ``/v1/`` routes need ``Authorization: Bearer KEY`` (401 otherwise,
compared in constant time); ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI page stay
open, as probes and scrapers expect. Every error body is ``{"detail": "one line"}``, plus
``"field"`` (and ``"errors"``, one per problem) for a 422.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import request_response

from cner.inference.writers import entity_dict
from cner.serving.batcher import Batcher, BatcherError, item_chars
from cner.serving.metrics import ServerMetrics
from cner.serving.registry import ServedModel
from cner.serving.schemas import (ERRORS, ApiError, ClassifyRequest, ClassifyResponse, Limits,
                                  NerRequest, NerResponse, body_doc, check_texts, field_name,
                                  one_or_many, parse, read_body)


class Service:
    """What the routes share: the models, the batcher, the limits, the metrics."""

    def __init__(self, models: dict[str, ServedModel], batcher: Batcher, limits: Limits,
                 metrics: ServerMetrics, api_key: str | None = None) -> None:
        self.models, self.batcher, self.limits, self.metrics = models, batcher, limits, metrics
        self._key = api_key.encode("utf-8") if api_key else None

    def authorize(self, request: Request) -> None:
        """401 unless the request carries ``Authorization: Bearer KEY`` (compared in constant
        time), when the server has a key."""
        if self._key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            what = "a missing"
        elif hmac.compare_digest(token.encode("latin-1"), self._key):
            return  # headers arrive decoded as Latin-1: back to their bytes, as the key's
        else:
            what = "a wrong"
        raise ApiError(401, f"{what} API key: send the header 'Authorization: Bearer KEY'",
                       headers={"WWW-Authenticate": "Bearer"})

    def pick(self, name: str | None, task: str) -> ServedModel:
        if name is None:
            for model in self.models.values():
                if model.task == task:
                    return model
            raise ApiError(404, f"no {task} model is served here; the models are: "
                                f"{_listing(self.models)}")
        model = self.models.get(name)
        if model is None:
            raise ApiError(422, f"no model named {name!r}; the models are: "
                                f"{_listing(self.models)}", field="model")
        if model.task != task:
            route = "/v1/ner" if model.task == "ner" else "/v1/classify"
            raise ApiError(422, f"model {name!r} is a {model.task} model; send it to {route}",
                           field="model")
        return model

    async def run(self, model: ServedModel, items: list) -> list:
        if not items:
            return []
        if not self.batcher.ready.is_set() and self.batcher.error is None:
            raise ApiError(503, "the models are still loading; retry when /readyz answers 200",
                           headers={"Retry-After": "1"})
        try:
            return await self.batcher.run(model.name, items, sum(map(item_chars, items)))
        except BatcherError as exc:
            headers = {"Retry-After": "1"} if exc.status == 503 else None
            raise ApiError(exc.status, str(exc), headers=headers) from None


def _listing(models: dict[str, ServedModel]) -> str:
    return ", ".join(f"{name} ({model.task})" for name, model in models.items())


def create_app(models: dict[str, ServedModel], batcher: Batcher, *, limits: Limits = Limits(),
               api_key: str | None = None, metrics: ServerMetrics | None = None,
               close_timeout: float = 30.0) -> FastAPI:
    """The application; starting it (its lifespan) starts ``batcher``, stopping it finishes
    the queued requests and ends the model thread (waiting at most ``close_timeout``
    seconds)."""
    from cner import __version__

    metrics = metrics or batcher.metrics or ServerMetrics()
    service = Service(models, batcher, limits, metrics, api_key)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close, close_timeout)

    app = FastAPI(title="cner", version=__version__, lifespan=lifespan,
                  description="Chinese named-entity recognition and text classification. "
                              "Offsets are Unicode code points, end exclusive.")
    app.state.service = service
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app)
    _add_model_routes(app, service, _documented_security(api_key))
    _add_probe_routes(app, service)
    return app


class DirectRoute(APIRoute):
    """An API route whose endpoint takes the `Request` and returns a `Response`: FastAPI
    documents it (body schema, responses, security) and Starlette calls it, without FastAPI's
    parameter and dependency machinery, a quarter of the event loop's work per request (~60
    of ~250 us with an instant model; with 32 clients the model waited 1.7 ms instead of 2.7
    for a batch's requests to arrive). So its ``dependencies`` are documented, not run: the
    route's endpoint is wrapped in the API key check (`_direct`, `Service.authorize`)."""

    def __init__(self, path: str, endpoint, **kwargs) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = request_response(endpoint)  # Starlette's: no exit stacks, no injection

    def get_route_handler(self):
        return self.endpoint


def _direct(app: FastAPI, service: Service, path: str, methods: list[str], **doc):
    """Register the decorated endpoint as a `DirectRoute` of ``app``, behind the API key
    (`Service.authorize`, checked before the endpoint runs); ``doc``: what OpenAPI shows
    (response model, responses, summary, ...)."""
    def register(endpoint):
        @functools.wraps(endpoint)
        async def authorized(request: Request):
            service.authorize(request)
            return await endpoint(request)

        app.router.add_api_route(path, authorized, methods=methods,
                                 route_class_override=DirectRoute, **doc)
        return endpoint
    return register


def _documented_security(api_key: str | None) -> list:
    """The API key as OpenAPI shows it (``Authorization: Bearer``); `Service.authorize`
    checks it."""
    if not api_key:
        return []
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer API_KEY")

    async def documented(_credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        raise AssertionError("DirectRoute endpoints do not run dependencies")
    return [Depends(documented)]


def _add_model_routes(app: FastAPI, service: Service, auth: list) -> None:
    limits = service.limits

    @_direct(app, service, "/v1/ner", ["POST"], response_model=NerResponse,
             responses=ERRORS, tags=["models"], dependencies=auth,
             openapi_extra=body_doc(NerRequest), summary="Entities of one text or of many")
    async def ner(request: Request):
        req = parse(await read_body(request, limits.max_body_bytes), NerRequest)
        texts, single = one_or_many(req.text, req.texts, "text")
        check_texts(texts, single, limits)
        model = service.pick(req.model, "ner")
        docs = [[entity_dict(e) for e in doc] for doc in await service.run(model, texts)]
        return JSONResponse({"model": model.name, "entities": docs[0] if single else docs})

    @_direct(app, service, "/v1/classify", ["POST"], response_model=ClassifyResponse,
             responses=ERRORS, tags=["models"], dependencies=auth,
             openapi_extra=body_doc(ClassifyRequest),
             summary="Label and every label's probability, of texts or sentence pairs")
    async def classify(request: Request):
        req = parse(await read_body(request, limits.max_body_bytes), ClassifyRequest)
        items, single = _classify_items(req, limits)
        model = service.pick(req.model, "classification")
        predictions = [{"label": list(p.label) if isinstance(p.label, tuple) else p.label,
                        "probabilities": p.probabilities}
                       for p in await service.run(model, items)]
        body = {"prediction": predictions[0]} if single else {"predictions": predictions}
        return JSONResponse({"model": model.name, **body})

    @_direct(app, service, "/v1/models", ["GET"], tags=["models"], dependencies=auth,
             responses=ERRORS,
             summary="The served models: task, labels, scheme, encoder, training metrics")
    async def list_models(request: Request):
        defaults = {}
        for model in service.models.values():
            defaults.setdefault(model.task, model.name)
        return JSONResponse({"models": [m.describe() for m in service.models.values()],
                             "defaults": defaults})


def _classify_items(req: ClassifyRequest, limits: Limits) -> tuple[list, bool]:
    texts, single = one_or_many(req.text, req.texts, "text")
    if single and req.text_pairs is not None:
        raise ApiError(422, "text_pairs goes with texts; with one text give text_pair",
                       field="text_pairs")
    if not single and req.text_pair is not None:
        raise ApiError(422, "text_pair goes with text; with texts give text_pairs",
                       field="text_pair")
    check_texts(texts, single, limits)
    pairs = [req.text_pair] if single and req.text_pair is not None else req.text_pairs
    if pairs is None:
        return texts, single
    if len(pairs) != len(texts):
        raise ApiError(422, f"text_pairs has {len(pairs)} texts for {len(texts)} texts; give "
                            "one per text", field="text_pairs")
    check_texts(pairs, single, limits, "text_pair")
    return list(zip(texts, pairs)), single


def _add_probe_routes(app: FastAPI, service: Service) -> None:
    batcher = service.batcher

    @app.get("/healthz", tags=["probes"], summary="Alive (the process answers)")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="Every model loaded and warmed up")
    async def readyz():
        if batcher.error is not None:
            return JSONResponse({"status": "failed", "detail": batcher.error}, status_code=503)
        if batcher.draining:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if not batcher.ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ready", "models": list(service.models)}

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics (text format)")
    async def metrics():
        body, content_type = service.metrics.exposition()
        return Response(body, media_type=content_type)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, exc: RequestValidationError):
        errors = [{"field": field_name(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return ApiError(422, f"{first['field']}: {first['message']}", field=first["field"],
                        errors=errors).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(_request, exc: Exception):
        import logging

        logging.getLogger("cner.serving").error("unexpected error", exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"},
                            status_code=500)


class MetricsMiddleware:
    """Counts every HTTP request: path, method, status, latency, requests in flight (a plain
    ASGI middleware: no body buffering, no extra task)."""

    def __init__(self, app, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe_request(scope.get("path", ""), scope.get("method", ""),
                                         status[0], time.perf_counter() - started)
