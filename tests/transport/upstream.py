"""Test helpers: a minimal event-stream frame encoder and a real aiohttp server shaped like the SageMaker runtime.

The encoder is written from the framing description (wire-formats.md 1.6), not from botocore, so the
decoder under test is checked against an independent reading of the format.
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

ACCOUNT = "123456789012"
LOG_STREAM_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/x"


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string-typed (7) headers."""
    block = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        block += struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack("!II", total, len(block))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + block + payload
    return body + struct.pack("!I", zlib.crc32(body))


def payload_part(data: bytes) -> bytes:
    return encode_frame({":message-type": "event", ":event-type": "PayloadPart",
                         ":content-type": "application/octet-stream"}, data)


def exception_frame(exception_type: str, fields: dict[str, object]) -> bytes:
    return encode_frame({":message-type": "exception", ":exception-type": exception_type,
                         ":content-type": "application/json"}, json.dumps(fields).encode())


def error_frame(code: str, message: str) -> bytes:
    return encode_frame({":message-type": "error", ":error-code": code, ":error-message": message}, b"")


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeRuntime:
    """Routes POST /endpoints/{name}/{operation} to the handler registered for `name`."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.raw_path,
                                      {k.lower(): v for k, v in request.headers.items()}, body))
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        return await self.handlers[name](request)

    async def stream(self, request: web.Request, frames: list[bytes], *, delay: float = 0.0) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream",
                                           "X-Amzn-SageMaker-Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for frame in frames:
                await resp.write(frame)
                if delay:
                    await asyncio.sleep(delay)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        await resp.write_eof()
        return resp

    async def stall(self, request: web.Request) -> web.StreamResponse:
        """Answer only when the test ends: the client must time out first."""
        await asyncio.wait_for(self.release.wait(), timeout=10)
        return web.Response(body=b"{}")


def aws_error(status: int, code: str, fields: dict[str, object], *, in_header: bool = True) -> Handler:
    """A rest-json error as the runtime sends it: code in x-amzn-ErrorType (or in the body)."""
    headers = {"x-amzn-RequestId": "3f1c0e4e-0000-4000-8000-000000000000"}
    if in_header:
        headers["x-amzn-ErrorType"] = f"{code}:http://internal.amazon.com/coral/com.amazon.coral.service/"
    else:
        fields = {"__type": f"com.amazon.coral.service#{code}", **fields}

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(fields, status=status, headers=headers)

    return handler


def model_error(original_status: int, original_message: str) -> Handler:
    return aws_error(424, "ModelError", {
        "OriginalStatusCode": original_status,
        "OriginalMessage": original_message,
        "Message": f"Received client error ({original_status}) from primary with message \"{original_message}\". "
                   f"See {LOG_STREAM_ARN} in account {ACCOUNT} for more information.",
        "LogStreamArn": LOG_STREAM_ARN,
    })


def raw_reply(status: int, body: bytes, content_type: str = "text/html") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type)

    return handler
