"""The relay floor: a TCP proxy that forwards bytes both ways and does nothing else.

``python -m tests.bench.floor_proxy --port P --upstream-port U`` listens on 127.0.0.1:P; for each accepted
connection it opens one to 127.0.0.1:U and copies bytes across unchanged, in both directions, until either
side closes. It parses nothing and answers nothing itself (``GET /ping`` through it reaches the upstream).

Why it exists: the paced benchmark (tests/bench/paced.py) sends its direct load through it as a third path,
"floor". Relaying a token costs any proxy at least one ``recv`` of the upstream's frame and one ``send`` to the
client, each waking the peer process on this machine: the system calls and event-loop turns a gateway cannot
avoid. This proxy pays exactly those (uvloop, asyncio Protocols: data_received -> the peer's transport.write,
no task, no buffer copy of its own), so its CPU per token is the machine's floor, and the gateway's figure minus
this one is what the gateway's own work costs.

Back-pressure: when a transport's write buffer passes its high-water mark (pause_writing), the peer stops
reading until it drains (resume_writing), so a client that does not read holds the upstream in the kernel's
socket buffers, not in this process's memory. What a client sends before its upstream connection is open (its
request) is kept until it is. EOF or an error on one side closes the other once its pending writes are flushed
(transport.close()); half-closed connections are not kept (HTTP does not need them).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

from tests.bench.paced_upstream import runner

HOST = "127.0.0.1"


class Pipe(asyncio.Protocol):
    """One side of a relayed connection: what it reads is written to its peer's transport as it came."""

    def __init__(self, relay: Relay, peer: Pipe | None = None) -> None:
        self.relay, self.peer = relay, peer
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []  # what a client sent before its upstream connection was open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        if self.peer is None:  # an accepted client (not paused meanwhile: uvloop starts reading it regardless)
            self.relay.connect(self)
        elif self.peer.transport is None:  # the upstream side, made for a client that has gone meanwhile
            self.transport.close()
        else:  # the upstream side, made for `peer`: both sides connected
            self.peer.peer = self
            self.relay.opened.add(self.peer)
            if self.peer.early:
                self.transport.write(b"".join(self.peer.early))
                self.peer.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.early.append(data)
        elif self.peer.transport is not None:  # else the peer is lost and this side is being closed
            self.peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:  # after an error, or EOF (eof_received: None)
        self.transport = None
        self.relay.opened.discard(self)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # flushes what is buffered for it first

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()


class Relay:
    """The upstream's address and the accepted connections: those being connected (their tasks, kept so that
    they are not collected mid-flight) and those relaying (`opened`, which tests inspect)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.connecting: set[asyncio.Task[None]] = set()
        self.opened: set[Pipe] = set()

    def connect(self, client: Pipe) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(client))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(self, client: Pipe) -> None:
        try:
            await asyncio.get_running_loop().create_connection(lambda: Pipe(self, client), *self.upstream)
        except OSError:
            if client.transport is not None:
                client.transport.close()  # no upstream: the client sees its connection closed, nothing else


async def start(port: int, upstream_port: int, host: str = HOST) -> tuple[asyncio.Server, Relay]:
    """Listen on host:port (0: any free port) and relay every connection to host:upstream_port."""
    relay = Relay(host, upstream_port)
    server = await asyncio.get_running_loop().create_server(lambda: Pipe(relay), host, port, backlog=4096)
    return server, relay


async def serve(port: int, upstream_port: int) -> None:
    async with (await start(port, upstream_port))[0] as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.floor_proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="where clients connect (127.0.0.1)")
    parser.add_argument("--upstream-port", type=int, required=True, help="where bytes go (127.0.0.1)")
    args = parser.parse_args(argv)
    runner(serve(args.port, args.upstream_port))


if __name__ == "__main__":
    main()
