"""The simulated model's tool-calling mind, shared by every container that can call tools.

Deterministic rules (per seed and prompt), the same whether the tools arrive as OpenAI ``tools`` (TGI
Messages API, LMI vLLM chat) or inside a Meta Llama tool prompt (text containers):
- A turn that follows a tool result (``tool`` / ``ipython``) is answered with text; so is ``tool_choice``
  ``none``. Otherwise, with ``auto`` or ``required``, the model calls a tool.
- Which tool: the one named by ``tool_choice``; else the offered tools the user's text mentions (by name,
  or by a word of the name, e.g. "weather" for get_weather), first mention first; else one drawn from the
  PRNG. ``several`` (Llama 3.2 pythonic) calls every mentioned tool; otherwise one call per turn.
- Arguments: an instance of the tool's JSON Schema filled from the user's text (jsonschema_instance).
Faults (``tool_output``) are applied by the formats, which know what "malformed" means for their syntax.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from service.simulator.containers.jsonschema_instance import Hints, instance

FAULT_KINDS = ("malformed", "invalid_json", "wrong_name", "bad_arguments")
_NAME_WORD = re.compile(r"[a-z]{4,}")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str | None
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: dict[str, Any]


def spec_from_json(tool: Any) -> ToolSpec | None:
    """An OpenAI ``{"type": "function", "function": {...}}`` or a bare ``{"name", "parameters"}`` object."""
    if not isinstance(tool, dict):
        return None
    inner = tool.get("function")
    function: dict[str, Any] = inner if isinstance(inner, dict) else tool
    name = function.get("name")
    params = function.get("parameters", function.get("arguments", {}))
    if not isinstance(name, str) or not name or not isinstance(params, dict | None):
        return None
    description = function.get("description")
    return ToolSpec(name, description if isinstance(description, str) else None, params or {})


def mentioned(tools: list[ToolSpec], text: str) -> list[ToolSpec]:
    """Tools the text names, in order of first mention (exact name first, then a word of the name)."""
    lowered = text.lower()
    found: list[tuple[int, int, ToolSpec]] = []
    for order, tool in enumerate(tools):
        at = lowered.find(tool.name.lower())
        if at < 0:
            hits = [lowered.find(w) for w in _NAME_WORD.findall(tool.name.lower()) if w in lowered]
            at = min(hits) + len(lowered) if hits else -1  # a partial mention ranks after exact ones
        if at >= 0:
            found.append((at, order, tool))
    return [tool for _, _, tool in sorted(found, key=lambda f: (f[0], f[1]))]


def decide(tools: list[ToolSpec], choice: str, user_text: str, after_tool_result: bool, rng: random.Random,
           *, several: bool = False) -> list[Call]:
    """The calls the model makes this turn ([] means it answers with text). ``choice`` is ``auto``,
    ``none``, ``required`` or a tool name (already checked to exist)."""
    if not tools or choice == "none" or (choice == "auto" and after_tool_result):
        return []
    if choice not in ("auto", "required"):
        chosen = [t for t in tools if t.name == choice]
    else:
        named = mentioned(tools, user_text)
        chosen = (named if several else named[:1]) or [tools[rng.randrange(len(tools))]]
    hints = Hints.from_text(user_text)
    return [Call(t.name, _arguments(t, rng, hints)) for t in chosen]


def _arguments(tool: ToolSpec, rng: random.Random, hints: Hints) -> dict[str, Any]:
    value = instance(tool.parameters or {"type": "object", "properties": {}}, rng, hints)
    return value if isinstance(value, dict) else {}


def break_arguments(tool: ToolSpec | None, arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments that are valid JSON but violate the tool's schema (the ``bad_arguments`` fault)."""
    params = tool.parameters if tool else {}
    required = [r for r in params.get("required", []) if isinstance(r, str)]
    if required:
        return {k: v for k, v in arguments.items() if k != required[0]}
    return {**arguments, "unexpected_argument": [1, 2, 3]} if params.get("additionalProperties") is False \
        else {k: {"not": "the declared type"} for k in arguments} or {"__invalid__": True}
