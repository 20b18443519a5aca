"""Parsing request bodies at the edge: bytes → pydantic wire model → canonical `GenerationRequest`.

Validation errors become one `InvalidParam` naming the parameter, the rule and the value given.
Fields of the OpenAI API that jumpgate does not implement are accepted only at their neutral value
(`logprobs: false`, `logit_bias: {}`, ...); anything else is a 400 naming the field, never a silent drop.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from service.errors import InvalidParam, InvalidRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 4 * 1024 * 1024  # below SageMaker's 6 MiB request cap, leaving room for templates


def parse_body(body: bytes, model: type[M]) -> M:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_param(exc) from None


def _to_invalid_param(exc: ValidationError) -> InvalidParam:
    error = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    if error["type"] == "extra_forbidden":
        return InvalidParam(f"unknown parameter `{loc}`: remove it (see GET /v1/models and the README "
                            "for the parameters jumpgate accepts)", param=loc)
    given = _short(error.get("input"))
    return InvalidParam(f"`{loc}`: {error['msg']}; got {given}", param=loc or None)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
