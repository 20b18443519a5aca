"""OpenAI and native wire models, each converting itself to the canonical `GenerationRequest`.

Canonical ranges (OpenAI semantics) are checked here; per-endpoint ranges and support come later
from the adapter's rules. `extra="forbid"`: an unknown field is a 400 naming it. Fields OpenAI clients send at
their default values (`store: false`, ...) are screened by `default_only` (service/api/defaults.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.api import defaults
from service.api.defaults import Default
from service.canonical import GenerationRequest, Message, Metadata, SamplingParams
from service.errors import InvalidParam

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


class ContentPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None

    def canonical(self) -> Message:
        content = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return Message("system" if self.role == "developer" else self.role, content)


class ChatCompletionRequest(_OpenAICommon):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1000)]
    max_completion_tokens: PosInt | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    safety_identifier: Annotated[str, Field(max_length=MAX_ID)] | None = None  # like `user`: not forwarded

    default_only: ClassVar[Mapping[str, Default]] = defaults.CHAT

    @model_validator(mode="after")
    def _no_tools(self) -> ChatCompletionRequest:
        if self.tools or self.tool_choice not in (None, "none"):
            raise InvalidParam("tool calling is not supported by jumpgate yet: remove `tools`", param="tools")
        if self.response_format not in (None, {"type": "text"}):
            raise InvalidParam("`response_format` other than text is not supported yet: remove it",
                               param="response_format")
        if self.top_logprobs and not self.logprobs:
            raise InvalidParam("`top_logprobs` needs `logprobs` true: set it, or leave top_logprobs out",
                               param="top_logprobs")
        return self

    def to_canonical(self, request_id: str) -> GenerationRequest:
        return GenerationRequest(
            model=self.model, api="chat", params=self.sampling(self._max_new(self.max_completion_tokens), self.n),
            messages=tuple(m.canonical() for m in self.messages), stream=self.stream,
            include_usage=bool(self.stream_options and self.stream_options.include_usage), request_id=request_id,
            logprobs=bool(self.logprobs), top_logprobs=self.top_logprobs or 0, metadata=self._metadata(),
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

    def to_canonical(self, request_id: str) -> GenerationRequest:
        p = self.parameters
        return GenerationRequest(
            model=self.model, api="generate", params=p.sampling(p.max_new_tokens, p.num_return_sequences),
            prompt=self.inputs, context=self.context, stream=self.stream, include_usage=True,
            request_id=request_id,
        )
