"""OpenAI and native wire models, each converting itself to the canonical `GenerationRequest`.

Canonical ranges (OpenAI semantics) are checked here; per-endpoint ranges and support come later
from the adapter's rules. `extra="forbid"`: an unknown field is a 400 naming it. Fields OpenAI clients send at
their default values (`store: false`, ...) are screened by `default_only` (service/api/defaults.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.api import defaults
from service.api.defaults import Default
from service.api.tool_models import (
    ResponseFormatWire,
    ToolCallWire,
    ToolChoiceWire,
    ToolSpec,
    response_format,
    tool_choice,
    tools_of,
)
from service.canonical import (
    ContentPart,
    GenerationRequest,
    ImagePart,
    Message,
    Metadata,
    SamplingParams,
    TextPart,
)
from service.errors import InvalidParam, echo

MAX_STOP = 16
MAX_N = 16
MAX_TOP_LOGPROBS = 20       # OpenAI's range for chat `top_logprobs`
MAX_LEGACY_LOGPROBS = 5     # and for the legacy completions `logprobs`
MAX_ID = 256                # `user`, `safety_identifier`: ids, never forwarded
MAX_METADATA = 16           # OpenAI: up to 16 pairs, keys up to 64 and values up to 512 characters

PosInt = Annotated[int, Field(ge=1)]
MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]
Penalty = Annotated[float, Field(ge=-2, le=2)]


class _Strict(BaseModel):
    # strict: JSON types as the OpenAI API defines them (a boolean is not an integer, "10" is not a number)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WireRequest(_Strict, ABC):
    """A request body of one API; it converts itself to the canonical request."""

    #: OpenAI fields served only at their default value (service/api/defaults.py); screened before validation
    default_only: ClassVar[Mapping[str, Default]] = {}

    @abstractmethod
    def to_canonical(self, request_id: str) -> GenerationRequest: ...


class _Sampling(_Strict):
    """Parameters shared by every API (OpenAI names plus jumpgate's canonical extras)."""

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, Field(gt=0)] | None = None
    num_beams: PosInt | None = None
    no_repeat_ngram_size: Annotated[int, Field(ge=0)] | None = None
    do_sample: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return v

    def sampling(self, max_new_tokens: int | None, n: int) -> SamplingParams:
        stop = self.stop
        return SamplingParams(
            max_new_tokens=max_new_tokens, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
            stop=tuple([stop] if isinstance(stop, str) else stop or ()), num_beams=self.num_beams, n=n,
            seed=self.seed, repetition_penalty=self.repetition_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size,
            do_sample=self.do_sample,
        )


class StreamOptions(_Strict):
    include_usage: bool = False


class _OpenAICommon(_Sampling, WireRequest):
    model: Annotated[str, Field(min_length=1)]
    max_tokens: PosInt | None = None
    max_new_tokens: PosInt | None = None
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=MAX_ID)] | None = None  # an end-user id; accepted, not forwarded
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA)] | None = None

    def _metadata(self) -> Metadata:
        return tuple(sorted(self.metadata.items())) if self.metadata else ()

    def _max_new(self, *aliases: int | None) -> int | None:
        given = [v for v in (self.max_tokens, self.max_new_tokens, *aliases) if v is not None]
        if len(set(given)) > 1:
            raise InvalidParam("max_tokens, max_completion_tokens and max_new_tokens are one parameter; "
                               "they were given different values: send one", param="max_tokens")
        return given[0] if given else None


