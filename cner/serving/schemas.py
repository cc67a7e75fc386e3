"""The HTTP API's requests and responses: their schemas (pydantic), the limits, and reading a
body within its limit, parsing it and checking its texts (`cner.serving.app` uses them).

A body past ``Limits.max_body_bytes`` is a 413 before the rest is read; JSON that does not fit
the request's schema is a 422 naming the field (``texts[2]: Input should be a valid string``);
too many or too long texts are a 413 naming the limit; a lone surrogate is a 422 (such a
string is not Unicode text and could not be written back as UTF-8).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    """What one request may hold (413 past any of them)."""

    max_body_bytes: int = 1 << 20
    max_texts: int = 4096
    max_text_chars: int = 100_000


class ApiError(Exception):
    """An answer other than 200: ``status``, a one-line ``detail``, the ``field`` at fault."""

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 errors: list[dict] | None = None, headers: dict | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field
        self.errors, self.headers = errors, headers

    def response(self) -> JSONResponse:
        body: dict = {"detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# -- request and response schemas (the OpenAPI page shows them) ------------------------------

class NerRequest(BaseModel):
    """``text`` (one text) or ``texts`` (a list); ``model``: a served NER model's name."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"texts": ["张伟在北京大学工作。", "李娜去了上海。"]},
                     {"text": "张伟在北京大学工作。", "model": "default"}]})
    text: str | None = Field(None, description="One text; the answer's `entities` is a list.")
    texts: list[str] | None = Field(None, description="Texts; `entities` is a list per text.")
    model: str | None = Field(None, description="Model name (default: the first NER model).")


class ClassifyRequest(BaseModel):
    """``text`` (with an optional ``text_pair``) or ``texts`` (with optional ``text_pairs``,
    one per text, for sentence-pair models)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"texts": ["这家酒店很干净，服务也好。"]},
                     {"text": "还款日怎么改", "text_pair": "如何修改还款日期"}]})
    text: str | None = Field(None, description="One text; the answer has `prediction`.")
    text_pair: str | None = Field(None, description="The second sentence of a pair.")
    texts: list[str] | None = Field(None, description="Texts; the answer has `predictions`.")
    text_pairs: list[str] | None = Field(None, description="Second sentences, one per text.")
    model: str | None = Field(None, description="Model name (default: the first classifier).")


class EntityOut(BaseModel):
    start: int = Field(description="Offset of the first character (code points).")
    end: int = Field(description="Offset after the last character (exclusive).")
    label: str
    text: str = Field(description="text[start:end]")
    score: float = Field(description="Mean CRF marginal probability of the entity's tags.")


class NerResponse(BaseModel):
    model: str
    entities: list[EntityOut] | list[list[EntityOut]]


class PredictionOut(BaseModel):
    label: str | float | list[str]
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    model: str
    prediction: PredictionOut | None = None
    predictions: list[PredictionOut] | None = None


class ErrorOut(BaseModel):
    detail: str
    field: str | None = None


ERRORS = {code: {"model": ErrorOut} for code in (401, 413, 422, 500, 503)}


def body_doc(schema: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema.model_json_schema()}}}}


# -- reading a request -------------------------------------------------------------------------

async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass ``limit`` bytes."""
    too_large = ApiError(413, f"the request body is over the limit of {limit} bytes "
                              "(--max-body-bytes)")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(length) > limit:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, schema: type[BaseModel]):
    """The body as ``schema``; 422 naming the field otherwise."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})",
                       field="body") from None
    except json.JSONDecodeError as exc:
        raise ApiError(422, f"the body is not valid JSON ({exc.msg}: line {exc.lineno} "
                            f"column {exc.colno})", field="body") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, f"the body is not valid JSON ({exc})", field="body") from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors = [{"field": field_name(e["loc"]), "message": e["msg"]}
                  for e in exc.errors(include_url=False, include_input=False)]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(422, f"{first['field']}: {first['message']}{more}",
                       field=first["field"], errors=errors) from None


def field_name(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def one_or_many(one: str | None, many: list[str] | None, name: str) -> tuple[list[str], bool]:
    """The texts of a request and whether it gave one (``name``) rather than a list."""
    if (one is None) == (many is None):
        both = "both" if one is not None else "neither"
        raise ApiError(422, f"give either {name!r} (one text) or {name + 's'!r} (a list of "
                            f"texts); the request has {both}", field=name)
    return ([one], True) if one is not None else (many, False)


def check_texts(texts: list[str], single: bool, limits: Limits, name: str = "text") -> None:
    if len(texts) > limits.max_texts:
        raise ApiError(413, f"{len(texts)} texts in one request; the limit is "
                            f"{limits.max_texts} (--max-texts)", field=name + "s")
    for i, text in enumerate(texts):
        where = name if single else f"{name}s[{i}]"
        if len(text) > limits.max_text_chars:
            raise ApiError(413, f"{where} has {len(text)} characters; the limit is "
                                f"{limits.max_text_chars} (--max-text-chars)", field=where)
        if not text.isascii() and (bad := LONE_SURROGATE.search(text)):
            raise ApiError(422, f"{where} holds a lone surrogate U+{ord(bad.group()):04X} at "
                                f"offset {bad.start()}, which is not a character", field=where)


# -- the application ---------------------------------------------------------------------------
