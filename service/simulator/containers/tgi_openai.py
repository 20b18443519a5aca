"""TGI's OpenAI-style variants on ``/invocations``: Chat (``messages``) and Completion (``prompt``), section 2.6.

Mapping to generate parameters follows TGI's ``try_into_generate``: ``temperature: 0`` means greedy, any
other value (or none) means sampling; ``top_p`` passes through, so 1.0 is still rejected; ``presence_penalty``
p becomes ``repetition_penalty`` p + 2. Messages are rendered as ``"role: content"`` lines plus
``"assistant:"``, a stand-in for the model's chat template that fixes the prompt token count.
Finish reasons use the OpenAI names (``eos_token`` and ``stop_sequence`` → ``stop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.simulator.containers import tgi_chat, tgi_grammar, tgi_tools
from service.simulator.containers.base import (
    ContainerError,
    Invocation,
    Output,
    dumps,
    is_bool,
    is_dict,
    is_num,
    is_str,
    is_strs,
    is_uint,
    param,
    wrong_type,
)
from service.simulator.containers.tgi_chat import DONE as _DONE
from service.simulator.containers.tgi_chat import openai_error as _openai_error
from service.simulator.containers.tgi_rules import SSE, Invalid, Plan, sse, validate, validation_body
from service.simulator.model import SimEndpoint
from service.simulator.textgen import Generation, count_tokens, generate

_OPENAI_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}

_COMMON_TYPES: dict[str, Callable[[Any], bool]] = {
    "model": is_str, "max_tokens": is_uint, "max_completion_tokens": is_uint, "temperature": is_num,
    "top_p": is_num, "seed": is_uint, "frequency_penalty": is_num, "presence_penalty": is_num,
    "repetition_penalty": is_num, "stream": is_bool, "stream_options": is_dict, "logprobs": is_bool,
    "top_logprobs": is_uint,
}


def _valid_call(call: Any) -> bool:
    if not is_dict(call) or not is_dict(call.get("function")):
        return False
    function = call["function"]
    return is_str(call.get("id")) and is_str(function.get("name")) and ("arguments" in function
                                                                       or "parameters" in function)


def _valid_message(m: Any) -> bool:
    """TGI's ``MessageBody``: ``content`` (a string or a list of parts), or ``tool_calls`` (then ``content``
    may be null or absent)."""
    if not is_dict(m) or not is_str(m.get("role")):
        return False
    content, calls = m.get("content"), m.get("tool_calls")
    if is_str(content) or (isinstance(content, list) and all(is_dict(p) for p in content)):
        return True
    return isinstance(calls, list) and bool(calls) and all(_valid_call(c) for c in calls)


def parse_chat(body: dict[str, Any], endpoint: SimEndpoint) -> dict[str, Any] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(_valid_message(m) for m in messages):
        return None
    stop = body.get("stop")
    if wrong_type(body, _COMMON_TYPES) or not (stop is None or is_strs(stop)):
        return None
    fmt = body.get("response_format")
    if tgi_tools.parse(body) is False or (fmt is not None and not tgi_grammar.deserializes(endpoint, fmt)):
        return None
    return body


def parse_completion(body: dict[str, Any], endpoint: SimEndpoint) -> dict[str, Any] | None:
    prompt = body.get("prompt")
    if not (is_str(prompt) or (is_strs(prompt) and prompt)) or wrong_type(body, _COMMON_TYPES):
        return None
    stop = body.get("stop")
    return body if stop is None or is_strs(stop) or is_str(stop) else None


def _generate_params(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI body as TGI generate parameters (``try_into_generate``)."""
    temperature = body.get("temperature")
    greedy = temperature == 0
    p: dict[str, Any] = {
        "do_sample": not greedy, "temperature": None if greedy else temperature, "top_p": body.get("top_p"),
        "max_new_tokens": param(body, "max_tokens", body.get("max_completion_tokens")),
        "seed": body.get("seed"), "frequency_penalty": body.get("frequency_penalty"),
        "top_n_tokens": body.get("top_logprobs"), "repetition_penalty": body.get("repetition_penalty"),
    }
    stop = body.get("stop")
    p["stop"] = [stop] if isinstance(stop, str) else stop
    if body.get("presence_penalty") is not None:
        p["repetition_penalty"] = body["presence_penalty"] + 2.0
    return p


def _plan(inv: Invocation, body: dict[str, Any], prompt: str, extra_tokens: int = 0) -> Plan:
    stream = bool(body.get("stream", False))
    return validate(_generate_params(body), prompt, inv.endpoint.max_total_tokens, stream, inv.random_seed,
                    max_top_n=inv.endpoint.max_top_n_tokens, extra_tokens=extra_tokens)


def _envelope(obj: str, inv: Invocation) -> dict[str, Any]:
    return tgi_chat.envelope(obj, inv)


def _usage(prompt_tokens: int, gens: list[Generation]) -> dict[str, int]:
    completion = sum(len(g.tokens) for g in gens)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _invalid(inv: Invocation, body: dict[str, Any], exc: Invalid, prompt: str) -> Output:
    if body.get("stream"):
        # In a stream TGI reports errors as an OpenAI error event, always with status 422 (section 2.6).
        event = {"error": {"message": f"Input validation error: {exc}", "http_status_code": 422}}
        return Output(SSE, [sse(event)], count_tokens(prompt), 0, streamed=True)
    raise ContainerError(422, validation_body(str(exc))) from None


def answer_chat(inv: Invocation, body: dict[str, Any]) -> Output:
    def plan_for(prompt: str, extra_tokens: int) -> Plan:
        return _plan(inv, body, prompt, extra_tokens)

    def invalid(exc: Invalid, prompt: str) -> Output:
        return _invalid(inv, body, exc, prompt)

    return tgi_chat.answer(inv, body, plan_for, invalid)


def answer_completion(inv: Invocation, body: dict[str, Any]) -> Output:
    prompts = [body["prompt"]] if isinstance(body["prompt"], str) else body["prompt"]
    try:
        plans = [_plan(inv, body, prompt) for prompt in prompts]
    except Invalid as exc:
        return _invalid(inv, body, exc, prompts[0])
    gens = [generate(pr, seed=pl.generation_seed, max_new_tokens=pl.max_new_tokens, stop=pl.stop)
            for pr, pl in zip(prompts, plans, strict=True)]
    prompt_tokens = sum(pl.input_length for pl in plans)
    if body.get("stream"):
        return _completion_stream(inv, gens, prompt_tokens)
    result = _envelope("text_completion", inv)
    result["choices"] = [{"index": i, "text": g.text, "logprobs": None, "finish_reason": _OPENAI_FINISH[g.finish]}
                         for i, g in enumerate(gens)]
    result["usage"] = _usage(prompt_tokens, gens)
    return Output("application/json", [dumps(result)], prompt_tokens, sum(len(g.tokens) for g in gens))


def _completion_stream(inv: Invocation, gens: list[Generation], prompt_tokens: int) -> Output:
    base = _envelope("text_completion", inv)
    chunks = []
    for index, gen in enumerate(gens):
        for i, tok in enumerate(gen.tokens):
            finish = _OPENAI_FINISH[gen.finish] if i == len(gen.tokens) - 1 else None
            choice = {"index": index, "text": "" if tok.special else tok.text, "logprobs": None,
                      "finish_reason": finish}
            chunks.append(sse({**base, "choices": [choice]}))
    chunks.append(_DONE)
    tokens = sum(len(g.tokens) for g in gens)
    return Output(SSE, chunks, prompt_tokens, tokens, streamed=True, error_line=_openai_error)
