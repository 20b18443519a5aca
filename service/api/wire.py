"""Parsing request bodies at the edge: bytes → pydantic wire model → canonical `GenerationRequest`.

Validation errors become one `InvalidParam` naming the parameter, the rule and the value given.
Fields of the OpenAI API that jumpgate does not implement are accepted only at their default value
(`store: false`, `logit_bias: {}`, ...; service/api/defaults.py); anything else is a 400 naming every such
field and every unknown one in one message, never a silent drop.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from service.api.defaults import Refusal, screen
from service.canonical import GenerationRequest
from service.config.tenancy import InputLimits
from service.errors import MAX_ECHO, InvalidParam, InvalidRequest, PayloadTooLarge, echo

M = TypeVar("M", bound=BaseModel)

DEFAULT_LIMITS = InputLimits()


def parse_body(body: bytes, model: type[M], limits: InputLimits = DEFAULT_LIMITS) -> M:
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLarge(f"the request body is {len(body)} bytes; the limit is {limits.max_body_bytes} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    # Brackets counted in C bound the depth from above (those inside strings only add): most bodies need no walk.
    deep = body.count(b"{") + body.count(b"[") > limits.max_json_depth
    if deep and _depth(data, limits.max_json_depth) > limits.max_json_depth:
        raise InvalidRequest(f"the request body nests JSON deeper than {limits.max_json_depth} levels")
    refused = screen(data, getattr(model, "default_only", {}))
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_param(exc, refused) from None
    if refused:
        raise _offending([], refused)
    return parsed


def check_size(req: GenerationRequest, limits: InputLimits) -> None:
    """Message count and prompt length limits, on the canonical request."""
    if req.messages is not None and len(req.messages) > limits.max_messages:
        raise InvalidParam(f"{len(req.messages)} messages is over the limit of {limits.max_messages}: "
                           "send fewer", param="messages")
    chars = sum(len(m.content) for m in req.messages or ()) + len(req.prompt or "") + len(req.context or "")
    if chars > limits.max_prompt_chars:
        raise PayloadTooLarge(f"the prompt is {chars} characters; the limit is {limits.max_prompt_chars}",
                              param="messages" if req.messages is not None else "prompt")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, iteratively (no recursion for hostile input); stops past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _to_invalid_param(exc: ValidationError, refused: list[Refusal]) -> InvalidParam:
    """Every problem pydantic found, named: all unknown fields and all refused non-default values at once, then
    the first wrong value with the type or range it must have. Client-sent names and values are echoed cut."""
    errors = exc.errors(include_url=False)
    unknown = [_loc(e) for e in errors if e["type"] == "extra_forbidden"]
    if unknown or refused:
        return _offending(unknown, refused)
    error = errors[0]
    loc = echo_name(_loc(error))
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return InvalidParam(f"`{loc}`: {error['msg']}; got {echo(error.get('input'))}{more}", param=loc or None)


def _offending(unknown: list[str], refused: list[Refusal]) -> InvalidParam:
    """One 400 naming every unknown field and every field jumpgate serves only at its default value."""
    parts = []
    if unknown:
        names = ", ".join(f"`{echo_name(n)}`" for n in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        parts.append(f"unknown parameter{'s' if len(unknown) > 1 else ''} {names}: remove "
                     f"{'them' if len(unknown) > 1 else 'it'} (see the README for the parameters jumpgate accepts)")
    parts += [f"`{r.name}`={echo(r.value)} is not supported: {r.why}" for r in refused]
    first = echo_name(unknown[0]) if unknown else refused[0].name
    return InvalidParam("; ".join(parts), param=first)


def _loc(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))


def echo_name(name: str) -> str:
    return name if len(name) <= MAX_ECHO else name[: MAX_ECHO - 3] + "..."
