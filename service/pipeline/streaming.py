"""Streaming requests: open the upstream stream (with retries, before any byte reaches the client), then relay
token deltas with gateway-side stop sequences and token log-probabilities (`logprobs.DeltaRelay`), ending with
one `StreamFinal`.

Failures before the first upstream PayloadPart are ordinary errors (HTTP status, retries); failures after it
end the client's stream with an error event, never a silent truncated success. Endpoints that cannot stream are
invoked normally and their answer is relayed as one delta. The plans come from the gateway; the mechanics of an
attempt (slot, retries, breaker, deadline) from `attempts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from opentelemetry.trace import Span

from service.adapters.base import streams
from service.adapters.plain import PlainOut
from service.canonical import (
    Decoded,
    FinishReason,
    Generation,
    GenerationRequest,
    StreamEnd,
    StreamEvent,
    StreamFinal,
    TokenDelta,
    ToolCallEvent,
)
from service.errors import GatewayError, InvalidParam, UpstreamError, UpstreamStreamError
from service.pipeline import logprobs
from service.pipeline.attempts import Attempts
from service.pipeline.catalog import Endpoint
from service.pipeline.outputs import StreamReader
from service.pipeline.plan import Plan
from service.pipeline.results import attributed_cost, resolve_finish, unfinished_usage
from service.pipeline.sources import Decoding, EventSource, Replay, read_calls
from service.pipeline.tokens import resolve_usage
from service.telemetry.trace import Trace
from service.telemetry.tracing import end_attempt, first_token
from service.transport.base import PartStream, Payload, Target, Transport

#: called with the endpoint that answered, the whole relayed text and the final event once a stream
#: completed (shadow traffic)
OnFinal = Callable[[Endpoint, str, StreamFinal], None]
#: what a stream relays: text, whole tool calls, and last the final event
OutEvent = TokenDelta | ToolCallEvent | StreamFinal
#: takes one batch of output; returns False to pause the stream until `relay` is called again
Emit = Callable[[Sequence[OutEvent]], bool]


@dataclass(frozen=True)
class TokenTemplate:
    """What the SSE layer offers for writing a plain token without an `emit` (adapters/plain.py): the bytes around
    the token's JSON string in its chunk, the socket's write (False: pause) and its list of relayed texts."""

    head: bytes
    tail: bytes
    write: Callable[[bytes], bool]
    texts: list[str]


class AnswerStream(Protocol):
    """What the api relays: a stream from the upstream (`GatewayStream`) or a checked answer (`WholeAnswer`)."""

    plan: Plan
    attempts: int

    @property
    def endpoint(self) -> Endpoint: ...

    async def relay(self, emit: Emit, template: TokenTemplate | None = None) -> bool:
        """Hand the output to `emit`, a batch at a time (what one upstream read delivered), until `emit` returns
        False (then True: call again to go on) or the last batch, ending with the StreamFinal, was emitted (False).
        With a `template`, a plain token may be written through it instead (the same bytes; adapters/plain.py)."""
        ...

    async def aclose(self) -> None: ...

    def charge_unfinished(self) -> None: ...


@dataclass
class StreamMeter:
    """When the stream opened, its tokens came and it ended, and the bytes it moved (for cost)."""

    opened: float = 0.0
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None
    tokens: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class GatewayStream:
    """An opened stream. Call `relay(emit)` until it returns False; the stream closes the upstream when it ends,
    fails, or is abandoned (aclose)."""

    plan: Plan
    attempts: int
    source: EventSource  # the events decoded from each upstream read
    mechanics: Attempts
    trace: Trace
    resources: AsyncExitStack  # the upstream response and the endpoint slot, released by aclose()
    meter: StreamMeter = field(default_factory=StreamMeter)
    on_final: OnFinal | None = None
    generated: list[str] = field(default_factory=list)  # the upstream's text so far (stop text included)
    final: StreamFinal | None = None
    tool_calls: int = 0
    _relay_state: logprobs.DeltaRelay | None = None
    _reader: StreamReader | None = None  # tool calls and JSON read from the text, for requests that need them
    _tail: tuple[StreamEnd | None, list[OutEvent]] | None = None  # the final event, the text read with it
    _fault: GatewayError | None = None
    _over: bool = False
    _plain: PlainOut | None = None  # where the decoder writes plain tokens itself, when nothing needs to see them

    def __post_init__(self) -> None:
        if self.plan.treatment.active:
            self._reader = StreamReader(self.plan.treatment)

    @property
    def endpoint(self) -> Endpoint:
        return self.plan.endpoint

    async def relay(self, emit: Emit, template: TokenTemplate | None = None) -> bool:
        """Hand the stream's output to `emit`, one batch per upstream read that produced any (from inside the read
        when the transport can push: sources.py), until `emit` returns False (then True: call again once the client
        caught up) or the stream is over: its last batch, ending with the one StreamFinal, was emitted (False).
        Raises the GatewayError that ended the stream (what came before it was emitted); the upstream is closed.
        With a `template` and nothing to read in the tokens (no stop sequences, log-probabilities or tool reading),
        the decoder writes plain tokens through it itself once the first token went through `emit`."""
        if self._over:
            return False
        relay = self._relay_state
        if relay is None:
            relay = self._relay_state = logprobs.DeltaRelay(self.plan.params.stop, self.plan.logprobs)
        plain = self._plain
        if plain is None and template is not None and relay.passthrough and self._reader is None:
            plain = self._plain = PlainOut(template.head, template.tail, template.write, template.texts,
                                           self.generated, self.mechanics.clock)
            self.mechanics.lanes.add(plain)  # the drain's cut stops it
        try:
            try:
                more = await self.source.deliver(partial(self._take, relay, emit), plain)  # positional: no dict
            except UpstreamError as exc:  # a stream that breaks midway counts against the endpoint's circuit
                self.mechanics.stream_broke(self.endpoint, exc)
                raise
            if self._fault is not None:
                raise self._fault
            if more and self._tail is None:
                return True
        except BaseException:
            self._over = True
            await self.aclose()
            raise
        self._over = True
        await self.aclose()  # stop reading: closing the stream ends the upstream generation early
        end, out = self._tail or (None, [])
        emit(self._ending(end, relay, out))
        return False

    def _take(self, relay: logprobs.DeltaRelay, emit: Emit, batch: list[StreamEvent]) -> bool:
        """One upstream read's events: relayed through `emit` while the stream goes on; kept (`_tail`) for the last
        batch once the final event came or a stop sequence ended the text."""
        if self._tail is not None or self._fault is not None:
            return False
        if relay.passthrough and self._reader is None and self.mechanics.cut is None:
            deltas = [batch[0]] if len(batch) == 1 and isinstance(batch[0], TokenDelta) else _text_only(batch)
            if deltas:  # relayed as they came: the usual read, one token
                generated = self.generated
                for delta in deltas:
                    generated.append(delta.text)
                self._mark_tokens(len(deltas))
                more = emit(deltas)
                if self._plain is not None:  # the opening chunk and the first token went out: plain tokens may follow
                    self._plain.live = True
                return more
        out: list[OutEvent] = []
        try:
            if self._reader is not None:
                batch = read_calls(batch, self._reader)
            if self.mechanics.cut is not None:
                raise self.mechanics.cut
            end = self._relay(batch, relay, out)
        except GatewayError as exc:  # not the upstream's failure: raised by relay() without blaming the endpoint
            self._fault = exc
            return False
        if end is not None or relay.stopped:
            self._tail = (end, out)
            return False
        return not out or emit(out)

    def _ending(self, end: StreamEnd | None, relay: logprobs.DeltaRelay, out: list[OutEvent]) -> list[OutEvent]:
        """The last batch: what the last read delivered, the stop scanner's tail, and the final event."""
        if not relay.stopped:
            if end is None:
                raise UpstreamStreamError(f"the stream from endpoint '{self.endpoint.id}' ended before its "
                                          "final event; the answer is incomplete")
            tail = relay.flush()
            if tail is not None:
                self._mark_token()
                out.append(tail)
        text = "".join(self.generated)
        final = self.final = self._final(end, text, relay.stopped)
        if self.on_final is not None:
            self.on_final(self.endpoint, text, final)
        out.append(final)  # what the last read delivered goes out with the final event
        return out

    def _relay(self, batch: list[StreamEvent], relay: logprobs.DeltaRelay, out: list[OutEvent]) -> StreamEnd | None:
        """One upstream read's events into `out` (text through the stop scanner); the final event, if it came."""
        for event in batch:
            if isinstance(event, StreamEnd):
                return event
            if isinstance(event, ToolCallEvent):
                self._mark_token()
                self.tool_calls += 1
                self.generated.append(event.call.name + event.call.arguments)
                out.append(event)
                continue
            self.generated.append(event.text)
            delta = relay.push(event)
            if delta is not None:
                self._mark_token()
                out.append(delta)
            if relay.stopped:
                break
        return None

    async def aclose(self) -> None:
        """Close the upstream (idempotent): releases the connection and the endpoint slot."""
        if self.meter.ended is not None:
            return
        self.meter.ended = self.mechanics.clock()
        try:
            await self.source.aclose()
            await self.resources.aclose()  # the upstream response first, then the slot
        finally:
            self._fill_trace()

    def charge_unfinished(self) -> None:
        """A stream that ended without its final event (client gone, failure, drain) is charged for what it
        consumed: the prompt, the text generated so far, the time it held the endpoint."""
        if self.final is not None:
            return
        seconds = (self.meter.ended or self.mechanics.clock()) - self.meter.opened
        self.trace.usage = unfinished_usage(self.plan, "".join(self.generated))
        self.trace.cost_usd = attributed_cost(self.endpoint, seconds, self.meter.bytes_in, self.meter.bytes_out)

    def _fill_trace(self) -> None:
        t, tm = self.trace, self.meter
        plain = self._plain
        if plain is not None:  # the tokens the decoder wrote itself
            plain.live = False
            tm.tokens += plain.tokens
            if plain.last is not None and (tm.last_token is None or plain.last > tm.last_token):
                tm.last_token = plain.last
        t.upstream_seconds = (tm.ended or tm.opened) - tm.opened
        t.upstream_bytes = tm.bytes_in + tm.bytes_out
        if tm.first_token is not None:
            t.first_token_seconds = tm.first_token - t.started
            if tm.tokens > 1 and tm.last_token is not None:
                t.per_token_seconds = (tm.last_token - tm.first_token) / (tm.tokens - 1)

    def _mark_token(self) -> None:
        self._mark_tokens(1)

    def _mark_tokens(self, count: int) -> None:
        """`count` tokens relayed now (the tokens of one upstream read share its time)."""
        now = self.mechanics.clock()
        meter = self.meter
        if meter.first_token is None:
            meter.first_token = now
            first_token(self.trace, now - self.trace.started)
        meter.last_token = now
        meter.tokens += count

    def _final(self, end: StreamEnd | None, text: str, stopped: bool) -> StreamFinal:
        decoded = Decoded((), end.prompt_tokens if end else None, end.completion_tokens if end else None)
        params, counter = self.plan.params, self.endpoint.counter
        usage = resolve_usage(decoded, self.plan.prompt_text, [text], counter, params.max_new_tokens)
        reason = FinishReason.TOOL_CALLS if self.tool_calls else resolve_finish(
            end.finish_reason if end else None, text, stopped=stopped, params=params, counter=counter)
        seconds = (self.meter.ended or self.meter.opened) - self.meter.opened
        final = StreamFinal(reason, usage, attributed_cost(self.endpoint, seconds, self.meter.bytes_in,
                                                           self.meter.bytes_out))
        self.trace.usage, self.trace.cost_usd, self.trace.finish_reasons = usage, final.cost_usd, (str(reason),)
        return final


