"""The canonical request and result types every step passes on. Frozen, no I/O.

The api parses OpenAI or native bodies into a `GenerationRequest`; adapters turn it into a payload and
turn the answer into a `Generation`; the api renders that back. Nothing else crosses those seams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

Api = Literal["chat", "completions", "generate"]


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    ERROR = "error"


class TokenSource(StrEnum):
    BACKEND = "backend"      # counted by the container (TGI/LMI details, OpenAI usage)
    TOKENIZER = "tokenizer"  # counted locally with the model's tokenizer.json
    ESTIMATE = "estimate"    # see tokens.estimate_tokens


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image, always inline by the time it is canonical: the api fetches remote URLs (service/api/images.py)."""

    url: str          # data:<mime>;base64,<bytes>
    detail: str = "auto"


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made: `arguments` is the JSON text of an object, as the OpenAI API carries it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """`content` is the text (parts joined); `parts` keeps text and images in order when the message has images;
    an assistant message may carry `tool_calls`, a tool message answers the call `tool_call_id`."""

    role: str
    content: str
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; `parameters` is its (validated) JSON Schema."""

    name: str
    description: str | None
    parameters: Mapping[str, Any]
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """`none` | `auto` | `required`, or `function` with the one tool it must call."""

    mode: Literal["none", "auto", "required", "function"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """`json_object` (any JSON object) or `json_schema` (an instance of `schema`); `text` is no format at all."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Canonical parameters, already range-checked in canonical (OpenAI) semantics. None = not given."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    num_beams: int | None = None
    n: int = 1
    seed: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    do_sample: bool | None = None

    def with_defaults(self, defaults: SamplingParams) -> SamplingParams:
        """Fill every parameter the client left out from a model's configured defaults."""
        changes = {name: getattr(defaults, name) for name in _OPTIONAL_PARAMS
                   if getattr(self, name) is None and getattr(defaults, name) is not None}
        if not self.stop and defaults.stop:
            changes["stop"] = defaults.stop
        return replace(self, **changes) if changes else self

    @property
    def greedy(self) -> bool:
        """Explicit do_sample wins; otherwise temperature 0 means greedy; otherwise sample (OpenAI default)."""
        if self.do_sample is not None:
            return not self.do_sample
        return self.temperature == 0


_OPTIONAL_PARAMS = tuple(
    name for name in SamplingParams.__dataclass_fields__ if name not in ("stop", "n")
)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token's log-probability and, when asked for, its most likely alternatives (`top`,
    best first, each with an empty `top`). `bytes` in the OpenAI shape is the UTF-8 of `token`."""

    token: str
    logprob: float
    top: tuple[TokenLogprob, ...] = ()


#: a request's `metadata` (OpenAI: up to 16 string pairs), kept for the request log line
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One validated request. Exactly one of `prompt` and `messages` is set.

    `context` is the native API's optional input for fine-tuned instruction templates ({context}).
    """

    model: str
    api: Api
    params: SamplingParams
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    context: str | None = None
    stream: bool = False
    include_usage: bool = False
    request_id: str = ""
    timeout_s: float | None = None  # the client's own deadline (x-jumpgate-timeout-s); can only shorten
    logprobs: bool = False  # per-token log-probabilities wanted in the answer
    top_logprobs: int = 0   # alternatives per token (0: the chosen token only)
    metadata: Metadata = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None  # None: the API's default (auto with tools)
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    #: a JSON Schema the container must constrain its output to (set by the gateway for grammar-capable paths)
    constraint: Mapping[str, Any] | None = None

    @property
    def has_images(self) -> bool:
        return self.messages is not None and any(m.parts for m in self.messages)

    @property
    def calls_tools(self) -> bool:
        """Tools are offered and the model may call one (tool_choice is not `none`)."""
        return bool(self.tools) and (self.tool_choice is None or self.tool_choice.mode != "none")


@dataclass(frozen=True, slots=True)
class Choice:
    text: str
    finish_reason: FinishReason | None  # None: the container does not report one
    index: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None  # None: the answer carried no token data
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    source: TokenSource

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self, *, with_source: bool = False) -> dict[str, int | str]:
        """The OpenAI usage object (`prompt_tokens`, `completion_tokens`, `total_tokens`), with jumpgate's
        `source` when asked for: the one serialization of usage everywhere (answers, streams, shadow log)."""
        body: dict[str, int | str] = {"prompt_tokens": self.prompt_tokens,
                                      "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens}
        if with_source:
            body["source"] = self.source.value
        return body


@dataclass(frozen=True, slots=True)
class Decoded:
    """What an adapter read from one upstream answer. Counts are None when the backend did not say."""

    choices: tuple[Choice, ...]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    """The gateway's answer to a request: choices, usage and where it came from."""

    choices: tuple[Choice, ...]
    usage: Usage
    endpoint: str
    attempts: int = 1
    dropped_params: tuple[str, ...] = ()
    upstream_seconds: float = 0.0
    cost_usd: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """Text generated since the previous event, for choice `index`."""

    text: str
    index: int = 0
    logprobs: tuple[TokenLogprob, ...] = ()  # the tokens this delta's text came from, when asked for


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The upstream's final event: why it stopped and, when it says, the token counts."""

    finish_reason: FinishReason | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """One whole tool call of choice `index` (calls are relayed complete, never as argument fragments)."""

    call: ToolCall
    position: int = 0  # its place among the choice's calls (OpenAI's `tool_calls[].index`)
    index: int = 0


StreamEvent = TokenDelta | ToolCallEvent | StreamEnd


@dataclass(frozen=True, slots=True)
class StreamFinal:
    """What the gateway emits last on a stream: the resolved finish reason and usage."""

    finish_reason: FinishReason
    usage: Usage
    cost_usd: float = 0.0
