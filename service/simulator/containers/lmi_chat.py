"""LMI vLLM chat (``messages``): rolling batch (djl-serving's chat formatters) and async mode (vLLM's own
OpenAI objects), with tools (openai-surface.md section 1.4) and logprobs (section 3.3).

Tools need a declared parser (``tool_call_parser``: OPTION_ENABLE_AUTO_TOOL_CHOICE + OPTION_TOOL_CALL_PARSER).
The model writes its call in the parser's format (``llama3_json``: ``{"name", "parameters"}``, ``pythonic``:
``[f(a=1)]``) and the parser extracts it; a text that does not parse stays content (so ``tool_output``
faults reach the client as vLLM would pass them). Rolling batch (LMI <= 0.35 without async mode):
- ``auto`` without a parser → 424 "\"auto\" tool choice requires --enable-auto-tool-choice and
  --tool-call-parser to be set"; ``required`` → 424 'tool_choice = "required" is not supported!';
- named choice → guided JSON of the arguments; ``message.tool_calls`` (id ``chatcmpl-tool-<python id()>``)
  with ``content`` ``""``, finish_reason is the sequence's (``eos_token``); streamed as JSON lines repeating
  the name in every chunk, with no id or type;
- ``auto`` with a parser → ``message.tool_calls`` again (content: the text before the call, here none),
  finish_reason ``tool_calls``; streams send vLLM's deltas (id/type/name first, then argument fragments) and end
  with ``tool_calls`` (djl-serving ``output_formatter.py`` ``_json_chat_output_formatter`` and
  ``_jsonlines_chat_output_formatter``, 0.32.0-dlc to 0.35.0-dlc);
- logprobs: one "top" entry per token whatever ``top_logprobs``, ``bytes`` as code points; in streams the
  top entry's ``token`` is the logprob number and ``logprobs`` is a list (a trailing comma in LMI's code).
Async mode: vLLM objects (``message.tool_calls``, ``finish_reason`` ``tool_calls`` for auto/required),
``required`` supported (vLLM >= 0.8.3), errors ``{"code", "error"}`` with vLLM's 400, streams are vLLM
chunks as JSON lines ending with an empty line. Plain chat finish reasons are LMI's on rolling batch
(``eos_token``, ``length``, ``stop_sequence``) and OpenAI's in async mode.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from service.simulator.containers import lmi_format, tool_model
from service.simulator.containers.base import Invocation, Output, dumps, param
from service.simulator.containers.meta_tools import respond
from service.simulator.containers.tool_model import Call, ToolSpec
from service.simulator.textgen import Generation, Tok, count_tokens, scripted

_ASYNC_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
PARSERS = ("llama3_json", "pythonic")


def _tool_request(body: dict[str, Any]) -> tuple[list[ToolSpec], str]:
    tools = [tool_model.spec_from_json(t) for t in body.get("tools") or []]
    if None in tools:
        raise lmi_format.error("Invalid 'tools': each tool needs a function with a name", 400)
    choice = body.get("tool_choice", "auto" if tools else "none")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    if not isinstance(choice, str) or (choice not in ("auto", "none", "required")
                                       and choice not in {t.name for t in tools if t}):
        raise lmi_format.error(f"Invalid 'tool_choice': {str(choice)[:80]!r}", 400)
    return [t for t in tools if t], choice


def check_tools(inv: Invocation, tools: list[ToolSpec], choice: str) -> None:
    if not tools or choice == "none":
        return
    ep, status = inv.endpoint, 400 if inv.endpoint.async_mode else 424
    if choice == "required" and not ep.async_mode:
        raise lmi_format.error('tool_choice = "required" is not supported!', 424)
    if choice in ("auto", "required") and ep.tool_call_parser not in PARSERS:
        raise lmi_format.error('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                               "to be set", status)


def _written_call(parser: str, calls: list[Call], fault: str | None) -> str:
    """The model's raw text for its calls in the parser's format, bent by a ``tool_output`` fault."""
    if fault == "wrong_name":
        calls = [Call(c.name + "_v2", c.arguments) for c in calls]
    if parser == "pythonic":
        text = "[" + ", ".join(f"{c.name}(" + ", ".join(f"{k}={v!r}" for k, v in c.arguments.items()) + ")"
                               for c in calls) + "]"
    else:
        text = json.dumps({"name": calls[0].name, "parameters": calls[0].arguments}, ensure_ascii=False)
    if fault == "invalid_json":
        text = text.replace('"', "")
    return text[: max(1, len(text) // 2)] if fault == "malformed" else text


def _parse_written(parser: str, text: str) -> list[Call] | None:
    """What the vLLM parser extracts; None when the text is not a call (it then stays content)."""
    try:
        if parser == "pythonic":
            import ast

            tree = ast.parse(text.strip(), mode="eval").body
            if not isinstance(tree, ast.List):
                return None
            return [Call(c.func.id, {k.arg: ast.literal_eval(k.value) for k in c.keywords if k.arg})
                    for c in tree.elts if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
        value = json.loads(text)
        return [Call(value["name"], value.get("parameters", value.get("arguments", {})))]
    except (SyntaxError, ValueError, KeyError, TypeError):
        return None


def answer(inv: Invocation, body: dict[str, Any], prompt: str, max_new: int, seed: int,
           stops: list[str]) -> Output:
    tools, choice = _tool_request(body)
    check_tools(inv, tools, choice)
    messages = body["messages"]
    after_result = bool(messages) and messages[-1].get("role") in ("tool", "ipython")
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    user_text = user if isinstance(user, str) else ""
    rng = random.Random(f"{seed}|lmi-chat|{prompt}")
    calls = tool_model.decide(tools, choice, user_text, after_result, rng,
                              several=inv.endpoint.tool_call_parser == "pythonic") if tools else []
    named = choice not in ("auto", "none", "required")
    if named:
        # Guided decoding: the output is exactly the arguments JSON (no room for a fault).
        gen = scripted(json.dumps(calls[0].arguments, ensure_ascii=False), seed=seed, max_new_tokens=max_new)
        parsed: list[Call] | None = [Call(choice, calls[0].arguments)]
    elif calls:
        text = _written_call(str(inv.endpoint.tool_call_parser), calls, inv.tool_fault())
        gen = scripted(text, seed=seed, max_new_tokens=max_new, stop=stops)
        parsed = _parse_written(str(inv.endpoint.tool_call_parser), gen.text)
    else:
        gen = respond(prompt, seed=seed, max_new_tokens=max_new, stop=stops, fault=inv.tool_fault)
        parsed = None
    return _format(inv, body, gen, parsed, named, count_tokens(prompt), rng)


def _format(inv: Invocation, body: dict[str, Any], gen: Generation, calls: list[Call] | None, named: bool,
            prompt_tokens: int, rng: random.Random) -> Output:
    tool_calls = [{"id": f"chatcmpl-tool-{rng.getrandbits(64) if named else rng.getrandbits(128):x}",
                   "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                  for c in calls or []]
    ident = f"chatcmpl-{inv.next_id()}"
    if body.get("stream"):
        return _stream(inv, body, gen, tool_calls, named, ident, prompt_tokens)
    if inv.endpoint.async_mode:
        message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else gen.text_without_stop,
                                   "tool_calls": tool_calls}
        finish = "tool_calls" if tool_calls and not named else _ASYNC_FINISH[gen.finish]
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": _vllm_logprobs(body, gen.tokens),
                                  "finish_reason": finish, "stop_reason": None}
    else:
        content = "" if named else (None if tool_calls else gen.text_without_stop)
        rolling: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            rolling["tool_calls"] = tool_calls  # in the message, as LMI's formatter puts them
        choice = {"index": 0, "message": rolling, "logprobs": _lmi_logprobs(body, gen.tokens),
                  "finish_reason": "tool_calls" if tool_calls and not named else gen.finish}
    result = {"id": ident, "object": "chat.completion", "created": int(time.time()), "choices": [choice],
              "usage": _usage(prompt_tokens, len(gen.tokens))}
    if inv.endpoint.async_mode:
        result["model"] = inv.endpoint.name
    return Output("application/json", [dumps(result)], prompt_tokens, len(gen.tokens))


def _usage(prompt_tokens: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _lmi_logprobs(body: dict[str, Any], tokens: tuple[Tok, ...] | list[Tok]) -> Any:
    if not body.get("logprobs"):
        return None
    return {"content": [_lmi_entry(t, stream=False) for t in tokens]}


def _lmi_entry(t: Tok, *, stream: bool) -> dict[str, Any]:
    text = "" if t.special else t.text
    code_points = [ord(c) for c in text] if text else None
    top = {"token": t.logprob if stream else text, "logprob": t.logprob, "bytes": code_points}
    return {"token": text, "logprob": t.logprob, "bytes": code_points, "top_logprobs": [top]}


def _vllm_logprobs(body: dict[str, Any], tokens: tuple[Tok, ...] | list[Tok]) -> Any:
    if not body.get("logprobs"):
        return None
    n = param(body, "top_logprobs", 0)
    entries = []
    for t in tokens:
        if t.special:
            continue
        tops = [(t.text if k == 0 else f"{t.text}{k}", round(t.logprob - k, 4)) for k in range(n)]
        entries.append({"token": t.text, "logprob": t.logprob, "bytes": list(t.text.encode()),
                        "top_logprobs": [{"token": s, "logprob": lp, "bytes": list(s.encode())} for s, lp in tops]})
    return {"content": entries}


def _stream(inv: Invocation, body: dict[str, Any], gen: Generation, tool_calls: list[dict[str, Any]], named: bool,
            ident: str, prompt_tokens: int) -> Output:
    created, texts = int(time.time()), lmi_format.visible_texts(gen)
    base = {"id": ident, "object": "chat.completion.chunk", "created": created}
    if inv.endpoint.async_mode:
        base["model"] = inv.endpoint.name
    deltas = _tool_deltas(tool_calls, named, texts) if tool_calls else [{"content": t} for t in texts]
    lines = []
    for i, delta in enumerate(deltas):
        tok = gen.tokens[min(i, len(gen.tokens) - 1)]
        last = i == len(deltas) - 1
        if i == 0:
            delta = {**delta, "role": "assistant"}
        finish = ("tool_calls" if tool_calls and not named else _finish(inv, gen)) if last else None
        logprobs: Any = None
        if body.get("logprobs"):
            logprobs = _vllm_logprobs(body, [tok]) if inv.endpoint.async_mode else [{"content": [
                _lmi_entry(tok, stream=True)]}]
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
        lines.append(dumps(chunk) + b"\n")
    if inv.endpoint.async_mode:
        lines.append(b"\n")  # vLLM's [DONE], stripped to an empty line
    return Output(lmi_format.JSONLINES, lines, prompt_tokens, len(lines), streamed=True,
                  error_line=lmi_format.stream_error_line)


def _finish(inv: Invocation, gen: Generation) -> str:
    return _ASYNC_FINISH[gen.finish] if inv.endpoint.async_mode else gen.finish


def _tool_deltas(tool_calls: list[dict[str, Any]], named: bool, texts: list[str]) -> list[dict[str, Any]]:
    """Rolling named choice: every token as ``{"index", "function": {"name", "arguments"}}``; otherwise
    vLLM's parser deltas: id/type/name first, then the arguments of each call in pieces."""
    if named:
        name = tool_calls[0]["function"]["name"]
        return [{"tool_calls": [{"index": 0, "function": {"name": name, "arguments": t}}]} for t in texts]
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(tool_calls):
        deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"]}}]})
        arguments = call["function"]["arguments"]
        step = max(1, len(arguments) // 3)
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": arguments[i:i + step]}}]}
                   for i in range(0, len(arguments), step)]
    return deltas