class TextContent(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: Annotated[str, Field(min_length=1)]
    detail: Literal["auto", "low", "high"] = "auto"


class ImageContent(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


Part = Annotated[TextContent | ImageContent, Field(discriminator="type")]
_ROLES_WITH_IMAGES = ("user", "tool")


class ChatMessage(_Strict):
    """One message. `content` may be null, absent or "" on an assistant message that carries `tool_calls`; a
    `tool` message answers one call by `tool_call_id`; images (`image_url` parts) come from users and tools."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: Annotated[list[ToolCallWire], Field(max_length=128)] | None = None
    tool_call_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    refusal: str | None = None  # sent back by clients that replay an answer's message; not forwarded

    def canonical(self, position: int) -> Message:
        self._check(position)
        role = "system" if self.role == "developer" else self.role
        calls = tuple(c.canonical() for c in self.tool_calls or ())
        if not isinstance(self.content, list):
            return Message(role, self.content or "", tool_calls=calls, tool_call_id=self.tool_call_id)
        parts: tuple[ContentPart, ...] = tuple(
            TextPart(p.text) if isinstance(p, TextContent) else ImagePart(p.image_url.url, p.image_url.detail)
            for p in self.content)
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        keep = parts if any(isinstance(p, ImagePart) for p in parts) else ()
        return Message(role, text, parts=keep, tool_calls=calls, tool_call_id=self.tool_call_id)

    def _check(self, i: int) -> None:
        where = f"messages[{i}]"
        if self.role == "tool" and self.tool_call_id is None:
            raise InvalidParam(f"`{where}.tool_call_id` is required on a tool message: name the call it answers",
                               param=f"{where}.tool_call_id")
        if self.role != "tool" and self.tool_call_id is not None:
            raise InvalidParam(f"`{where}.tool_call_id` belongs on tool messages only", param=f"{where}.tool_call_id")
        if self.tool_calls and self.role != "assistant":
            raise InvalidParam(f"`{where}.tool_calls` belongs on assistant messages only", param=f"{where}.tool_calls")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise InvalidParam(f"`{where}.content` is required (only an assistant message with tool_calls may "
                               "leave it out)", param=f"{where}.content")
        if isinstance(self.content, list) and self.role not in _ROLES_WITH_IMAGES:
            j = next((j for j, p in enumerate(self.content) if isinstance(p, ImageContent)), None)
            if j is not None:
                raise InvalidParam(f"`{where}.content[{j}]`: images are accepted in user and tool messages only",
                                   param=f"{where}.content[{j}]")


def check_tool_history(messages: tuple[Message, ...]) -> None:
    """Every tool message answers a call an earlier assistant message made."""
    calls: set[str] = set()
    for i, m in enumerate(messages):
        calls.update(c.id for c in m.tool_calls)
        if m.role == "tool" and m.tool_call_id not in calls:
            raise InvalidParam(f"`messages[{i}].tool_call_id` {echo(m.tool_call_id)} answers no tool call of an "
                               "earlier assistant message: send the assistant message with its tool_calls first, "
                               "or fix the id", param=f"messages[{i}].tool_call_id")


class ChatCompletionRequest(_OpenAICommon):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1000)]
    max_completion_tokens: PosInt | None = None
    response_format: ResponseFormatWire | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoiceWire | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    safety_identifier: Annotated[str, Field(max_length=MAX_ID)] | None = None  # like `user`: not forwarded

    default_only: ClassVar[Mapping[str, Default]] = defaults.CHAT

    @model_validator(mode="after")
    def _logprobs_asked(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise InvalidParam("`top_logprobs` needs `logprobs` true: set it, or leave top_logprobs out",
                               param="top_logprobs")
        return self

    def to_canonical(self, request_id: str) -> GenerationRequest:
        messages = tuple(m.canonical(i) for i, m in enumerate(self.messages))
        if any(m.role == "tool" for m in messages):
            check_tool_history(messages)
        tools = tools_of(self.tools)
        return GenerationRequest(
            model=self.model, api="chat", params=self.sampling(self._max_new(self.max_completion_tokens), self.n),
            messages=messages, stream=self.stream,
            include_usage=bool(self.stream_options and self.stream_options.include_usage), request_id=request_id,
            logprobs=bool(self.logprobs), top_logprobs=self.top_logprobs or 0, metadata=self._metadata(),
            tools=tools, tool_choice=tool_choice(self.tool_choice, tools),
            parallel_tool_calls=self.parallel_tool_calls is not False,
            response_format=response_format(self.response_format),
        )


NonEmpty = Annotated[str, Field(min_length=1)]  # containers reject an empty prompt (TGI: `inputs` non-empty)


class CompletionRequest(_OpenAICommon):
    prompt: NonEmpty | list[NonEmpty]
    #: the legacy shape: alternatives per token (0: the chosen token's logprob only)
    logprobs: Annotated[int, Field(ge=0, le=MAX_LEGACY_LOGPROBS)] | None = None

    default_only: ClassVar[Mapping[str, Default]] = defaults.COMPLETIONS

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("send exactly one prompt per request (batches of prompts are not supported)")
        return v

    def to_canonical(self, request_id: str) -> GenerationRequest:
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return GenerationRequest(
            model=self.model, api="completions", params=self.sampling(self._max_new(), self.n), prompt=prompt,
            stream=self.stream, include_usage=bool(self.stream_options and self.stream_options.include_usage),
            request_id=request_id, logprobs=self.logprobs is not None, top_logprobs=self.logprobs or 0,
            metadata=self._metadata(),
        )


class GenerateParameters(_Sampling):
    max_new_tokens: PosInt | None = None
    num_return_sequences: Annotated[int, Field(ge=1, le=MAX_N)] = 1


class GenerateRequest(WireRequest):
    """Native API: canonical parameter names; `context` fills `{context}` of instruction templates."""

    model: Annotated[str, Field(min_length=1)]
    inputs: NonEmpty
    context: str | None = None
    parameters: GenerateParameters = GenerateParameters()
    stream: bool = False
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoiceWire | None = None
    response_format: ResponseFormatWire | None = None

    def to_canonical(self, request_id: str) -> GenerationRequest:
        p = self.parameters
        tools = tools_of(self.tools)
        fmt = response_format(self.response_format)
        req = GenerationRequest(
            model=self.model, api="generate", params=p.sampling(p.max_new_tokens, p.num_return_sequences),
            prompt=self.inputs, context=self.context, stream=self.stream, include_usage=True,
            request_id=request_id, tools=tools, tool_choice=tool_choice(self.tool_choice, tools),
            response_format=fmt,
        )
        return as_conversation(req) if tools or fmt else req


def as_conversation(req: GenerationRequest) -> GenerationRequest:
    """Tools and output formats are rendered into a conversation, so the native API's `inputs` becomes the user's
    message there (and `context`, for instruction templates, a system message before it)."""
    head = (Message("system", req.context),) if req.context else ()
    return replace(req, messages=(*head, Message("user", req.prompt or "")), prompt=None, context=None)