def _text_only(batch: list[StreamEvent]) -> list[TokenDelta] | None:
    """The batch if it holds nothing but text deltas, else None."""
    deltas: list[TokenDelta] = []
    for event in batch:
        if not isinstance(event, TokenDelta):
            return None
        deltas.append(event)
    return deltas


async def open_stream(mechanics: Attempts, req: GenerationRequest, plans: Sequence[Plan], deadline: float,
                      trace: Trace, on_final: OnFinal | None = None) -> GatewayStream:
    """Try the candidates in order until one stream opens (its first PayloadPart arrived); a retryable failure
    before that moves to the next candidate, as for non-streaming requests."""
    if plans[0].params.n > 1:
        raise InvalidParam("n > 1 cannot be streamed yet: send stream false, or n 1", param="n")

    async def attempt(plan: Plan, last: bool) -> GatewayStream:
        ep, adapter = plan.endpoint, plan.endpoint.adapter
        meter = StreamMeter(opened=mechanics.clock(), bytes_in=len(plan.payloads[0].body))
        if not (ep.can_stream and streams(adapter)):  # invoke, and relay the answer as one delta
            result = await mechanics.call(ep, plan.payloads[0], last=last, deadline=deadline, trace=trace)
            meter.bytes_out = len(result.raw.body)
            decoded = (adapter.decode if plan.logprobs is None else adapter.decode_logprobs)(result.raw)
            return GatewayStream(plan, result.attempts, Replay(decoded), mechanics, trace, AsyncExitStack(), meter,
                                 on_final)
        async with AsyncExitStack() as opening:
            await opening.enter_async_context(mechanics.slot(ep, wait=last, deadline=deadline))
            target = mechanics.target_for(ep, deadline)
            held: list[Span] = []  # the open attempt's span, ended when the stream closes
            (parts, first), attempts = await mechanics.retrying(
                ep, lambda: _open(mechanics.transport, target, plan.payloads[0]), last=last,
                deadline_cut=target is not ep.target, trace=trace, keep_span=held)
            for span in held:
                opening.callback(end_attempt, span)
            opening.push_async_callback(parts.aclose)
            resources = opening.pop_all()  # opened: the stream now owns the slot and the response
        decoder = adapter.stream_decoder()
        decoder.with_logprobs = plan.logprobs is not None
        return GatewayStream(plan, attempts, Decoding(decoder, first, parts, meter), mechanics, trace, resources,
                             meter, on_final)

    _, stream = await mechanics.failover(plans, attempt, trace)
    return stream


