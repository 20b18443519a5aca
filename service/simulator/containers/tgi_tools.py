"""TGI Messages API tool calling (openai-surface.md section 1.3), version by version.

TGI constrains generation with a grammar built from the tools, so the model's raw text is always
``{"function": {"_name": <tool>, <arguments>...}}`` (1.4.x: ``{"function": {<arguments>}}``, no name).
What the client sees is TGI's post-processing of that text, re-expressed here from TGI's router:
- 1.4.x: tools apply only when ``tool_choice`` is given; one call ``{"id": 0, "function": {"name": "tools",
  "parameters": {..}}}``.
- 2.0-2.3: ``id: "0"``, ``arguments`` an object; under ``auto`` a synthetic ``notify_error`` tool is the
  model's way out, so a turn the model answers in words comes back as a ``notify_error`` call.
- 2.4-3.1: ``auto`` adds ``no_tool``; its text is generated inside the JSON (``{"_name": "no_tool",
  "content": ...}``) and returned as content. Streams send every token as a single ``tool_calls`` object
  (not a list) with ``id: ""``, ``name: null`` and raw fragments of the whole JSON (EOS text included);
  a streamed no_tool answer drops the spaces of its first fragment and stops at the first token holding a
  quote, with no finish_reason chunk.
- >= 3.2: ``arguments`` a JSON string; ``no_tool`` triggers a second, unconstrained generation; streams send
  a list, the first delta with the name and ``arguments: "{"``, and no chunk with finish_reason after a
  call. Stream ids: the next integer after the history's tool call ids, or a UUID when one is not numeric.
Everywhere: one call per turn, ``finish_reason`` ``stop``/``length`` (never ``tool_calls``), response id
``""``, ``description: null``. Errors: ``Tool error: ...`` (422, ``tool_error``).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

from service.simulator.containers import tool_model
from service.simulator.containers.base import ContainerError, dumps, is_dict, is_str
from service.simulator.containers.tool_model import Call, ToolSpec
from service.simulator.model import SimEndpoint
from service.simulator.textgen import Generation, Tok, scripted

DEFAULT_TOOL_PROMPT = ("\nGiven the functions available, please respond with a JSON for a function call with its "
                       "proper arguments that best answers the given prompt. Respond in the format {name: function "
                       "name, parameters: dictionary of argument name and its value}.Do not use variables.\n")
_WS_TRAIL = " \t\r\n,}"


@dataclass(frozen=True, slots=True)
class ToolRequest:
    tools: list[ToolSpec]
    choice: str  # auto | none | required | a tool name
    choice_given: bool
    prompt: str


def parse(body: dict[str, Any]) -> ToolRequest | bool | None:
    """The tool fields; None when there are none, False when they do not deserialize (no variant)."""
    raw, choice, prompt = body.get("tools"), body.get("tool_choice"), body.get("tool_prompt")
    if raw is None:
        return None if choice is None else False
    if not isinstance(raw, list) or not (prompt is None or is_str(prompt)):
        return False
    tools = [tool_model.spec_from_json(t) for t in raw]
    if not all(is_dict(t) and t.get("type", "function") == "function" and is_dict(t.get("function")) for t in raw) \
            or None in tools:
        return False
    name = _choice(choice)
    if name is None:
        return False
    return ToolRequest([t for t in tools if t], name, choice is not None,
                       DEFAULT_TOOL_PROMPT if prompt is None else prompt)


def _choice(choice: Any) -> str | None:
    if choice is None:
        return "auto"
    if is_str(choice):
        return str(choice)  # none | auto | required, or a bare function name
    if is_dict(choice) and is_dict(choice.get("function")) and is_str(choice["function"].get("name")):
        return str(choice["function"]["name"])
    return None


def tool_error(message: str) -> ContainerError:
    return ContainerError(422, dumps({"error": f"Tool error: {message}", "error_type": "tool_error"}))


def in_use(endpoint: SimEndpoint, request: ToolRequest | None) -> bool:
    if request is None or not request.tools or request.choice == "none":
        return False
    return request.choice_given or endpoint.at_least("2.0.0")


def check(request: ToolRequest) -> None:
    if request.choice not in ("auto", "required") and request.choice not in {t.name for t in request.tools}:
        raise tool_error(f"Tool with name {request.choice} not found")


def render_suffix(request: ToolRequest) -> str:
    """What TGI appends to the last message when the template does not use ``tools`` (section 1.3)."""
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                               "parameters": t.parameters}} for t in request.tools]
    return "\n---\n" + json.dumps(tools, ensure_ascii=False) + request.prompt


def constrained_text(endpoint: SimEndpoint, call: Call | None, words: str) -> str:
    """The grammar-constrained raw text: the call, or the version's way of answering in words."""
    if not endpoint.at_least("2.0.0"):
        return json.dumps({"function": call.arguments if call else {}}, ensure_ascii=False)
    if call is not None:
        return json.dumps({"function": {"_name": call.name, **call.arguments}}, ensure_ascii=False)
    if endpoint.at_least("2.4.0"):
        return json.dumps({"function": {"_name": "no_tool", "content": words}}, ensure_ascii=False)
    return json.dumps({"function": {"_name": "notify_error", "error": words}}, ensure_ascii=False)


def first_call(request: ToolRequest, user_text: str, after_result: bool, rng: random.Random) -> Call | None:
    # Under "required" or a named choice TGI's grammar has no way out; under "auto" the model may answer.
    calls = tool_model.decide(request.tools, request.choice, user_text, after_result, rng)
    return calls[0] if calls else None


def generation(text: str, seed: int, max_new: int) -> Generation:
    return scripted(text, seed=seed, max_new_tokens=max_new)


