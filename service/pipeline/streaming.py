"""Streaming requests: open the upstream stream (with retries, before any byte reaches the client),
then relay token deltas with gateway-side stop sequences, ending with one `StreamFinal`.

Failures before the first upstream PayloadPart are ordinary errors (HTTP status, retries); failures
after it end the client's stream with an error event, never a silent truncated success. Schemas that
cannot stream are invoked normally and their answer is relayed as one delta.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service.canonical import (
    Decoded,
    FinishReason,
    GenerationRequest,
    StreamEnd,
    StreamEvent,
    StreamFinal,
    TokenDelta,
)
from service.errors import InvalidParam, UpstreamStreamError
from service.pipeline.catalog import Endpoint
from service.pipeline.stops import StopScanner
from service.pipeline.tokens import resolve_usage
from service.telemetry.trace import Trace
from service.transport.base import Payload, Target, Transport

if TYPE_CHECKING:
    from service.pipeline.gateway import Gateway, Plan


@dataclass
class StreamTimings:
    opened: float = 0.0
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None
    tokens: int = 0


@dataclass
class GatewayStream:
    """An opened stream. Iterate `events()` once; it closes the upstream when done or abandoned."""

    plan: Plan
    attempts: int
    source: AsyncIterator[list[StreamEvent]]  # the events decoded from each upstream read
    gateway: Gateway
    closers: tuple[AsyncIterator[object], ...] = ()
    timings: StreamTimings = field(default_factory=StreamTimings)
    trace: Trace | None = None
    hold: AsyncContextManager[None] | None = None  # the endpoint slot held while the stream is open

    @property
    def endpoint(self) -> Endpoint:
        return self.plan.endpoint

    async def events(self) -> AsyncIterator[list[TokenDelta | StreamFinal]]:
        """The deltas, then one StreamFinal, in batches: what one upstream read delivered travels together,
        so the client gets one write per read instead of one per token (nothing waits for a batch to fill)."""
        scanner = StopScanner(self.plan.params.stop)
        texts: list[str] = []
        end: StreamEnd | None = None
        source = self._checked_source()
        out: list[TokenDelta | StreamFinal] = []
        try:
            async for batch in source:
                for event in batch:
                    if isinstance(event, StreamEnd):
                        end = event
                        break
                    texts.append(event.text)
                    safe = scanner.push(event.text)
                    if safe:
                        self._mark_token()
                        out.append(TokenDelta(safe, event.index))
                    if scanner.stopped:
                        break
                if end is not None or scanner.stopped:
                    break  # stop reading: closing the stream ends the upstream generation early
                if out:
                    yield out
                    out = []
        finally:
            await source.aclose()
            await self.aclose()
        last = out  # what the last read delivered goes out with the final event
        if not scanner.stopped:
            if end is None:
                raise UpstreamStreamError(f"the stream from endpoint '{self.endpoint.id}' ended before its "
                                          "final event; the answer is incomplete")
            tail = scanner.flush()
            if tail:
                self._mark_token()
                last.append(TokenDelta(tail))
        last.append(self._final(end, "".join(texts), scanner.stopped))
        yield last

    async def _checked_source(self) -> AsyncIterator[list[StreamEvent]]:
        """The source, telling the endpoint's circuit breaker about a stream that breaks midway."""
        try:
            async for batch in self.source:
                yield batch
        except UpstreamStreamError:
            self.gateway.fleet[self.endpoint.id].breaker.record(failed=True)
            raise

    async def aclose(self) -> None:
        """Close the upstream (idempotent): releases the connection and the in-flight slot."""
        if self.timings.ended is not None:
            return
        self.timings.ended = self.gateway.clock()
        try:
            for it in (self.source, *self.closers):
                aclose = getattr(it, "aclose", None)
                if aclose is not None:
                    await aclose()
        finally:
            if self.hold is not None:
                await self.hold.__aexit__(None, None, None)
            self._fill_trace()

    def _fill_trace(self) -> None:
        t, tm = self.trace, self.timings
        if t is None:
            return
        t.upstream_seconds = (tm.ended or tm.opened) - tm.opened
        if tm.first_token is not None:
            t.first_token_seconds = tm.first_token - t.started
            if tm.tokens > 1 and tm.last_token is not None:
                t.per_token_seconds = (tm.last_token - tm.first_token) / (tm.tokens - 1)

    def _mark_token(self) -> None:
        now = self.gateway.clock()
        if self.timings.first_token is None:
            self.timings.first_token = now
        self.timings.last_token = now
        self.timings.tokens += 1

    def _final(self, end: StreamEnd | None, text: str, stopped: bool) -> StreamFinal:
        from service.pipeline.gateway import attributed_cost

        decoded = Decoded((), end.prompt_tokens if end else None, end.completion_tokens if end else None)
        counter = self.endpoint.counter
        usage = resolve_usage(decoded, self.plan.prompt_text, [text], counter, self.plan.params.max_new_tokens)
        if stopped:
            reason = FinishReason.STOP
        elif end is not None and end.finish_reason is not None:
            reason = end.finish_reason
        else:
            full = counter.count(text) >= (self.plan.params.max_new_tokens or 0)
            reason = FinishReason.LENGTH if full else FinishReason.STOP
        seconds = (self.timings.ended or self.timings.opened) - self.timings.opened
        final = StreamFinal(reason, usage, attributed_cost(self.endpoint, seconds))
        if self.trace is not None:
            self.trace.usage, self.trace.cost_usd = usage, final.cost_usd
        return final


