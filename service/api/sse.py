"""Gateway stream → server-sent events in the OpenAI chunk shapes (chat, completions) or the native one.

Every stream ends with `data: [DONE]` after a final chunk carrying the finish reason (and usage when
asked for, always on the native API). A failure after the first byte becomes one OpenAI-shaped
`{"error": ...}` event and the stream closes without `[DONE]`, so clients never see a clean finish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import orjson

from service.api import logprobs
from service.api.errors import error_event, unexpected_event
from service.api.finish import Finisher
from service.canonical import GenerationRequest, StreamFinal, TokenDelta, ToolCallEvent
from service.errors import GatewayError
from service.pipeline.streaming import AnswerStream

log = logging.getLogger("jumpgate.sse")

DONE = b"data: [DONE]\n\n"
Chunk = dict[str, Any]


def frame(data: Chunk) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class ChunkShape:
    """How one API spells a token chunk and a final chunk."""

    def __init__(self, req: GenerationRequest, stream: AnswerStream) -> None:
        self.req = req
        self.stream = stream
        self.base: Chunk = {"id": req.request_id, "created": int(time.time()), "model": req.model}

    def opening(self) -> list[Chunk]:
        return []

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


async def sse_frames(req: GenerationRequest, stream: AnswerStream, done: Finisher) -> AsyncIterator[bytes]:
    """The response body of a streaming request. Records the trace when the stream ends, however it ends:
    finished, failed mid-stream, or abandoned by the client (status 499, the usual "client closed")."""
    shape = SHAPES[req.api](req, stream)
    completed = False
    texts: list[str] = []
    # The opening chunk goes out with the first batch: the stream is open already, so it waits for nothing.
    out = [frame(chunk) for chunk in shape.opening()]
    try:
        async for batch in stream.events():
            for event in batch:
                if isinstance(event, TokenDelta):
                    texts.append(event.text)
                    out.append(frame(shape.token(event)))
                else:
                    out.extend(shape.frames(event, texts))
            yield b"".join(out)  # one write per upstream read, however many tokens it carried
            out = []
        completed = True
    except GatewayError as err:
        completed = True
        done.trace.note_error(err)
        log.warning("stream %s ended with %s: %s", req.request_id, err.code, err.message)
        yield b"".join([*out, error_event(err)])
    except Exception:
        completed = True
        done.trace.status, done.trace.error = 500, "internal_error"
        yield b"".join([*out, unexpected_event(req.request_id)])
    finally:
        # Shielded: when the client went away this runs inside a cancelled scope, and the upstream must
        # still be closed, the slot released and the tenant charged.
        with anyio.CancelScope(shield=True):
            await stream.aclose()
            stream.charge_unfinished()
            if not completed:
                done.trace.status, done.trace.disconnected, done.trace.abandoned = 499, True, "disconnect"
            if done.log_prompts:
                done.trace.completion = "".join(texts)
            await done.finish()
