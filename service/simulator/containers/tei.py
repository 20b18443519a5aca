"""Hugging Face TEI (text-embeddings-inference) on SageMaker: ``/invocations`` → ``embed`` (section 5.2;
re-expressed from TEI's router ``http/server.rs``, ``core/tokenization.rs`` and ``core/infer.rs``).

Request ``{inputs, truncate, truncation_direction, prompt_name, normalize, dimensions}``; ``inputs`` is a
string, token ids, or a batch of either. The answer is always a list of vectors. Errors are
``{"error", "error_type"}`` with TEI's variant names: an empty batch is 400 "`inputs` cannot be empty"
(``Empty``), an empty string 400 "Input validation error: `inputs` cannot be empty", more inputs than
``max_batch_size`` (--max-client-batch-size, 32) 422 "batch size N > maximum allowed batch size M", an
input over ``max_input_tokens`` 422 "Input validation error: `inputs` must have less than M tokens.
Given: N" unless truncation is on (per request, else --auto-truncate: off before 1.9.0, on from 1.9.0).
``dimensions`` exists from 1.8.0 (earlier it is an unknown field, ignored): 0 or more than the model's
dimension is a 422; the vector is cut, then re-normalized when ``normalize`` (default true).
A body that does not deserialize is axum's plain-text 422; a non-JSON content type is a 415.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from service.simulator.containers.base import ContainerError, Invocation, Output, dumps, is_bool, is_int, is_str
from service.simulator.containers.embedding_vectors import embed, input_pieces, l2_normalize
from service.simulator.textgen import BOS_TEXT

_DIRECTIONS = ("left", "Left", "right", "Right")


def _error(status: int, message: str, kind: str) -> ContainerError:
    return ContainerError(status, dumps({"error": message, "error_type": kind}))


def _deserialize(reason: str) -> ContainerError:
    return ContainerError(422, f"Failed to deserialize the JSON body into the target type: {reason}".encode(),
                          "text/plain; charset=utf-8")


def _is_ids(v: Any) -> bool:
    return isinstance(v, list) and all(is_int(i) and i >= 0 for i in v)


def _inputs(raw: Any) -> list[str | list[int]]:
    """TEI's ``Input``: one ``InputType`` (string or ids) or a batch of them."""
    if is_str(raw) or (_is_ids(raw) and raw):
        return [raw]
    if isinstance(raw, list) and all(is_str(i) or _is_ids(i) for i in raw):
        return list(raw)
    raise _deserialize("inputs: data did not match any variant of untagged enum Input")


def _request(inv: Invocation) -> dict[str, Any]:
    if inv.content_type.split(";")[0].strip().lower() != "application/json":
        raise ContainerError(415, b"Expected request with `Content-Type: application/json`",
                             "text/plain; charset=utf-8")
    try:
        body = orjson.loads(inv.body)
    except orjson.JSONDecodeError as exc:
        raise ContainerError(400, f"Failed to parse the request body as JSON: {exc}".encode(),
                             "text/plain; charset=utf-8") from None
    if not isinstance(body, dict) or "inputs" not in body:
        raise _deserialize("missing field `inputs`")
    checks: dict[str, Callable[[Any], bool]] = {"truncate": is_bool, "normalize": is_bool, "prompt_name": is_str,
              "truncation_direction": lambda v: v in _DIRECTIONS}
    if inv.endpoint.at_least("1.8.0"):
        checks["dimensions"] = lambda v: is_int(v) and v >= 0
    for key, check in checks.items():
        if body.get(key) is not None and not check(body[key]):
            raise _deserialize(f"{key}: invalid value {str(body[key])[:40]!r}")
    return body


class Tei:
    def handle(self, inv: Invocation) -> Output:
        endpoint = inv.endpoint
        body = _request(inv)
        inputs = _inputs(body["inputs"])
        if not inputs:
            raise _error(400, "`inputs` cannot be empty", "Empty")
        if len(inputs) > endpoint.max_batch_size:
            raise _error(422, f"batch size {len(inputs)} > maximum allowed batch size {endpoint.max_batch_size}",
                         "Validation")
        truncate = body.get("truncate")
        if truncate is None:
            truncate = endpoint.at_least("1.9.0")  # --auto-truncate became the default in 1.9.0
        dimensions = body.get("dimensions") if endpoint.at_least("1.8.0") else None
        if dimensions == 0:
            raise _error(422, "Input validation error: `dimensions` should be positive", "Validation")
        left = body.get("truncation_direction") in ("left", "Left")
        vectors, tokens = [], 0
        for item in inputs:
            pieces = input_pieces(item)
            if pieces == [BOS_TEXT]:
                raise _error(400, "Input validation error: `inputs` cannot be empty", "Empty")
            if len(pieces) > endpoint.max_input_tokens:
                if not truncate:
                    raise _error(422, f"Input validation error: `inputs` must have less than "
                                      f"{endpoint.max_input_tokens} tokens. Given: {len(pieces)}", "Validation")
                pieces = pieces[-endpoint.max_input_tokens:] if left else pieces[:endpoint.max_input_tokens]
            tokens += len(pieces)
            vectors.append(embed(pieces, endpoint.embedding_dim, body.get("normalize") is not False))
        if dimensions is not None and dimensions > endpoint.embedding_dim:
            raise _error(422, "Input validation error: `dimensions` should be smaller than the maximum embedding "
                              "dimension.", "Validation")
        if dimensions is not None:
            vectors = [cut(v, dimensions, body.get("normalize") is not False) for v in vectors]
        return Output("application/json", [dumps(vectors)], tokens, 0)

    def error_body(self, status: int, message: str) -> bytes:
        kind = {400: "Empty", 422: "Validation", 424: "Backend", 429: "Overloaded", 503: "Unhealthy"}
        return dumps({"error": message, "error_type": kind.get(status, "Backend")})


def cut(vector: list[float], dimensions: int, normalize: bool) -> list[float]:
    """TEI's MRL path: truncate, then re-normalize."""
    head = vector[:dimensions]
    return l2_normalize(head) if normalize else head
