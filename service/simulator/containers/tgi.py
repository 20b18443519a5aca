"""Hugging Face TGI on SageMaker (wire-formats.md section 2).

``/invocations`` accepts an untagged union tried in order: Generate (``inputs``), Chat (``messages``),
Completion (``prompt``); a body matching none is a 422 plain-text deserialization error. The Generate
variant is here; Chat and Completion are in ``tgi_openai``. Validation texts are TGI's, wrapped as
``{"error": "Input validation error: ...", "error_type": "validation"}`` (422). When ``stream`` is true the
validation error arrives inside the 200 stream instead, as TGI does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson

from service.simulator.containers import tgi_grammar, tgi_openai, tgi_vision
from service.simulator.containers.base import (
    ContainerError,
    Invocation,
    Output,
    dumps,
    is_bool,
    is_dict,
    is_str,
    param,
    wrong_type,
)
from service.simulator.containers.meta_tools import respond, user_words
from service.simulator.containers.tgi_rules import (
    PARAM_TYPES,
    SSE,
    Invalid,
    Plan,
    deserialize_error,
    sse,
    token_json,
    top_tokens,
    validate,
    validation_body,
)
from service.simulator.model import SimEndpoint
from service.simulator.textgen import Generation, count_tokens, piece_id, prompt_pieces, scripted


class Tgi:
    """The TGI container; ``error_body`` follows TGI's ErrorResponse and status-to-kind mapping."""

    _KIND = {422: "validation", 424: "generation", 429: "overloaded", 500: "incomplete_generation"}

    def handle(self, inv: Invocation) -> Output:
        if len(inv.body) > inv.endpoint.payload_limit:
            # axum's body limit (PAYLOAD_LIMIT, 2,000,000 bytes by default): plain text, before any parsing
            raise ContainerError(413, b"Failed to buffer the request body: length limit exceeded",
                                 "text/plain; charset=utf-8")
        try:
            body = orjson.loads(inv.body)
        except orjson.JSONDecodeError as exc:
            raise ContainerError(422, f"Failed to parse the request body as JSON: {exc}".encode(),
                                 "text/plain; charset=utf-8") from None
        if isinstance(body, dict):
            for parse, answer in _VARIANTS:
                request = parse(body, inv.endpoint)
                if request is not None:
                    return answer(inv, request)
        raise deserialize_error("data did not match any variant of untagged enum SagemakerRequest")

    def error_body(self, status: int, message: str) -> bytes:
        return dumps({"error": message, "error_type": self._KIND.get(status, "generation")})


def _parse_generate(body: dict[str, Any], endpoint: SimEndpoint) -> dict[str, Any] | None:
    params = body.get("parameters")
    if not is_str(body.get("inputs")) or not (params is None or is_dict(params)):
        return None
    if not is_bool(body.get("stream", False)) or wrong_type(params or {}, PARAM_TYPES):
        return None
    grammar = (params or {}).get("grammar")
    if grammar is not None and not tgi_grammar.deserializes(endpoint, grammar):
        return None
    return body


def _answer_generate(inv: Invocation, body: dict[str, Any]) -> Output:
    prompt, raw_params, stream = body["inputs"], body.get("parameters"), bool(body.get("stream", False))
    # v1.4+: no `parameters` at all means do_sample=true (section 2.2).
    p: dict[str, Any] = {"do_sample": True} if raw_params is None else raw_params
    try:
        text_prompt, images = tgi_vision.check(inv.endpoint, prompt)
        plan = validate(p, text_prompt, inv.endpoint.max_total_tokens, stream, inv.random_seed,
                        max_top_n=inv.endpoint.max_top_n_tokens, extra_tokens=images * tgi_vision.IMAGE_TOKENS)
        grammar = tgi_grammar.validate(inv.endpoint, p["grammar"]) if p.get("grammar") is not None else None
    except Invalid as exc:
        if stream:
            return Output(SSE, [sse({"error": f"Input validation error: {exc}", "error_type": "validation"})],
                          count_tokens(prompt), 0, streamed=True)
        raise ContainerError(422, validation_body(str(exc))) from None
    if grammar is not None:
        rng = random.Random(f"{plan.generation_seed}|grammar|{prompt}")
        gen = scripted(tgi_grammar.answer(*grammar, rng, user_words(prompt)), seed=plan.generation_seed,
                       max_new_tokens=plan.max_new_tokens, stop=plan.stop)
    else:
        gen = respond(prompt, seed=plan.generation_seed, max_new_tokens=plan.max_new_tokens, stop=plan.stop,
                      fault=inv.tool_fault)
    # return_full_text defaults to true on /invocations for text-generation models (section 2.2).
    text = (prompt if param(p, "return_full_text", True) else "") + gen.text
    if stream:
        return _stream(gen, text, plan, p)
    return Output("application/json", [dumps([_response(gen, text, plan, p, prompt)])], plan.input_length,
                  len(gen.tokens))


def _response(gen: Generation, text: str, plan: Plan, p: dict[str, Any], prompt: str) -> dict[str, Any]:
    result: dict[str, Any] = {"generated_text": text}
    prefill_wanted = bool(param(p, "decoder_input_details", False))
    if param(p, "details", False) or prefill_wanted:
        details: dict[str, Any] = {
            "finish_reason": gen.finish, "generated_tokens": len(gen.tokens), "seed": plan.seed,
            "prefill": _prefill(prompt, plan.input_length) if prefill_wanted else [],
            "tokens": [token_json(t) for t in gen.tokens],
        }
        if param(p, "top_n_tokens", 0):
            details["top_tokens"] = [[token_json(x) for x in top_tokens(t, p["top_n_tokens"])] for t in gen.tokens]
        result["details"] = details
    return result


def _prefill(prompt: str, input_length: int) -> list[dict[str, Any]]:
    pieces = prompt_pieces(prompt)[-input_length:]
    return [{"id": 1 if i == 0 and piece == "<s>" else piece_id(piece), "text": piece,
             "logprob": None if i == 0 else -1.0} for i, piece in enumerate(pieces)]


def _stream(gen: Generation, text: str, plan: Plan, p: dict[str, Any]) -> Output:
    chunks = []
    last = len(gen.tokens)
    top_n = param(p, "top_n_tokens", 0)
    for index, tok in enumerate(gen.tokens, start=1):
        event: dict[str, Any] = {"index": index, "token": token_json(tok), "generated_text": None, "details": None}
        if top_n:  # StreamResponse.top_tokens: this position's alternatives, left out when empty (section 3.2)
            event["top_tokens"] = [token_json(x) for x in top_tokens(tok, top_n)]
        if index == last:
            event["generated_text"] = text
            if param(p, "details", False):
                event["details"] = {"finish_reason": gen.finish, "generated_tokens": last, "seed": plan.seed,
                                    "input_length": plan.input_length}
        chunks.append(sse(event))
    return Output(SSE, chunks, plan.input_length, last, streamed=True, error_line=_stream_error)


def _stream_error(message: str) -> bytes:
    return sse({"error": message, "error_type": "generation"})


_VARIANTS: tuple[tuple[Callable[[dict[str, Any], SimEndpoint], Any], Callable[[Invocation, Any], Output]], ...] = (
    (_parse_generate, _answer_generate),
    (tgi_openai.parse_chat, tgi_openai.answer_chat),
    (tgi_openai.parse_completion, tgi_openai.answer_completion),
)