async def _open(transport: Transport, target: Target, payload: Payload) -> tuple[PartStream, bytes]:
    """Start the upstream stream and wait for its first PayloadPart, so pre-stream errors can be retried."""
    parts = transport.invoke_stream(target, payload)
    try:
        first = await anext(parts, b"")
    except BaseException:
        await parts.aclose()
        raise
    return parts, first


@dataclass
class WholeAnswer:
    """A generation that had to be complete and valid before anything was relayed (emulated `required` tool calls,
    JSON output), relayed as a stream: its text or its calls, then the final event with its usage and cost."""

    plan: Plan
    generation: Generation
    attempts: int = 1
    done: bool = False

    def __post_init__(self) -> None:
        self.attempts = self.generation.attempts

    @property
    def endpoint(self) -> Endpoint:
        return self.plan.endpoint

    async def relay(self, emit: Emit, template: TokenTemplate | None = None) -> bool:
        if self.done:
            return False
        self.done = True
        gen = self.generation
        choice = gen.choices[0]
        out: list[OutEvent] = [TokenDelta(choice.text)] if choice.text else []
        out.extend(ToolCallEvent(call, i) for i, call in enumerate(choice.tool_calls))
        out.append(StreamFinal(choice.finish_reason or FinishReason.STOP, gen.usage, gen.cost_usd))
        emit(out)
        return False

    async def aclose(self) -> None:
        return None

    def charge_unfinished(self) -> None:
        return None  # generated and charged whole before the first byte