async def open_stream(gateway: Gateway, req: GenerationRequest, trace: Trace | None = None) -> GatewayStream:
    """Try the candidates in order until one stream opens (its first PayloadPart arrived); a retryable
    failure before that moves to the next candidate, as for non-streaming requests."""
    deadline = gateway.deadline(req)
    plans = gateway.candidates(req, trace)
    if plans[0].params.n > 1:
        raise InvalidParam("n > 1 cannot be streamed yet: send stream false, or n 1", param="n")

    async def attempt(plan: Plan, last: bool) -> GatewayStream:
        ep, opened = plan.endpoint, gateway.clock()
        if not ep.adapter.can_stream:
            result = await gateway.call(ep, plan.payloads[0], last=last, deadline=deadline)
            source = _replay(ep.adapter.decode(result.raw))
            return GatewayStream(plan, result.attempts, source, gateway, timings=StreamTimings(opened), trace=trace)
        hold = gateway.slot(ep, wait=last, deadline=deadline)
        await hold.__aenter__()  # released by GatewayStream.aclose, or below if the stream never opens
        try:
            target = gateway.target_for(ep, deadline)
            (parts, first), attempts = await gateway.with_retries(
                ep, lambda: _open(gateway.transport, target, plan.payloads[0]), last=last)
        except BaseException:
            await hold.__aexit__(None, None, None)
            raise
        return GatewayStream(plan, attempts, _decode(ep, first, parts), gateway, (parts,), StreamTimings(opened),
                             trace=trace, hold=hold)

    _, stream = await gateway.failover(plans, attempt, trace)
    return stream


async def _open(transport: Transport, target: Target, payload: Payload) -> tuple[AsyncIterator[bytes], bytes]:
    """Start the upstream stream and wait for its first PayloadPart, so pre-stream errors can be retried."""
    parts = transport.invoke_stream(target, payload)
    try:
        first = await anext(parts, b"")
    except BaseException:
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return parts, first


async def _decode(ep: Endpoint, first: bytes, parts: AsyncIterator[bytes]) -> AsyncIterator[list[StreamEvent]]:
    decoder = ep.adapter.stream_decoder()
    events = decoder.feed(first)
    if events:
        yield events
    async for part in parts:
        events = decoder.feed(part)
        if events:
            yield events
    events = decoder.close()
    if events:
        yield events


async def _replay(decoded: Decoded) -> AsyncIterator[list[StreamEvent]]:
    choice = decoded.choices[0]
    head: list[StreamEvent] = [TokenDelta(choice.text)] if choice.text else []
    yield [*head, StreamEnd(choice.finish_reason, decoded.prompt_tokens, decoded.completion_tokens)]
