"""Tool calling and JSON output through the prompt, for endpoints whose container has no native support: a
conversation with `tools`, tool calls and tool results becomes a conversation of plain text messages in the
model's documented tool format, which the endpoint's chat or instruction template then renders as usual.

Formats (Meta's prompt formats, openai-surface.md 1.6; the instruction sentences that name the answer format are
Meta's own, because the models were trained on them):
- `llama3_json` (Llama 3.1 / 3.2 text and vision, JSON): `Environment: ipython` in the system message; the tools as
  JSON in the first user message; the model answers `{"name": ..., "parameters": {...}}`, one call per turn.
- `llama3_function` (Llama 3.1 custom format): the tools in the system message; the model answers
  `<function=NAME>{...}</function>`.
- `llama32_pythonic` (Llama 3.2 1B / 3B): the tools in the system message; the model answers
  `[f(a=1), g(b='x')]`, several calls allowed.
- `generic_json` (opt-in for models without a tool format, e.g. Llama 2): the JSON format's instruction in the
  system message, tool results as user turns (templates that require alternating turns stay valid).
A previous call is replayed in the format the model answers in; a tool result is a turn of the format's result
role (`ipython` for Llama 3). Prompts carry no call ids: results follow their calls in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from service.canonical import Message, ResponseFormat, TextPart, Tool, ToolCall, ToolChoice

_ANSWER_JSON = ('Return function calls in JSON format, in the form {"name": function name, "parameters": '
                "dictionary of argument name and its value}. Do not use variables.")
_ANSWER_PYTHONIC = ("If you decide to invoke any of the function(s), you MUST put it in the format of "
                    "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]")
_ANSWER_FUNCTION = ("To call a function, reply with only <function=NAME>{JSON object of its arguments}</function>, "
                    "for example <function=example_function_name>{\"example_name\": \"example_value\"}</function>")
_INTRO = ("You can call the functions listed below. Call one only when it helps to answer; otherwise answer "
          "directly in words. When a function's result arrives, use it to answer the user's question.")


def _tool_json(tool: Tool, *, wrapped: bool) -> str:
    body = {"name": tool.name, "description": tool.description or "", "parameters": dict(tool.parameters)}
    return json.dumps({"type": "function", "function": body} if wrapped else body, ensure_ascii=False, indent=4)


def _obligation(choice: ToolChoice | None) -> str:
    if choice is not None and choice.mode == "function":
        return f"\n\nYou must call the function '{choice.name}' now, with only the function call as your answer."
    if choice is not None and choice.mode == "required":
        return "\n\nYou must call one of these functions now, with only the function call as your answer."
    return ""


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments  # replayed as the client sent it


def _call_json(calls: Sequence[ToolCall]) -> str:
    return "\n".join(json.dumps({"name": c.name, "parameters": _arguments(c)}, ensure_ascii=False) for c in calls)


def _call_function(calls: Sequence[ToolCall]) -> str:
    return "".join(f"<function={c.name}>{json.dumps(_arguments(c), ensure_ascii=False)}</function>" for c in calls)


def _call_pythonic(calls: Sequence[ToolCall]) -> str:
    def one(c: ToolCall) -> str:
        args = _arguments(c)
        pairs = args.items() if isinstance(args, dict) else ()
        return f"{c.name}(" + ", ".join(f"{k}={v!r}" for k, v in pairs) + ")"

    return "[" + ", ".join(one(c) for c in calls) + "]"


class ToolFormat:
    """How one format lays out tools, calls and results."""

    def __init__(self, name: str, *, tools_in_system: bool, answer: str, wrapped: bool, result_role: str,
                 replay: Callable[[Sequence[ToolCall]], str], ipython: bool = False) -> None:
        self.name = name
        self.tools_in_system = tools_in_system
        self.answer = answer
        self.wrapped = wrapped
        self.result_role = result_role
        self.replay = replay
        self.ipython = ipython  # `Environment: ipython` turns on Llama 3's tool mode

    def instructions(self, tools: Sequence[Tool], choice: ToolChoice | None) -> str:
        listed = "\n\n".join(_tool_json(t, wrapped=self.wrapped) for t in tools)
        return f"{_INTRO} {self.answer}{_obligation(choice)}\n\n{listed}"


TOOL_FORMATS: dict[str, ToolFormat] = {
    "llama3_json": ToolFormat("llama3_json", tools_in_system=False, answer=_ANSWER_JSON, wrapped=True,
                              result_role="ipython", replay=_call_json, ipython=True),
    "llama3_function": ToolFormat("llama3_function", tools_in_system=True, answer=_ANSWER_FUNCTION, wrapped=False,
                                  result_role="ipython", replay=_call_function, ipython=True),
    "llama32_pythonic": ToolFormat("llama32_pythonic", tools_in_system=True, answer=_ANSWER_PYTHONIC,
                                   wrapped=False, result_role="ipython", replay=_call_pythonic),
    "generic_json": ToolFormat("generic_json", tools_in_system=True, answer=_ANSWER_JSON, wrapped=False,
                               result_role="user", replay=_call_json),
}
#: the format a chat template's models use when the endpoint does not name one (Llama 2 has none)
DEFAULT_FOR_TEMPLATE = {"llama3": "llama3_json"}


def tools_text(tools: Sequence[Tool]) -> str:
    """The tool definitions as a container renders them into its prompt, for counting prompt tokens."""
    return "".join("\n" + _tool_json(t, wrapped=True) for t in tools)


def json_instruction(fmt: ResponseFormat) -> str:
    if fmt.schema is None:
        return "Answer with one JSON object and nothing else: no prose before or after it, no code fences."
    schema = json.dumps(dict(fmt.schema), ensure_ascii=False)
    return ("Answer with one JSON object that conforms to the JSON Schema below, and nothing else: no prose "
            f"before or after it, no code fences.\n\n{schema}")


def _with_prefix(m: Message, prefix: str) -> Message:
    if not prefix:
        return m
    parts = (TextPart(prefix + "\n\n"), *m.parts) if m.parts else ()
    return replace(m, content=f"{prefix}\n\n{m.content}" if m.content else prefix, parts=parts)


def _history(messages: Sequence[Message], fmt: ToolFormat) -> list[Message]:
    out = []
    for m in messages:
        if m.tool_calls:
            text = "\n".join(filter(None, [m.content.strip(), fmt.replay(m.tool_calls)]))
            out.append(Message("assistant", text))
        elif m.role == "tool":
            prefix = "Function result: " if fmt.result_role == "user" else ""
            out.append(replace(m, role=fmt.result_role, content=prefix + m.content, tool_call_id=None))
        else:
            out.append(m)
    return out


def render_conversation(messages: Sequence[Message], fmt: ToolFormat, *, tools: Sequence[Tool] = (),
                        choice: ToolChoice | None = None, output: ResponseFormat | None = None) -> tuple[Message, ...]:
    """The conversation as plain messages: history replayed, tool instructions and the JSON instruction added."""
    turns = _history(messages, fmt)
    system_lines = ["Environment: ipython"] if fmt.ipython and tools else []
    user_prefix = ""
    if tools:
        if fmt.tools_in_system:
            system_lines.append(fmt.instructions(tools, choice))
        else:
            user_prefix = fmt.instructions(tools, choice)
    if output is not None:
        system_lines.append(json_instruction(output))
    return _place(turns, "\n\n".join(system_lines), user_prefix)


def _place(turns: list[Message], system: str, user_prefix: str) -> tuple[Message, ...]:
    if system:
        if turns and turns[0].role == "system":
            turns[0] = replace(turns[0], content=f"{system}\n\n{turns[0].content}".strip())
        else:
            turns.insert(0, Message("system", system))
    if user_prefix:
        first = next((i for i, m in enumerate(turns) if m.role == "user"), None)
        if first is None:
            turns.append(Message("user", user_prefix))
        else:
            turns[first] = _with_prefix(turns[first], user_prefix)
    return tuple(turns)


def render_output_only(messages: Sequence[Message], output: ResponseFormat) -> tuple[Message, ...]:
    """The JSON instruction alone, for a request with a response format and no tools."""
    return _place(list(messages), json_instruction(output), "")


def feedback(answer: str, reason: str, *, wants: str) -> tuple[Message, Message]:
    """What a retry adds to the conversation: the rejected answer, and why it was rejected."""
    return (Message("assistant", answer[:4000]),
            Message("user", f"That answer could not be used: {reason[:500]}. Answer again with only {wants}."))
