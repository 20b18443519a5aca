"""Tool calls, images and constrained output on the OpenAI-speaking containers (TGI Messages API, LMI vLLM chat):
the request fields, and the calls read back in every shape the containers answer (openai-surface.md 1.3, 1.4).

Sent: messages with `image_url` parts, assistant `tool_calls` (no `content` when there is none) and `tool`
messages with their `tool_call_id`; `tools` and `tool_choice` in OpenAI's shape (both containers read it); a JSON
Schema constraint as TGI's own `response_format` `{"type": "json", "value": schema}`, the form every TGI since
2.1 takes (OpenAI's `json_schema` shape does not deserialize there).

Read, non-streaming: `tool_calls` in the message (or beside it), `arguments` as a JSON string (TGI >= 3.2, vLLM)
or an object (TGI < 3.2), `parameters` instead of `arguments` (TGI 1.4). Streaming, calls are collected per
choice and position and emitted whole at the end of the stream: a list of deltas or a single object (TGI < 3.2);
the name once (TGI >= 3.2, vLLM) or repeated in every chunk (LMI rolling batch, named choice); for TGI 2.4-3.1 no
name at all, the fragments spelling the whole constrained JSON `{"function": {"_name": ..., <arguments>}}` and
then the end token, which is read here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.adapters.base import stream_failure
from service.canonical import GenerationRequest, ImagePart, Message, ToolCall, ToolCallEvent

_DECODER = json.JSONDecoder()


def message_body(m: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"role": m.role}
    if m.parts:
        body["content"] = [{"type": "image_url", "image_url": {"url": p.url}} if isinstance(p, ImagePart)
                           else {"type": "text", "text": p.text} for p in m.parts]
    elif m.content or not m.tool_calls:
        body["content"] = m.content
    if m.tool_calls:
        body["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                              for c in m.tool_calls]
    if m.tool_call_id is not None:
        body["tool_call_id"] = m.tool_call_id
    return body


def tool_fields(req: GenerationRequest, body: dict[str, Any]) -> None:
    """`tools`, `tool_choice` and a grammar constraint, added to a chat body."""
    if req.tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                           "parameters": dict(t.parameters)}} for t in req.tools]
        choice = req.tool_choice
        if choice is not None:
            body["tool_choice"] = choice.mode if choice.mode != "function" else {
                "type": "function", "function": {"name": choice.name}}
    if req.constraint is not None:
        body["response_format"] = {"type": "json", "value": dict(req.constraint)}


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps({} if value is None else value, ensure_ascii=False)


def tool_calls(item: dict[str, Any], message: Any) -> tuple[ToolCall, ...]:
    raw = message.get("tool_calls") if isinstance(message, dict) else None
    raw = raw or item.get("tool_calls")
    calls = []
    for call in [raw] if isinstance(raw, dict) else raw or ():
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name or not isinstance(function, dict):
            continue
        arguments = function["arguments"] if "arguments" in function else function.get("parameters")
        calls.append(ToolCall(str(call.get("id", "")), name, _arguments(arguments)))
    return tuple(calls)


@dataclass
class _Pending:
    id: str = ""
    name: str | None = None
    fragments: list[str] = field(default_factory=list)


class ToolCallCollector:
    """Tool call deltas of one stream, put together; `calls()` at the end of the stream."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], _Pending] = {}

    def add(self, choice_index: int, raw: Any) -> None:
        for delta in [raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else ():
            if not isinstance(delta, dict):
                continue
            index, inner = delta.get("index"), delta.get("function")
            position = index if isinstance(index, int) else 0
            pending = self._pending.setdefault((choice_index, position), _Pending())
            function: dict[str, Any] = inner if isinstance(inner, dict) else {}
            if isinstance(delta.get("id"), str) and delta["id"] and not pending.id:
                pending.id = delta["id"]
            if isinstance(function.get("name"), str) and function["name"] and pending.name is None:
                pending.name = function["name"]  # repeated in every LMI named-choice chunk: the first is the name
            if isinstance(function.get("arguments"), str):
                pending.fragments.append(function["arguments"])

    def __bool__(self) -> bool:
        return bool(self._pending)

    def calls(self) -> list[ToolCallEvent]:
        out = []
        for (index, position), pending in sorted(self._pending.items()):
            text = "".join(pending.fragments)
            name, arguments = (pending.name, _leading_json(text)) if pending.name else _constrained(text)
            out.append(ToolCallEvent(ToolCall(pending.id, name, arguments), position, index))
        return out


def _leading_json(text: str) -> str:
    """The arguments' JSON without what followed it in the stream (an end token); the text as it is otherwise."""
    start = text.lstrip()
    try:
        value, _ = _DECODER.raw_decode(start)
    except ValueError:
        return text
    return json.dumps(value, ensure_ascii=False)


def _constrained(text: str) -> tuple[str, str]:
    """TGI 2.4-3.1: name and arguments from the streamed grammar output `{"function": {"_name": ..., ...}}`."""
    try:
        value, _ = _DECODER.raw_decode(text.lstrip())
        function = dict(value["function"])
        name = function.pop("_name")
    except (ValueError, KeyError, TypeError):
        raise stream_failure("openai", "a streamed tool call could not be read") from None
    if not isinstance(name, str) or not name:
        raise stream_failure("openai", "a streamed tool call has no function name")
    return name, json.dumps(function, ensure_ascii=False)
