"""TGI's Chat variant (``messages``) on ``/invocations``: plain answers, tools (tgi_tools), TGI's own
``response_format`` (tgi_grammar), ``logprobs`` / ``top_logprobs`` and image parts (tgi_vision).

Order of checks, as TGI's ``try_into_generate`` then ``validate``: tools with ``response_format`` → 422
tool_error "Grammar and tools are mutually exclusive"; a named tool that is not offered → tool_error; then
the generate validation (ranges, ``top_logprobs`` ≤ MAX_TOP_N_TOKENS, grammar enabled and valid, images).
Logprobs: ``{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}``, no ``bytes``,
special tokens (EOS) included. Streams: < 3.2 put ``usage`` in the last token's chunk, >= 3.2 send a
separate chunk with empty ``choices``.
"""

from __future__ import annotations

import random
from typing import Any

from service.simulator.containers import tgi_grammar, tgi_tools, tgi_vision
from service.simulator.containers.base import ContainerError, Invocation, Output, dumps, param
from service.simulator.containers.meta_tools import respond
from service.simulator.containers.tgi_rules import SSE, Invalid, Plan, sse, top_tokens
from service.simulator.textgen import Generation, Tok, count_tokens

_OPENAI_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
DONE = b"data: [DONE]\n\n"


def render(messages: list[dict[str, Any]], suffix: str = "") -> str:
    """A stand-in chat template (``role: content`` lines); tool calls in the history are rendered as their
    JSON, as TGI does before templating; ``suffix`` (the tools) goes at the end of the last message."""
    lines = []
    for i, m in enumerate(messages):
        text = tgi_vision.flatten(m.get("content"))
        if m.get("tool_calls"):
            text += dumps(m["tool_calls"]).decode()
        lines.append(f"{m['role']}: {text}{suffix if i == len(messages) - 1 else ''}\n")
    return "".join(lines) + "assistant:"


def _user_text(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    users = [m for m in messages if m.get("role") == "user"]
    text = tgi_vision.MARKDOWN_IMAGE.sub("", tgi_vision.flatten(users[-1].get("content"))) if users else ""
    return text, bool(messages) and messages[-1].get("role") == "tool"


def answer(inv: Invocation, body: dict[str, Any], plan_for: Any, invalid: Any) -> Output:
    """``plan_for(prompt, extra_tokens)`` validates generation parameters (raises Invalid); ``invalid``
    turns an Invalid into the 422 answer (an in-stream event when streaming)."""
    messages, endpoint = body["messages"], inv.endpoint
    request = tgi_tools.parse(body)
    tools = request if isinstance(request, tgi_tools.ToolRequest) and tgi_tools.in_use(endpoint, request) else None
    fmt = body.get("response_format")
    if isinstance(request, tgi_tools.ToolRequest) and fmt is not None:  # checked before tool_choice is read
        raise tgi_tools.tool_error("Grammar and tools are mutually exclusive")
    if tools is not None:
        tgi_tools.check(tools)
    prompt = render(messages, tgi_tools.render_suffix(tools) if tools else "")
    try:
        text_prompt, images = tgi_vision.check(endpoint, prompt)
        plan = plan_for(text_prompt, images * tgi_vision.IMAGE_TOKENS)
        if tools is not None and not endpoint.grammar:
            raise Invalid("grammar is not supported")
        grammar = tgi_grammar.validate(endpoint, fmt) if fmt is not None else None
    except Invalid as exc:
        return invalid(exc, prompt)  # type: ignore[no-any-return]
    rng = random.Random(f"{plan.generation_seed}|chat|{prompt}")
    user_text, after_result = _user_text(messages)
    if tools is not None:
        return _tool_answer(inv, body, tools, plan, (user_text, after_result), rng)
    if grammar is not None:
        gen = tgi_tools.generation(tgi_grammar.answer(*grammar, rng, user_text), plan.generation_seed,
                                   plan.max_new_tokens)
    else:
        gen = respond(prompt, seed=plan.generation_seed, max_new_tokens=plan.max_new_tokens, stop=plan.stop,
                      fault=inv.tool_fault)
    if body.get("stream"):
        return _stream(inv, body, [(t, _text_delta(t)) for t in gen.tokens], gen, plan.input_length)
    message = {"role": "assistant", "content": gen.text}
    return _whole(inv, body, message, gen, plan.input_length)


def _tool_answer(inv: Invocation, body: dict[str, Any], tools: tgi_tools.ToolRequest, plan: Plan,
                 user: tuple[str, bool], rng: random.Random) -> Output:
    endpoint, seed = inv.endpoint, plan.generation_seed
    call = tgi_tools.first_call(tools, user[0], user[1], rng)
    words = respond(render(body["messages"]), seed=seed, max_new_tokens=plan.max_new_tokens).text.strip()
    gen = tgi_tools.generation(tgi_tools.constrained_text(endpoint, call, words), seed, plan.max_new_tokens)
    plain_body = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "tool_prompt")}
    second_prompt = render(body["messages"])
    if body.get("stream"):
        ident = tgi_tools.next_tool_call_id(body["messages"], rng) if endpoint.at_least("3.2.0") else ""
        deltas, no_tool = tgi_tools.stream_deltas(endpoint, gen, ident)
        if not no_tool:
            return _stream(inv, body, deltas, gen, plan.input_length, after_call=endpoint.at_least("3.2.0"))
        second = respond(second_prompt, seed=seed, max_new_tokens=plan.max_new_tokens, stop=plan.stop)
        return _stream(inv, plain_body, [(t, _text_delta(t)) for t in second.tokens], second,
                       count_tokens(second_prompt))
    name, arguments = tgi_tools.parse_output(endpoint, gen.text)
    if name == "no_tool" and endpoint.at_least("3.2.0"):
        second = respond(second_prompt, seed=seed, max_new_tokens=plan.max_new_tokens, stop=plan.stop)
        return _whole(inv, plain_body, {"role": "assistant", "content": second.text}, second,
                      count_tokens(second_prompt))
    if name == "no_tool":
        return _whole(inv, body, {"role": "assistant", "content": arguments.get("content", "")}, gen,
                      plan.input_length)
    return _whole(inv, body, tgi_tools.message(endpoint, name, arguments), gen, plan.input_length)