def parse_output(endpoint: SimEndpoint, text: str) -> tuple[str, dict[str, Any]]:
    """(name, arguments) from the constrained text, or TGI's tool error when it does not parse
    (e.g. cut off by ``max_tokens``)."""
    try:
        value = json.loads(text)
        function = value["function"]
        if not isinstance(function, dict):
            raise TypeError("function is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise tool_error(f"Failed to parse generated text: {exc} {text!r}") from None
    if not endpoint.at_least("2.0.0"):
        return "tools", function
    arguments = {k: v for k, v in function.items() if k != "_name"}
    return str(function.get("_name", "default_function_name")), arguments


def message(endpoint: SimEndpoint, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The non-stream assistant message for a call (ToolCallMessage: no ``content`` key)."""
    if not endpoint.at_least("2.0.0"):
        call: dict[str, Any] = {"id": 0, "type": "function",
                                "function": {"description": None, "name": name, "parameters": arguments}}
    else:
        args: Any = json.dumps(arguments, ensure_ascii=False, separators=(",", ":")) \
            if endpoint.at_least("3.2.0") else arguments
        call = {"id": "0", "type": "function", "function": {"description": None, "name": name, "arguments": args}}
    return {"role": "assistant", "tool_calls": [call]}


def next_tool_call_id(messages: list[Any], rng: random.Random) -> str:
    """TGI >= 3.2: one more than the largest numeric id in the history; a UUID when an id is not a number."""
    highest = 0
    for m in messages:
        for call in (m.get("tool_calls") or []) if is_dict(m) else []:
            ident = str(call.get("id")) if is_dict(call) and is_str(call.get("id")) else ""
            if not ident.isdigit():
                return str(uuid.UUID(int=rng.getrandbits(128), version=4))
            highest = max(highest, int(ident) + 1)
    return str(highest)


def _tool_delta(endpoint: SimEndpoint, arguments: str, name: str | None, ident: str) -> dict[str, Any]:
    call = {"index": 0, "id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "tool_calls": [call] if endpoint.at_least("3.2.0") else call}


def stream_deltas(endpoint: SimEndpoint, gen: Generation, ident: str) -> tuple[list[tuple[Tok, dict[str, Any]]], bool]:
    """(token, delta) pairs TGI streams for a constrained generation, and whether it turned out to be
    ``no_tool`` (>= 3.2: the caller then streams a second generation)."""
    if endpoint.at_least("3.2.0"):
        return _chat_state(endpoint, gen, ident)
    if endpoint.at_least("2.4.0"):
        return _v24_stream(endpoint, gen)
    return [(tok, _tool_delta(endpoint, tok.text, None, "")) for tok in gen.tokens], False


def _call_name(text: str) -> str | None:
    try:
        value = json.loads(text)
        name = value["function"]["_name"]
    except (ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def _chat_state(endpoint: SimEndpoint, gen: Generation, ident: str) -> tuple[list[tuple[Tok, dict[str, Any]]], bool]:
    """TGI >= 3.2 ``ChatState``: buffer until the name parses, then stream argument fragments."""
    out: list[tuple[Tok, dict[str, Any]]] = []
    text, in_tool = "", False
    for tok in gen.tokens:
        text += tok.text
        if not in_tool:
            name = _call_name(text.rstrip(_WS_TRAIL) + "}}")
            if name == "no_tool":
                return out, True
            if name is not None:
                out.append((tok, _tool_delta(endpoint, "{", name, ident)))
                in_tool = True
        elif _call_name(text) is not None:
            in_tool = False  # the call is complete: later tokens (EOS) are buffered and never sent
            piece = tok.text.rstrip()
            out.append((tok, _tool_delta(endpoint, piece[:-1] if piece.endswith("}") else piece, None, ident)))
        else:
            out.append((tok, {"role": "assistant", "content": ""} if tok.special
                        else _tool_delta(endpoint, tok.text, None, ident)))
    return out, False


def _v24_stream(endpoint: SimEndpoint, gen: Generation) -> tuple[list[tuple[Tok, dict[str, Any]]], bool]:
    """TGI 2.4-3.1: buffer (spaces removed) until the name shows; a tool replays every token as a tool
    fragment, ``no_tool`` streams the text after ``"content":"`` and stops at the next quote."""
    out: list[tuple[Tok, dict[str, Any]]] = []
    squeezed, buffered, state = "", [], "buffering"
    for tok in gen.tokens:
        if state == "content":
            if '"' in tok.text:
                break
            out.append((tok, {"role": "assistant", "content": "" if tok.special else tok.text}))
        elif state == "trailing":
            squeezed += tok.text.replace(" ", "")
            at = squeezed.find('"content":"')
            if at >= 0:
                rest = squeezed[at + len('"content":"'):]
                if rest:
                    out.append((tok, {"role": "assistant", "content": rest}))
                state = "content"
        elif state == "tool":
            out.append((tok, _tool_delta(endpoint, tok.text, None, "")))
        else:
            squeezed += tok.text.replace(" ", "")
            buffered.append(tok)
            name = _name_prefix(squeezed)
            if name == "no_tool":
                squeezed, state = "", "trailing"
            elif name is not None:
                out += [(t, _tool_delta(endpoint, t.text, None, "")) for t in buffered]
                state = "tool"
    return out, False


def _name_prefix(squeezed: str) -> str | None:
    prefix = '{"function":{"_name":"'
    if not squeezed.startswith(prefix):
        return None
    end = squeezed.find('"', len(prefix))
    return squeezed[len(prefix):end] if end > 0 else None
