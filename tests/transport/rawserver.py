"""A raw HTTP/1.1 server for the response-stream tests: it reads each request and answers byte by byte as a test
scripts it (split anywhere, cut, stalled, kept alive or closed, malformed); and the pieces of such answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.transport.base import Payload, Target
from service.transport.sagemaker import SageMakerTransport
from tests.transport.upstream import payload_part

STREAM_PAYLOAD = Payload(b'{"inputs": "hi"}', accept="text/event-stream")
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """Reads one request head and body per exchange, then runs the script on the connection."""

    url: str = ""
    scripts: list[Script] = field(default_factory=list)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.scripts:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                await self.scripts.pop(0)(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n"
PARTS = [b'data: {"token": {"text": "He', b'llo"}}\n\n', "é".encode()]


def send_in(*writes: bytes, close: bool = False, pause: float = 0.0) -> Script:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for data in writes:
            writer.write(data)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)  # lets the client read the writes apart; the verdict does not depend on it
        if close:
            writer.close()
    return script


async def read_all(transport: SageMakerTransport, target: Target | None = None) -> list[bytes]:
    return [part async for part in transport.invoke_stream(target or Target("ep"), STREAM_PAYLOAD)]


def one_part_until_closed(gone: asyncio.Event) -> Script:
    """A stream that sends one PayloadPart and no more; `gone` is set once the client closed the connection."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(OK_HEAD + b"%x\r\n%s\r\n" % (len(payload_part(b"x")), payload_part(b"x")))
        await writer.drain()
        await reader.read()  # returns at EOF: the client closed the connection
        gone.set()
    return script
