"""Gateway stream → server-sent events in the OpenAI chunk shapes (chat, completions) or the native one.

Every stream ends with `data: [DONE]` after a final chunk carrying the finish reason (and usage when
asked for, always on the native API). A failure after the first byte becomes one OpenAI-shaped
`{"error": ...}` event and the stream closes without `[DONE]`, so clients never see a clean finish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from service.api import logprobs
from service.api.errors import error_event, unexpected_event
from service.api.finish import Finisher
from service.canonical import GenerationRequest, StreamFinal, TokenDelta, ToolCallEvent
from service.errors import GatewayError
from service.pipeline.streaming import AnswerStream, OutEvent, TokenTemplate

log = logging.getLogger("jumpgate.sse")

DONE = b"data: [DONE]\n\n"
Chunk = dict[str, Any]
#: the text a token chunk template is built with, and its JSON spelling, where the escaped text goes
_SLOT = "\x00"
_SLOT_JSON = orjson.dumps(_SLOT)


def frame(data: Chunk) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class ChunkShape:
    """How one API spells a token chunk and a final chunk."""

    def __init__(self, req: GenerationRequest, stream: AnswerStream) -> None:
        self.req = req
        self.stream = stream
        self.base: Chunk = {"id": req.request_id, "created": int(time.time()), "model": req.model}
        # Without log-probabilities a token chunk differs from the next only by its text: it is built once per
        # choice index as the bytes around the text, so a token costs one orjson.dumps of a string.
        self._templates: dict[int, tuple[bytes, bytes]] | None = None if stream.plan.logprobs is not None else {}

    def opening(self) -> list[Chunk]:
        return []

    def token_frame(self, delta: TokenDelta) -> bytes:
        """The SSE frame of a token chunk; byte for byte `frame(self.token(delta))`."""
        around = self._templates.get(delta.index) if self._templates is not None else None
        if around is None:
            around = self.template(delta.index)
            if around is None:
                return frame(self.token(delta))
        return around[0] + orjson.dumps(delta.text) + around[1]

    def template(self, index: int) -> tuple[bytes, bytes] | None:
        """The bytes around a token's JSON string in choice `index`'s token frame (None with log-probabilities)."""
        if self._templates is None:
            return None
        around = self._templates.get(index)
        if around is None:
            head, _, tail = frame(self.token(TokenDelta(_SLOT, index))).rpartition(_SLOT_JSON)
            around = self._templates[index] = (head, tail)
        return around

    def token(self, delta: TokenDelta) -> Chunk:
        return {**self.base, "index": delta.index, "text": delta.text}

    def tool_call(self, event: ToolCallEvent) -> Chunk:
        return {**self.base, "index": event.index, "tool_calls": [call_json(event)]}

    def frames(self, event: ToolCallEvent | StreamFinal, texts: list[str]) -> list[bytes]:
        """The frames of a tool call, or of the final event (the last thing a stream yields) and [DONE]."""
        if isinstance(event, ToolCallEvent):
            texts.append(f"{event.call.name}({event.call.arguments})")
            return [frame(self.tool_call(event))]
        return [*(frame(chunk) for chunk in self.final(event)), DONE]

    def final(self, final: StreamFinal) -> list[Chunk]:
        return [{**self.base, "finish_reason": final.finish_reason, "endpoint": self.stream.endpoint.id,
                 "usage": final.usage.as_dict(with_source=True),
                 "cost_usd": final.cost_usd}]


class ChatShape(ChunkShape):
    def __init__(self, req: GenerationRequest, stream: AnswerStream) -> None:
        super().__init__(req, stream)
        self.base = {**self.base, "id": f"chatcmpl-{req.request_id}", "object": "chat.completion.chunk"}

    def _choice(self, delta: dict[str, Any], finish: str | None = None, index: int = 0,
                entries: dict[str, Any] | None = None) -> Chunk:
        return {**self.base, "choices": [{"index": index, "delta": delta, "finish_reason": finish,
                                          "logprobs": entries}]}

    def opening(self) -> list[Chunk]:
        return [self._choice({"role": "assistant", "content": ""})]

    def token(self, delta: TokenDelta) -> Chunk:
        entries = logprobs.chat(delta.logprobs) if self.stream.plan.logprobs is not None else None
        return self._choice({"content": delta.text}, index=delta.index, entries=entries)

    def tool_call(self, event: ToolCallEvent) -> Chunk:
        # a whole call in one delta: index on it, id, type and name with it (the OpenAI SDK's stream helpers
        # and LangChain accumulate this as they accumulate fragments)
        return self._choice({"tool_calls": [call_json(event)]}, index=event.index)

    def final(self, final: StreamFinal) -> list[Chunk]:
        chunks = [self._choice({}, final.finish_reason)]
        if self.req.include_usage:
            chunks.append({**self.base, "choices": [], "usage": final.usage.as_dict()})
        return chunks


class CompletionShape(ChunkShape):
    def __init__(self, req: GenerationRequest, stream: AnswerStream) -> None:
        super().__init__(req, stream)
        self.base = {**self.base, "id": f"cmpl-{req.request_id}", "object": "text_completion"}
        self.offset = 0  # characters of tokens sent so far: the legacy shape's text_offset

    def _choice(self, text: str, finish: str | None = None, index: int = 0,
                entries: dict[str, Any] | None = None) -> Chunk:
        return {**self.base, "choices": [{"index": index, "text": text, "finish_reason": finish,
                                          "logprobs": entries}]}

    def token(self, delta: TokenDelta) -> Chunk:
        entries = None
        if self.stream.plan.logprobs is not None:
            entries = logprobs.legacy(delta.logprobs, self.offset)
            self.offset += sum(len(e.token) for e in delta.logprobs)
        return self._choice(delta.text, index=delta.index, entries=entries)

    def final(self, final: StreamFinal) -> list[Chunk]:
        chunks = [self._choice("", final.finish_reason)]
        if self.req.include_usage:
            chunks.append({**self.base, "choices": [], "usage": final.usage.as_dict()})
        return chunks


def call_json(event: ToolCallEvent) -> Chunk:
    call = event.call
    return {"index": event.position, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


SHAPES: dict[str, Callable[[GenerationRequest, AnswerStream], ChunkShape]] = {
    "chat": ChatShape, "completions": CompletionShape, "generate": ChunkShape,
}


class BodyOut(Protocol):
    """Where the response body goes. `write` is called from inside upstream reads, so it must not block; when it
    returns False (the client reads slower than the upstream writes) the relay stops reading and awaits `drain()`
    before the next write."""

    def write(self, data: bytes) -> bool: ...

    async def drain(self) -> None: ...


class SseRelay:
    """The response body of a streaming request, written by `run(out)` one piece per upstream read. `close()`
    records the trace however the stream ended: finished, failed mid-stream, or abandoned by the client (status
    499, the usual "client closed")."""

    def __init__(self, req: GenerationRequest, stream: AnswerStream, done: Finisher) -> None:
        self.req, self.stream, self.done = req, stream, done
        self.shape = SHAPES[req.api](req, stream)
        self.completed = False
        self.texts: list[str] = []
        # The opening chunk goes out with the first batch: the stream is open already, so it waits for nothing.
        self._opening: list[bytes] | None = [frame(chunk) for chunk in self.shape.opening()]

    async def run(self, out: BodyOut) -> None:
        """Write the whole body: the frames of each batch with one `write` (however many tokens one upstream read
        carried), the final chunk and [DONE] last, or an error event when the stream fails."""
        write, frames, texts, token_frame = out.write, self._frames, self.texts, self.shape.token_frame

        def emit(batch: Sequence[OutEvent]) -> bool:
            if len(batch) == 1 and self._opening is None:
                event = batch[0]
                if isinstance(event, TokenDelta):  # the usual batch: one token (once per token: no call spared)
                    texts.append(event.text)
                    return write(token_frame(event))
            return write(frames(batch))

        around = self.shape.template(0)  # a streamed answer is one choice, index 0
        template = TokenTemplate(around[0], around[1], write, texts) if around is not None else None
        try:
            while await self.stream.relay(emit, template):
                await out.drain()
        except GatewayError as err:
            self.done.trace.note_error(err)
            log.warning("stream %s ended with %s: %s", self.req.request_id, err.code, err.message)
            out.write(self._pending() + error_event(err))
        except Exception:
            self.done.trace.status, self.done.trace.error = 500, "internal_error"
            out.write(self._pending() + unexpected_event(self.req.request_id))
        self.completed = True

    def _frames(self, batch: Sequence[OutEvent]) -> bytes:
        frames = self._take_opening()
        for event in batch:
            if isinstance(event, TokenDelta):
                self.texts.append(event.text)
                frames.append(self.shape.token_frame(event))
            else:
                frames.extend(self.shape.frames(event, self.texts))
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def _pending(self) -> bytes:
        """The opening chunk when nothing was written yet (a stream that failed before its first batch)."""
        return b"".join(self._take_opening())

    def _take_opening(self) -> list[bytes]:
        """The opening chunk's frames the first time, then nothing: it goes out with whatever is written first."""
        opening, self._opening = self._opening or [], None
        return opening

    async def close(self) -> None:
        """Close the upstream, release the slot, charge the tenant and record the trace (idempotent upstream
        close; called once, by the response, after the last write or when the client left)."""
        done = self.done
        await self.stream.aclose()
        self.stream.charge_unfinished()
        if not self.completed:
            done.trace.status, done.trace.disconnected, done.trace.abandoned = 499, True, "disconnect"
        if done.log_prompts:
            done.trace.completion = "".join(self.texts)
        await done.finish()
