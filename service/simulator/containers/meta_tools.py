"""Text models that understand Meta's Llama 3.x tool prompts and JSON-output instructions (section 1.6).

Every text container (TGI generate and chat, LMI, LMI NeuronX) answers through ``respond``. A prompt is a
tool prompt when it carries one of Meta's instructions and lists tools as JSON:
- Llama 3.1 JSON: "Respond in the format {"name": function name, "parameters": ...}" or "Return function
  calls in JSON format" → ``{"name": ..., "parameters": {...}}``, after ``<|python_tag|>`` when the system
  prompt says ``Environment: ipython`` (a special token: absent from decoded text, ``special`` in streams);
- Llama 3.1 custom: the ``<function=...>`` instruction → ``<function=NAME>{...}</function>``;
- Llama 3.2 pythonic: "[func_name1(params_name1=params_value1, ...)]" → ``[f(a=1, b='x')]``, one call per
  mentioned tool (the only format with several calls).
The call follows tool_model's rules; a turn after an ``ipython`` / ``tool`` result is answered with
ordinary text. Prompts in an instruction format (Alpaca / Dolly: ``### Instruction:``, ``### Input:``,
``### Response:`` sections, the format of the simulator's fine-tuned demo endpoint) are read like a tuned model
reads them: the user's words are the instruction section, earlier turns are ``role: text`` lines of the input.
A prompt that asks for JSON and contains a JSON Schema is answered with an instance of it (a prompt asking for
JSON without a schema gets an object with the keys the user's words name in quotes, as in "a JSON with 'setup'
and 'punchline' keys", else ``{"answer": ...}``). The ``tool_output`` fault bends
these answers: ``malformed`` (cut in half), ``invalid_json`` (unquoted or single-quoted, not JSON),
``wrong_name`` (a tool that was not offered), ``bad_arguments`` (valid JSON breaking the schema).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from service.simulator.containers import tool_model
from service.simulator.containers.jsonschema_instance import Hints, instance
from service.simulator.containers.tool_model import Call, ToolSpec
from service.simulator.textgen import Generation, generate, scripted

PYTHON_TAG = "<|python_tag|>"
_JSON31 = ('"parameters": dictionary of argument name and its value', "Return function calls in JSON format",
           "Here is a list of functions in JSON format")
_PYTHONIC = "[func_name1(params_name1=params_value1"
_HEADER = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n*")
_LINE_ROLE = re.compile(r"^(system|user|assistant|tool|ipython): ", re.M)
_INSTRUCTION = re.compile(r"^### Instruction:\n(.*?)(?=^### \w+:|\Z)", re.M | re.S)
_DECODER = json.JSONDecoder()

FaultSource = Callable[[], str | None]


def respond(prompt: str, *, seed: int, max_new_tokens: int, stop: Sequence[str] = (),
            fault: FaultSource = lambda: None, variant: int = 0) -> Generation:
    """What the simulated model generates for a raw prompt."""
    understood = understand(prompt, seed, fault)
    if understood is None:
        return generate(prompt, seed=seed, max_new_tokens=max_new_tokens, stop=stop, variant=variant)
    text, prefix = understood
    return scripted(text, seed=seed, max_new_tokens=max_new_tokens, stop=stop, special_prefix=prefix)


def understand(prompt: str, seed: int, fault: FaultSource) -> tuple[str, str | None] | None:
    """(answer text, special token before it) for a tool or JSON prompt; None for any other prompt."""
    style = _style(prompt)
    objects = json_objects(prompt)
    rng = random.Random(f"{seed}|meta|{prompt}")
    last_role, user_text = turns(prompt)
    if style is not None:
        tools = _tools(objects)
        if not tools:
            return None
        calls = tool_model.decide(tools, "auto", user_text, last_role in ("ipython", "tool"), rng,
                                  several=style == "pythonic")
        if not calls:
            return None
        prefix = PYTHON_TAG if style == "json" and "Environment: ipython" in prompt else None
        return _format(style, calls, tools, fault()), prefix
    if "json" in prompt.lower():
        schema = next((o for o in reversed(objects) if _is_schema(o)), None)
        if schema is None and "json" not in user_text.lower():
            return None
        return _json_answer(schema, rng, user_text, fault()), None
    return None


def _style(prompt: str) -> str | None:
    if _PYTHONIC in prompt:
        return "pythonic"
    if "<function=" in prompt and "</function>" in prompt:
        return "function"
    return "json" if any(marker in prompt for marker in _JSON31) else None


def json_objects(text: str) -> list[Any]:
    """Every top-level JSON object or array embedded in the text (instruction examples that are not JSON,
    such as ``{name: function name}``, are skipped)."""
    found: list[Any] = []
    i = 0
    while True:
        starts = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
        if not starts:
            return found
        at = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, at)
        except ValueError:
            i = at + 1
            continue
        found.append(value)
        i = end


def turns(prompt: str) -> tuple[str, str]:
    """(role of the last finished turn, text of the last user turn) for a Llama 3 or ``role: text`` prompt."""
    headers = list(_HEADER.finditer(prompt))
    if headers:
        roles = [m.group(1) for m in headers]
        if roles and roles[-1] == "assistant" and not prompt[headers[-1].end():].strip():
            roles.pop()
        users = [m for m in headers if m.group(1) == "user"]
        text = prompt[users[-1].end():].split("<|eot_id|>")[0] if users else ""
    elif (instruction := _INSTRUCTION.search(prompt)) is not None:
        roles = [m.group(1) for m in _LINE_ROLE.finditer(prompt[instruction.end():])]
        text = instruction.group(1)
    else:
        lines = list(_LINE_ROLE.finditer(prompt))
        roles = [m.group(1) for m in lines]
        at = [i for i, m in enumerate(lines) if m.group(1) == "user"]
        end = lines[at[-1] + 1].start() if at and at[-1] + 1 < len(lines) else len(prompt)
        text = prompt[lines[at[-1]].end():end] if at else prompt
    return (roles[-1] if roles else "user"), _question(text)


def user_words(prompt: str) -> str:
    """What the model reads its answer's values from: the last user turn of a chat or instruction-format prompt
    (not the tool definitions or schemas around it), or the whole of an unstructured prompt."""
    structured = _HEADER.search(prompt) or _INSTRUCTION.search(prompt) or _LINE_ROLE.search(prompt)
    return turns(prompt)[1] if structured else prompt


def _question(text: str) -> str:
    """The user's own words: the last paragraph that is not JSON (tool lists precede the question)."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip() and p.strip()[0] not in "{["]
    return paragraphs[-1] if paragraphs else text


