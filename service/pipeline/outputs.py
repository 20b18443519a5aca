"""Reading answers to requests with tools or a response format (see tooling.py for how they were sent).

- Native tool calls get OpenAI's shape whatever the container's quirks left: unique `call_...` ids (containers
  answer "0", integers or their own ids), `arguments` a JSON string; calls to `strict` tools are validated.
- Calls through the prompt are parsed (service/prompts/tool_parse.py) and validated: an offered name (the named
  one, when the choice names one) and arguments that satisfy the tool's JSON Schema. Under `auto`, an answer
  that is not a valid call is the model's text; when a call is required it is rejected.
- JSON through the prompt is extracted, parsed and validated against the schema; an answer cut by `length` is
  returned as it is, as OpenAI does.
A rejected answer is asked for again with the reason as feedback (`checked`), up to the model's
`invalid_output_retries`, then fails with a 502 `invalid_model_output`. Usage and cost add up over the attempts.
Streams: `StreamReader` decides text or call from the first characters, buffers calls and emits them whole.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from service.canonical import (
    Choice,
    FinishReason,
    Generation,
    Message,
    TokenDelta,
    TokenSource,
    Tool,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from service.errors import InvalidModelOutput
from service.pipeline.schemas import validate
from service.pipeline.tooling import Path, Treatment
from service.prompts.tool_parse import ParsedCall, call_prefix, extract_json, parse_calls
from service.prompts.tools import feedback

_ID_CHARS = string.ascii_letters + string.digits


def call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(24))


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    text: str


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check_call(t: Treatment, name: str, arguments: Any, tools: dict[str, Tool]) -> str | None:
    tool = tools.get(name)
    if tool is None:
        offered = ", ".join(list(tools)[:10])
        return f"the function '{name[:64]}' is not offered (offered: {offered})"
    if t.choice is not None and t.choice.mode == "function" and name != t.choice.name:
        return f"the function '{t.choice.name}' must be called, not '{name}'"
    if not isinstance(arguments, dict):
        return f"the arguments of '{name}' must be a JSON object"
    why = validate(arguments, tool.parameters)
    return None if why is None else f"the arguments of '{name}' do not match its parameters: {why}"


def _prompt_calls(t: Treatment, parsed: list[ParsedCall]) -> list[ToolCall] | Rejected:
    tools = {tool.name: tool for tool in t.offered}
    calls = []
    for p in parsed if t.parallel else parsed[:1]:
        why = _check_call(t, p.name, p.arguments, tools)
        if why is not None:
            return Rejected(why, "")
        calls.append(ToolCall(call_id(), p.name, _compact(p.arguments)))
    return calls


def native_call(t: Treatment, call: ToolCall) -> ToolCall:
    """A container's call in OpenAI's shape; strict tools validated (InvalidModelOutput when not met)."""
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = None
    tool = next((x for x in t.offered if x.name == call.name), None)
    if tool is not None and tool.strict:
        why = _check_call(t, call.name, arguments, {tool.name: tool})
        if why is not None:
            raise InvalidModelOutput(f"the model's call does not satisfy the strict tool: {why}")
    text = _compact(arguments) if isinstance(arguments, dict) else call.arguments
    return ToolCall(call_id(), call.name, text)


def _read_json(t: Treatment, choice: Choice) -> Choice | Rejected:
    value, why = extract_json(choice.text)
    if why is None and not isinstance(value, dict):
        why = "the answer must be a JSON object"
    schema = t.response_format.schema if t.response_format is not None else None
    if why is None and schema is not None:
        why = validate(value, schema)
        why = None if why is None else f"the JSON does not match the schema: {why}"
    if why is None:
        return replace(choice, text=_compact(value))
    if choice.finish_reason is FinishReason.LENGTH:
        return choice  # cut off by max_tokens: returned as it is, with finish_reason length (as OpenAI does)
    return Rejected(why, choice.text)


def read_choice(t: Treatment, choice: Choice) -> Choice | Rejected:
    if t.tools is Path.NATIVE:
        if choice.tool_calls:
            calls = tuple(native_call(t, c) for c in choice.tool_calls)
            return replace(choice, tool_calls=calls[: None if t.parallel else 1],
                           finish_reason=FinishReason.TOOL_CALLS)
        if t.must_call:
            return Rejected("no function was called", choice.text)
    elif t.tools is Path.PROMPT and t.offered:
        parsed = parse_calls(choice.text)
        read = _prompt_calls(t, parsed) if parsed else Rejected("the answer is not a function call", "")
        if not isinstance(read, Rejected):
            return replace(choice, text="", tool_calls=tuple(read), finish_reason=FinishReason.TOOL_CALLS)
        if t.must_call:
            return Rejected(read.reason, choice.text)
    return _read_json(t, choice) if t.output is Path.PROMPT else choice


def read(t: Treatment, gen: Generation) -> Generation | Rejected:
    choices = []
    for choice in gen.choices:
        result = read_choice(t, choice)
        if isinstance(result, Rejected):
            return result
        choices.append(result)
    return replace(gen, choices=tuple(choices))


Again = Callable[[tuple[Message, ...]], Awaitable[Generation]]


async def checked(t: Treatment, gen: Generation, again: Again, retries: int) -> Generation:
    """`gen` read; when rejected, asked again (with the reason as feedback) up to `retries` times."""
    spent: list[Generation] = []
    for attempt in range(retries + 1):
        result = read(t, gen)
        if not isinstance(result, Rejected):
            return _charged(result, spent)
        if attempt == retries:
            raise InvalidModelOutput(
                f"endpoint '{gen.endpoint}' answered without {t.wants} the request needs, "
                f"{attempt + 1} time{'s' if attempt else ''}: {result.reason}")
        spent.append(gen)
        gen = await again(feedback(result.text, result.reason, wants=t.wants))
    raise AssertionError("unreachable")


def _charged(final: Generation, spent: Sequence[Generation]) -> Generation:
    """The final answer, with the usage, time and cost of the rejected attempts added."""
    if not spent:
        return final
    every = [*spent, final]
    sources = {g.usage.source for g in every}
    source = next(s for s in (TokenSource.ESTIMATE, TokenSource.TOKENIZER, TokenSource.BACKEND) if s in sources)
    usage = Usage(sum(g.usage.prompt_tokens for g in every), sum(g.usage.completion_tokens for g in every), source)
    upstream = sum(g.upstream_seconds for g in every)
    return replace(final, usage=usage, upstream_seconds=upstream, cost_usd=sum(g.cost_usd for g in every),
                   attempts=sum(g.attempts for g in every),
                   timings={**final.timings, "upstream_s": upstream, "output_attempts": float(len(every))})


class StreamReader:
    """A streamed answer with tools: text relayed as it comes, calls emitted whole once the stream ended."""

    def __init__(self, t: Treatment) -> None:
        self.t = t
        self.sniffing = t.tools is Path.PROMPT and bool(t.offered)
        self.mode: bool | None = None  # None: undecided, True: a call candidate, False: text
        self.held: list[str] = []
        self.index = 0
        self.calls = 0

    def push(self, delta: TokenDelta) -> list[TokenDelta | ToolCallEvent]:
        if not self.sniffing or self.mode is False:
            return [delta]
        self.held.append(delta.text)
        self.index = delta.index
        if self.mode is None:
            self.mode = call_prefix("".join(self.held))
            if self.mode is False:
                return [self._release()]
        return []

    def native(self, event: ToolCallEvent) -> ToolCallEvent:
        self.calls += 1
        return replace(event, call=native_call(self.t, event.call))

    def finish(self) -> list[TokenDelta | ToolCallEvent]:
        if not self.held:
            return []
        parsed = parse_calls("".join(self.held))
        calls = _prompt_calls(self.t, parsed) if parsed else None
        if calls is None or isinstance(calls, Rejected):
            return [self._release()]
        self.held = []
        self.calls += len(calls)
        return [ToolCallEvent(c, i, self.index) for i, c in enumerate(calls)]

    def _release(self) -> TokenDelta:
        text, self.held = "".join(self.held), []
        return TokenDelta(text, self.index)
