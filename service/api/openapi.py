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

from service.api.embedding_models import MAX_INPUTS, MAX_TOKEN_ID, EmbeddingBody
from service.api.embeddings import EMBEDDINGS_PATH
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


class TopLogprobOut(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut]


class ChatLogprobsOut(BaseModel):
    content: list[TokenLogprobOut]
    refusal: None


class LegacyLogprobsOut(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Finish
    logprobs: ChatLogprobsOut | None


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
    logprobs: LegacyLogprobsOut | None


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
    kind: Literal["text_generation", "embedding"]
    unsupported_params: Literal["reject", "drop"]
    endpoints: list[dict[str, Any]]


class EmbeddingOut(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class EmbeddingUsageOut(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingListOut(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsageOut


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


def install_openapi(app: FastAPI, model_names: Callable[[], list[str]],
                    embedding_names: Callable[[], list[str]] = list) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, model_names(), embedding_names())
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _document(app: FastAPI, models: list[str], embedding_models: list[str]) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    wire: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((r.wire, "validation") for r in GENERATION_ROUTES), (EmbeddingBody, "validation")]
    out: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((RESPONSE_MODELS[r.api], "serialization") for r in GENERATION_ROUTES),
        (ErrorResponse, "serialization"), (ModelListOut, "serialization"), (ModelOut, "serialization"),
        (EmbeddingListOut, "serialization")]
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
    doc["paths"]["/v1/models/{model_id}"]["get"]["responses"] = {
        "200": {"description": "one model", "content": {"application/json": {"schema": _ref(ModelOut)}}},
        **_errors()}
    _embeddings(doc, embedding_models)
    return doc


def _embeddings(doc: dict[str, Any], models: list[str]) -> None:
    # The embedding input is checked by hand (to name the offending item), so its schema is written here.
    schema = doc["components"]["schemas"][EmbeddingBody.__name__]
    text = {"type": "string", "minLength": 1}
    ids = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}}
    schema["properties"]["input"] = {"anyOf": [
        text, {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": text}, ids,
        {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": ids}]}
    if models:
        schema["properties"]["model"] = {"type": "string", "enum": models}
    doc["paths"][EMBEDDINGS_PATH]["post"]["requestBody"] = {
        "required": True, "content": {"application/json": {"schema": _ref(EmbeddingBody)}}}
    doc["paths"][EMBEDDINGS_PATH]["post"]["responses"] = {
        "200": {"description": "one vector per input, in input order",
                "content": {"application/json": {"schema": _ref(EmbeddingListOut)}}}, **_errors()}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _errors() -> dict[str, Any]:
    return {code: {"description": "error", "content": {"application/json": {"schema": _ref(ErrorResponse)}}}
            for code in ERROR_STATUSES}