def _tools(objects: list[Any]) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    for value in objects:
        for item in value if isinstance(value, list) else [value]:
            spec = tool_model.spec_from_json(item) if isinstance(item, dict) and (
                "parameters" in item or isinstance(item.get("function"), dict)) else None
            if spec is not None and spec.name not in {t.name for t in tools}:
                tools.append(spec)
    return tools


def _is_schema(value: Any) -> bool:
    return isinstance(value, dict) and ("properties" in value or value.get("type") in ("object", "array"))


def _format(style: str, calls: list[Call], tools: list[ToolSpec], fault: str | None) -> str:
    by_name = {t.name: t for t in tools}
    if fault == "wrong_name":
        calls = [Call(c.name + "_v2", c.arguments) for c in calls]
    elif fault == "bad_arguments":
        calls = [Call(c.name, tool_model.break_arguments(by_name.get(c.name), c.arguments)) for c in calls]
    if style == "pythonic":
        text = "[" + ", ".join(_pythonic(c, fault == "invalid_json") for c in calls) + "]"
    else:
        call = calls[0]
        args = _not_json(call.arguments) if fault == "invalid_json" else json.dumps(call.arguments, ensure_ascii=False)
        text = (f"<function={call.name}>{args}</function>" if style == "function"
                else f'{{"name": "{call.name}", "parameters": {args}}}')
    return text[: max(1, len(text) // 2)] if fault == "malformed" else text


def _pythonic(call: Call, broken: bool) -> str:
    args = ", ".join(f"{k}={v if broken and isinstance(v, str) else repr(v)}" for k, v in call.arguments.items())
    return f"{call.name}({args})"


def _not_json(arguments: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in arguments.items()) + "}" if arguments else "{,}"


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


def _json_answer(schema: Any, rng: random.Random, user_text: str, fault: str | None) -> str:
    hints = Hints.from_text(user_text)
    keys = [q for q in hints.quoted if _KEY.fullmatch(q)]
    if schema is None and keys:  # the user named the keys: a model that follows the instruction uses them
        hints.quoted = [q for q in hints.quoted if q not in keys]
        schema = {"type": "object", "properties": {k: {"type": "string"} for k in keys}, "required": keys}
    value = instance(schema, rng, hints) if schema is not None else {"answer": " ".join(hints.words[:6]) or "yes"}
    if fault in ("bad_arguments", "wrong_name") and isinstance(value, dict):
        value = tool_model.break_arguments(ToolSpec("json", None, schema or {}), value)
    text = json.dumps(value, ensure_ascii=False)
    if fault == "invalid_json":
        return repr(value)  # Python literal syntax: single quotes, True/None, not JSON
    return text[: max(1, len(text) // 2)] if fault == "malformed" else text
