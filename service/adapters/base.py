"""The adapter protocol: one implementation per payload schema.

An adapter knows payloads only: it declares its parameter rules (`service.adapters.params`), encodes a
canonical request with already-normalized wire parameters into a `Payload`, and decodes the
container's answer into canonical `Decoded` choices and counts. It never sees HTTP, signing or metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeGuard

import orjson

from service.adapters.features import FeatureTable
from service.adapters.logprobs import TokenTable
from service.adapters.params import Rules, Sampling, WireParams
from service.adapters.plain import PlainOut
from service.canonical import Choice, Decoded, FinishReason, GenerationRequest, StreamEvent
from service.errors import UpstreamModelError, UpstreamStreamError, redact
from service.prompts.render import PromptSpec
from service.transport.base import Payload, RawResponse


class Adapter(Protocol):
    """What every schema does. Schemas whose containers can stream are `StreamingAdapter`s as well."""

    name: str
    rules: Rules
    sampling: Sampling
    #: whether the container can stream (schemas that cannot are served by invoke + re-emit)
    can_stream: bool
    #: whether non-streaming answers carry exact prompt and completion counts (usage source `backend`)
    reports_counts: bool
    #: the token log-probabilities its answers carry, per container variant (empty: none)
    token_data: TokenTable
    #: tools, constrained JSON and images, per container kind (service/adapters/features.py)
    features: FeatureTable

    def encode(self, req: GenerationRequest, spec: PromptSpec, wire: WireParams) -> Payload:
        """Build the container payload. `wire.values` holds the normalized parameters under wire names."""
        ...

    def decode(self, raw: RawResponse) -> Decoded:
        """Parse a non-streaming answer. Raises UpstreamModelError on a shape it does not know."""
        ...

    def decode_logprobs(self, raw: RawResponse) -> Decoded:
        """`decode`, with each choice's token log-probabilities (asked for only by requests that want them:
        reading every token costs time on the common path)."""
        ...


class StreamingAdapter(Adapter, Protocol):
    def stream_decoder(self) -> StreamDecoder:
        """A fresh incremental decoder for one response stream."""
        ...


def streams(adapter: Adapter) -> TypeGuard[StreamingAdapter]:
    """Whether the adapter's container streams (its declared `can_stream`)."""
    return adapter.can_stream


class StreamDecoder(Protocol):
    #: set before the first `feed` when the request wants token log-probabilities on its deltas
    with_logprobs: bool

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Take the next PayloadPart bytes (cut anywhere) and return the events now complete. An error met
        after events in the same bytes is raised by the next `feed` or `close`, after those events."""
        ...

    #: the PayloadPart bytes taken so far (the endpoint's output bytes, part of a request's cost)
    received: int

    def push(self, on_events: Callable[[list[StreamEvent]], bool], data: bytes) -> bool:
        """`feed(data)` with its events, when there are any, handed to `on_events`: its answer (False: pause), or
        True. The relay's read: the transport calls it with each network read's parts."""
        ...

    def push_plain(self, out: PlainOut, on_events: Callable[[list[StreamEvent]], bool], data: bytes) -> bool:
        """`push`, with a part that is one plain token written straight to `out` while `out.live` (plain.py)."""
        ...

    def close(self) -> list[StreamEvent]:
        """The upstream bytes ended: return what is still owed."""
        ...


# Container finish reasons (TGI, LMI, OpenAI) onto the canonical ones.
FINISH_REASONS: Mapping[str, FinishReason] = {
    "length": FinishReason.LENGTH,
    "eos_token": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "stop": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "tool_calls": FinishReason.STOP,
    "error": FinishReason.ERROR,
}


def finish_reason(value: Any) -> FinishReason | None:
    """None when the container did not say (the gateway then infers it from the token count)."""
    return FINISH_REASONS.get(value, FinishReason.STOP) if isinstance(value, str) else None


def json_payload(body: Mapping[str, Any]) -> Payload:
    return Payload(orjson.dumps(body))


def load_json(raw: RawResponse, schema: str) -> Any:
    try:
        return orjson.loads(raw.body)
    except orjson.JSONDecodeError:
        raise UpstreamModelError(f"the {schema} endpoint answered with a body that is not JSON") from None


def shape_error(schema: str, expected: str) -> UpstreamModelError:
    return UpstreamModelError(f"the {schema} endpoint answered with an unexpected shape; expected {expected}")


def text_choice(text: Any, reason: Any, schema: str, index: int = 0) -> Choice:
    if not isinstance(text, str):
        raise shape_error(schema, "a string generated text")
    return Choice(text=text, finish_reason=finish_reason(reason), index=index)


def stream_failure(schema: str, detail: Any) -> UpstreamStreamError:
    """An error object inside a 200 stream (TGI `{"error"}`, LMI `{"code","error"}`, OpenAI `{"error":{...}}`)."""
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("error") or "unknown error"
    return UpstreamStreamError(f"the {schema} endpoint failed mid-stream: {redact(str(detail))}")


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