def envelope(obj: str, inv: Invocation) -> dict[str, Any]:
    import time

    return {"id": "", "object": obj, "created": int(time.time()), "model": inv.endpoint.name,
            "system_fingerprint": f"{inv.endpoint.version or '3.3.7'}-native"}


def usage(prompt_tokens: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _logprob(tok: Tok, top_n: int) -> dict[str, Any]:
    tops = top_tokens(tok, top_n) if top_n else []
    return {"token": tok.text, "logprob": tok.logprob,
            "top_logprobs": [{"token": t.text, "logprob": t.logprob} for t in tops]}


def _whole(inv: Invocation, body: dict[str, Any], message: dict[str, Any], gen: Generation,
           prompt_tokens: int) -> Output:
    top_n = param(body, "top_logprobs", 0)
    logprobs = {"content": [_logprob(t, top_n) for t in gen.tokens]} if body.get("logprobs") else None
    result = envelope("chat.completion", inv)
    result["choices"] = [{"index": 0, "message": message, "logprobs": logprobs,
                          "finish_reason": _OPENAI_FINISH[gen.finish]}]
    result["usage"] = usage(prompt_tokens, len(gen.tokens))
    return Output("application/json", [dumps(result)], prompt_tokens, len(gen.tokens))


def _text_delta(tok: Tok) -> dict[str, Any]:
    return {"role": "assistant", "content": "" if tok.special else tok.text}


def _stream(inv: Invocation, body: dict[str, Any], deltas: list[tuple[Tok, dict[str, Any]]], gen: Generation,
            prompt_tokens: int, *, after_call: bool = False) -> Output:
    """One chunk per (token, delta). The chunk of the generation's last token carries finish_reason, except
    after a >= 3.2 tool call, whose last token TGI never sends."""
    base = envelope("chat.completion.chunk", inv)
    top_n, want_usage = param(body, "top_logprobs", 0), param(param(body, "stream_options", {}), "include_usage", False)
    separate_usage = inv.endpoint.at_least("3.2.0")
    last = gen.tokens[-1] if gen.tokens else None
    chunks = []
    for tok, delta in deltas:
        final = tok is last and not after_call
        choice = {"index": 0, "delta": delta, "logprobs": {"content": [_logprob(tok, top_n)]} if body.get("logprobs")
                  else None, "finish_reason": _OPENAI_FINISH[gen.finish] if final else None}
        chunk = {**base, "choices": [choice], "usage": None}
        if final and want_usage and not separate_usage:
            chunk["usage"] = usage(prompt_tokens, len(gen.tokens))
        chunks.append(sse(chunk))
    if want_usage and separate_usage:
        chunks.append(sse({**base, "choices": [], "usage": usage(prompt_tokens, len(gen.tokens))}))
    chunks.append(DONE)
    return Output(SSE, chunks, prompt_tokens, len(deltas), streamed=True, error_line=openai_error)


def openai_error(message: str) -> bytes:
    return sse({"error": {"message": message, "http_status_code": 422}})


__all__ = ["DONE", "ContainerError", "answer", "envelope", "openai_error", "render", "usage"]
