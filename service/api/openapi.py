"""The OpenAPI document: request bodies from the same pydantic wire models the routes parse with,
response models for every documented status, and the configured model names as an enum. The routes
parse bodies themselves (for speed and one error shape), so FastAPI cannot infer any of this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from service.api.routes import GENERATION_ROUTES
from service.canonical import Api

Finish = Literal["stop", "length", "tool_calls", "error"]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CalledFunction(BaseModel):
    name: str
    arguments: str  # a JSON object, as text


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: CalledFunction


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None  # null when the answer is tool calls only
    tool_calls: list[ToolCallOut] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Finish
    logprobs: None


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: Finish
    logprobs: None


class CompletionOut(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: UsageOut


class NativeUsage(UsageOut):
    source: Literal["backend", "tokenizer", "estimate"]


class GenerationOut(BaseModel):
    index: int
    text: str
    finish_reason: Finish
    tool_calls: list[ToolCallOut] | None = None


class GenerateOut(BaseModel):
    id: str
    model: str
    endpoint: str
    generations: list[GenerationOut]
    usage: NativeUsage
    cost_usd: float
    attempts: int
    dropped_params: list[str]
    timings: dict[str, float]


class ModelOut(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    unsupported_params: Literal["reject", "drop"]
    endpoints: list[dict[str, Any]]


class ModelListOut(BaseModel):
    object: Literal["list"]
    data: list[ModelOut]


# One server-sent event: `data` is a JSON chunk (or an error object, or the final "[DONE]").
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}}}

ERROR_STATUSES = ("400", "401", "403", "404", "413", "429", "500", "502", "503", "504")
# What each generation API answers (documentation only: the renderers in render.py build these shapes).
RESPONSE_MODELS: dict[Api, type[BaseModel]] = {"chat": ChatCompletionOut, "completions": CompletionOut,
                                               "generate": GenerateOut}


def install_openapi(app: FastAPI, model_names: Callable[[], list[str]]) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, model_names())
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _document(app: FastAPI, models: list[str]) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    wire: list[tuple[type[BaseModel], JsonSchemaMode]] = [(r.wire, "validation") for r in GENERATION_ROUTES]
    out: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((RESPONSE_MODELS[r.api], "serialization") for r in GENERATION_ROUTES),
        (ErrorResponse, "serialization"), (ModelListOut, "serialization")]
    _, defs = models_json_schema([*wire, *out], ref_template="#/components/schemas/{model}")
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs.get("$defs", {}))
    for route in GENERATION_ROUTES:
        if models:
            schemas[route.wire.__name__]["properties"]["model"] = {"type": "string", "enum": models}
    for route in GENERATION_ROUTES:
        req, resp = route.wire, RESPONSE_MODELS[route.api]
        op = doc["paths"][route.path]["post"]
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(req)}}}
        op["responses"] = {"200": {"description": "the answer; server-sent events when stream is true",
                                   "content": {"application/json": {"schema": _ref(resp)},
                                               "text/event-stream": {"schema": SSE_EVENT}}},
                           **_errors()}
    doc["paths"]["/v1/models"]["get"]["responses"] = {
        "200": {"description": "models", "content": {"application/json": {"schema": _ref(ModelListOut)}}},
        **_errors()}
    return doc


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _errors() -> dict[str, Any]:
    return {code: {"description": "error", "content": {"application/json": {"schema": _ref(ErrorResponse)}}}
            for code in ERROR_STATUSES}
