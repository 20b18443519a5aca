"""`POST /v1/embeddings` in the OpenAI shape: parse at the edge, embed through the gateway (same keys, limits,
budgets, metrics with `api="embeddings"` and cost as generation), render floats or base64.

base64 is the little-endian float32 bytes of each vector (what the openai SDK decodes with
`np.frombuffer(..., "float32")`); usage is `{prompt_tokens, total_tokens}`, how they were counted in
`x-jumpgate-token-source`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api import render
from service.api.deps import state_of
from service.api.embedding_models import EmbeddingBody
from service.api.finish import Finisher
from service.api.guards import check_json_body
from service.api.routes import TIMEOUT_HEADER, client_timeout, read_body
from service.api.wire import parse_body
from service.config.tenancy import InputLimits
from service.embedding import EmbeddingRequest, Embeddings
from service.errors import PayloadTooLarge
from service.telemetry.trace import Trace
from service.tenancy import Tenant

router = APIRouter(redirect_slashes=False)
#: served by GatewayApp's fast path for POST (like the generation routes), registered here for OpenAPI and 405
EMBEDDINGS_PATH = "/v1/embeddings"


@router.post(EMBEDDINGS_PATH)
async def embeddings(request: Request) -> Response:
    state = state_of(request)
    trace = Trace("embeddings", request_id=request.state.request_id)
    if state.tracing is not None:
        state.tracing.start_request(trace, request.scope["headers"])
    tenant: Tenant | None = None
    try:
        tenant = state.auth.identify(request.headers.get("authorization"))
        trace.tenant = tenant.name
        check_json_body(request.scope["headers"])
        req = _parse(request, await read_body(request), state.input_limits)
        state.auth.authorize(tenant, req.model)
        await state.limiter.admit(tenant)
        result = await state.gateway.embed(req, trace)
        return render.JSONResponse(body(req, result), headers=headers(result))
    except Exception as exc:
        trace.note_failure(exc)
        raise
    finally:
        await Finisher(state.metrics, state.limiter, tenant, trace).finish()


def _parse(request: Request, raw: bytes, limits: InputLimits) -> EmbeddingRequest:
    req = parse_body(raw, EmbeddingBody, limits).to_canonical(request.state.request_id)
    chars = sum(len(i) for i in req.inputs if isinstance(i, str))
    if chars > limits.max_prompt_chars:
        raise PayloadTooLarge(f"the input is {chars} characters; the limit is {limits.max_prompt_chars}",
                              param="input")
    timeout = request.headers.get(TIMEOUT_HEADER)
    return req if timeout is None else replace(req, timeout_s=client_timeout(timeout))


def encode_base64(vector: Sequence[float]) -> str:
    """Little-endian float32, base64: the openai SDK's default `encoding_format`."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def body(req: EmbeddingRequest, result: Embeddings) -> dict[str, Any]:
    as_base64 = req.encoding_format == "base64"
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode_base64(v) if as_base64 else v}
                 for i, v in enumerate(result.vectors)],
        "model": req.model,
        "usage": {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.prompt_tokens},
    }


def headers(result: Embeddings) -> dict[str, str]:
    out = {"x-jumpgate-endpoint": result.endpoint, "x-jumpgate-attempts": str(result.attempts),
           "x-jumpgate-token-source": result.usage.source.value, "x-jumpgate-cost-usd": f"{result.cost_usd:.10f}",
           "x-jumpgate-upstream-calls": str(result.calls)}
    if result.dimensions_by is not None:
        out["x-jumpgate-dimensions"] = result.dimensions_by
    return out
