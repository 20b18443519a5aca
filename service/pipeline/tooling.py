"""How one endpoint serves a request with tools or a response format: natively, constrained by a grammar, or
through the prompt (openai-surface.md 1.7, 2.4, 8), decided per candidate endpoint during routing.

- Tools: native where the endpoint's capabilities say so (`required` becomes a named choice when there is one
  tool and the container cannot force "any" call); otherwise rendered into the prompt in the endpoint's tool
  format (service/prompts/tools.py), with a grammar forcing the call where `required` or a named choice needs one
  and the container has grammar support; otherwise refused with a 400.
- `response_format` `json_schema`: the container's grammar where it has one (and the schema has the top-level
  `properties` TGI requires, and no tool call competes with it); otherwise an instruction plus validation and
  retries; `json_object` always the latter (a permissive grammar is unverified on TGI). Models that follow no
  tool format (Llama 2, FLAN-T5) get a 400, worded as LangChain expects so it can print its hint.
The request each endpoint is sent is rewritten accordingly; `Treatment` says how its answer is read.
Requests without tools, tool history or a response format are not touched (`PLAIN`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from service.canonical import GenerationRequest, Message, ResponseFormat, Tool, ToolChoice
from service.errors import UnsupportedFeature
from service.pipeline.capabilities import Capabilities
from service.prompts.tools import render_conversation, render_output_only

if TYPE_CHECKING:
    from service.pipeline.catalog import Endpoint


class Path(StrEnum):
    OFF = "off"
    NATIVE = "native"    # the container's own tools
    PROMPT = "prompt"    # rendered into the prompt, parsed and validated by the gateway
    GRAMMAR = "grammar"  # the container constrains its output to the JSON Schema


@dataclass(frozen=True, slots=True)
class Treatment:
    tools: Path = Path.OFF
    output: Path = Path.OFF
    offered: tuple[Tool, ...] = ()
    choice: ToolChoice | None = None
    parallel: bool = True
    response_format: ResponseFormat | None = None

    @property
    def active(self) -> bool:
        return self.tools is not Path.OFF or self.output is not Path.OFF

    @property
    def must_call(self) -> bool:
        return bool(self.offered) and self.choice is not None and self.choice.mode in ("required", "function")

    @property
    def whole(self) -> bool:
        """The answer must be complete and valid before anything is relayed: a stream is then answered from a
        checked non-streaming generation (retries included) instead of relaying tokens."""
        return self.output is Path.PROMPT or (self.tools is Path.PROMPT and self.must_call)

    @property
    def wants(self) -> str:
        """What a retry asks for."""
        if self.must_call:
            return "the function call"
        return "the JSON object" if self.output is not Path.OFF else "the function call or your answer"


PLAIN = Treatment()


def has_tool_history(messages: tuple[Message, ...] | None) -> bool:
    return messages is not None and any(m.tool_calls or m.role == "tool" for m in messages)


def treat(req: GenerationRequest, ep: Endpoint, model: str) -> tuple[GenerationRequest, Treatment]:
    """The request as `ep` is sent it, and how its answer is read. Raises UnsupportedFeature (routing drops ep)."""
    calls, history, fmt = req.calls_tools, has_tool_history(req.messages), req.response_format
    if not (calls or history or fmt):
        return req, PLAIN
    caps = ep.capabilities
    tools = _tools_path(req, caps, ep, model, history) if (calls or history) else Path.OFF
    output = _output_path(fmt, caps, calls, ep, model) if fmt is not None else Path.OFF
    choice = _native_choice(req, caps) if tools is Path.NATIVE else req.tool_choice
    t = Treatment(tools, output, req.tools if calls else (), choice, req.parallel_tool_calls, fmt)
    return _request_for(req, t, caps), t


def _tools_path(req: GenerationRequest, caps: Capabilities, ep: Endpoint, model: str, history: bool) -> Path:
    choice = req.tool_choice
    required = choice is not None and choice.mode == "required"
    if caps.native_tools and (not required or caps.native_required or len(req.tools) == 1):
        return Path.NATIVE
    if caps.tool_format is not None:
        return Path.PROMPT
    what = "cannot call tools" if req.calls_tools else "cannot read a conversation with tool calls"
    raise UnsupportedFeature(
        f"model '{model}' {what}: endpoint '{ep.id}' (schema {ep.schema}) has no native tool calling and no "
        "tool format to emulate it with (its model has none, or `tool_format` is not set); remove `tools`, or "
        "use a model that can call tools", param="tools" if req.calls_tools else "messages", code="tools_not_supported")


def _json_prompt(caps: Capabilities) -> bool:
    """A model that follows a tool format (or calls tools natively) follows a JSON instruction."""
    return caps.tool_format is not None or caps.native_tools


def _output_path(fmt: ResponseFormat, caps: Capabilities, calls: bool, ep: Endpoint, model: str) -> Path:
    # a grammar would leave the model no way to call an offered tool: then the instruction instead
    if fmt.schema is not None and caps.grammar and "properties" in fmt.schema and not calls:
        return Path.GRAMMAR
    if _json_prompt(caps):
        return Path.PROMPT
    raise UnsupportedFeature(
        f"'response_format' of type '{fmt.type}' is not supported with this model: model '{model}' (endpoint "
        f"'{ep.id}', schema {ep.schema}) has no constrained decoding and follows no JSON format; remove "
        "`response_format`, or use a model that supports it", param="response_format",
        code="response_format_not_supported")


def _native_choice(req: GenerationRequest, caps: Capabilities) -> ToolChoice | None:
    """`required` with one tool is that tool, for containers that cannot force "any" call (LMI rolling batch)."""
    choice = req.tool_choice
    if choice is not None and choice.mode == "required" and not caps.native_required:
        return ToolChoice("function", req.tools[0].name)
    return choice


def _request_for(req: GenerationRequest, t: Treatment, caps: Capabilities) -> GenerationRequest:
    """The request rewritten for its paths; `response_format` itself never reaches an adapter."""
    messages = req.messages or ()
    prompt_output = t.response_format if t.output is Path.PROMPT else None
    constraint: Mapping[str, Any] | None = None
    if t.output is Path.GRAMMAR and t.response_format is not None:
        constraint = t.response_format.schema
    if t.tools is Path.PROMPT and caps.tool_format is not None:
        messages = render_conversation(messages, caps.tool_format, tools=t.offered,
                                       choice=t.choice if t.offered else None, output=prompt_output)
        if t.must_call and caps.grammar:
            constraint = call_grammar(t.offered, t.choice)
        return replace(req, messages=messages, tools=(), tool_choice=None, response_format=None,
                       constraint=constraint)
    if prompt_output is not None:
        messages = render_output_only(messages, prompt_output)
    return replace(req, messages=messages, tool_choice=t.choice, response_format=None, constraint=constraint)


def call_grammar(tools: tuple[Tool, ...], choice: ToolChoice | None) -> dict[str, Any] | None:
    """A JSON Schema whose instances are one call `{"name", "parameters"}` to the chosen tool (or any offered tool),
    in the JSON tool format. The tools' own `$defs` move to the root so their local `$ref`s still resolve; None when
    two tools define the same name differently (the call is then validated after the fact instead)."""
    chosen = [t for t in tools if choice is None or choice.mode != "function" or t.name == choice.name]
    defs: dict[str, Any] = {}
    branches = []
    for tool in chosen:
        params = dict(tool.parameters)
        for key in ("$defs", "definitions"):
            for name, sub in (params.pop(key, None) or {}).items():
                if defs.setdefault(f"{key}/{name}", sub) != sub:
                    return None
        branches.append({"type": "object", "properties": {"name": {"const": tool.name}, "parameters": params},
                         "required": ["name", "parameters"]})
    root: dict[str, Any] = branches[0] if len(branches) == 1 else {
        "type": "object", "properties": {"name": {"enum": [t.name for t in chosen]}, "parameters": {"type": "object"}},
        "required": ["name", "parameters"], "anyOf": branches}
    for path, sub in defs.items():
        key, name = path.split("/", 1)
        root.setdefault(key, {})[name] = sub
    return root
