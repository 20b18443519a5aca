"""The floor proxy forwards bytes unchanged both ways, closes each side with the other, and holds back-pressure.

In-process tests run the proxy on the event loop the benchmark uses (uvloop, through paced_upstream.runner) between
two ends written here: a test upstream (a listening server) and a test client. Waits poll state with a deadline
that only bounds a hang; no verdict depends on timing. The last test runs the proxy as the benchmark does, a
process in front of the paced upstream, and shows the upstream's SigV4 check passing through it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from tests.bench import floor_proxy
from tests.bench.paced_upstream import EVENTSTREAM, runner
from tests.bench.test_paced_upstream import PATH, signed, start_upstream, tgi_body
from tests.procs import Proc, free_port

HOST = floor_proxy.HOST
DEADLINE_S = 20.0
BIG = 16 * 1024 * 1024  # well past what the kernel buffers of a connection that is not read take in


class End(asyncio.Protocol):
    """A test end of a connection: keeps what it reads and whether it was closed."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class Ends:
    """A client connected through the proxy to the test upstream, and the upstream's end of it."""

    def __init__(self, client: End, upstream: End, relay: floor_proxy.Relay) -> None:
        self.client, self.upstream, self.relay = client, upstream, relay

    def pipe(self) -> floor_proxy.Pipe:
        """The proxy's client side (its peer is the upstream side)."""
        (pipe,) = self.relay.opened
        return pipe


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.001)


@asynccontextmanager
async def connected(first: bytes = b"") -> AsyncIterator[Ends]:
    """A client through the proxy to the test upstream; `first` is written as soon as the client is connected,
    before the proxy can have opened its upstream connection (as a client's request is)."""
    loop = asyncio.get_running_loop()
    accepted: list[End] = []

    def accept() -> End:
        accepted.append(End())
        return accepted[-1]

    upstream = await loop.create_server(accept, HOST, 0)
    proxy, relay = await floor_proxy.start(0, upstream.sockets[0].getsockname()[1])
    async with upstream, proxy:
        _, client = await loop.create_connection(End, HOST, proxy.sockets[0].getsockname()[1])
        if first:
            client.write(first)
        await until(lambda: len(relay.opened) == 1 and len(accepted) == 1)
        ends = Ends(client, accepted[0], relay)
        try:
            yield ends
        finally:
            for end in (client, accepted[0]):
                if end.transport is not None:
                    end.transport.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario()
    runner(main())


async def send_in_pieces(end: End, data: bytes, cuts: list[int]) -> None:
    """`data` cut at `cuts`, each piece a write of its own, the loop turning in between (so a send each)."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for a, b in itertools.pairwise(bounds):
        if b > a:
            end.write(data[a:b])
            await asyncio.sleep(0)


@settings(max_examples=25, deadline=None)
@given(up_size=hs.integers(0, 300_000), down_size=hs.integers(0, 300_000), seed=hs.integers(0, 2**32),
       cuts=hs.lists(hs.integers(0, 300_000), max_size=12), early=hs.integers(0, 300_000))
def test_bytes_go_through_unchanged_both_ways_however_they_are_split(up_size: int, down_size: int, seed: int,
                                                                      cuts: list[int], early: int) -> None:
    """The client's first `early` bytes are sent at once (before the upstream connection is open), the rest and
    the upstream's reply in pieces cut anywhere."""
    rng = random.Random(seed)
    up, down = rng.randbytes(up_size), rng.randbytes(down_size)
    early = min(early, up_size)

    async def scenario() -> None:
        async with connected(up[:early]) as ends:
            await asyncio.gather(send_in_pieces(ends.client, up[early:], cuts),
                                 send_in_pieces(ends.upstream, down, cuts))
            await until(lambda: len(ends.upstream.got) >= len(up) and len(ends.client.got) >= len(down))
            assert bytes(ends.upstream.got) == up
            assert bytes(ends.client.got) == down
    run(scenario)


@pytest.mark.parametrize("closing", ["client", "upstream"])
def test_a_side_closing_closes_the_other_after_what_it_sent(closing: str) -> None:
    async def scenario() -> None:
        async with connected() as ends:
            closer, other = (ends.client, ends.upstream) if closing == "client" else (ends.upstream, ends.client)
            last_words = random.Random(7).randbytes(2 * 1024 * 1024)  # more than one write of the proxy's
            closer.write(last_words)
            assert closer.transport is not None
            closer.transport.close()
            await until(lambda: other.lost)
            assert bytes(other.got) == last_words
            await until(lambda: not ends.relay.opened)
    run(scenario)


def test_a_request_sent_at_once_is_not_lost_while_the_upstream_connection_opens() -> None:
    request = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"

    async def scenario() -> None:
        async with connected(request) as ends:
            await until(lambda: len(ends.upstream.got) >= len(request))
            assert bytes(ends.upstream.got) == request
    run(scenario)


def test_a_client_whose_upstream_refuses_is_closed_with_nothing_said() -> None:
    async def scenario() -> None:
        dead = free_port()  # nothing listens there
        proxy, relay = await floor_proxy.start(0, dead)
        async with proxy:
            _, client = await asyncio.get_running_loop().create_connection(End, HOST,
                                                                           proxy.sockets[0].getsockname()[1])
            client.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            await until(lambda: client.lost)
            assert client.got == b"" and not relay.opened
    run(scenario)


@pytest.mark.parametrize("direction", ["to the client", "to the upstream"])
def test_a_reader_that_stops_pauses_the_sender_and_gets_everything_once_it_reads(direction: str) -> None:
    data = random.Random(11).randbytes(BIG)

    async def scenario() -> None:
        async with connected() as ends:
            pipe = ends.pipe()
            assert pipe.peer is not None
            # (the end that stops reading, the one that sends, the proxy side reading from the sender)
            reader, sender, sending_side = ((ends.client, ends.upstream, pipe.peer) if direction == "to the client"
                                            else (ends.upstream, ends.client, pipe))
            receiving_side = pipe if sending_side is pipe.peer else pipe.peer
            assert reader.transport is not None and sending_side.transport is not None
            reader.transport.pause_reading()
            sender.write(data)
            await until(lambda: sending_side.transport is not None and not sending_side.transport.is_reading())
            # The proxy stopped reading the sender: what it holds for the reader is bounded by its high-water mark
            # (and one read), not the whole response, which waits in the sender's socket and buffers.
            assert receiving_side.transport is not None
            assert receiving_side.transport.get_write_buffer_size() < 1024 * 1024
            reader.transport.resume_reading()
            await until(lambda: len(reader.got) >= len(data))
            assert bytes(reader.got) == data
            assert sending_side.transport.is_reading()
    run(scenario)


@pytest.fixture(scope="module")
def upstream_and_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    tmp: Path = tmp_path_factory.mktemp("floor")
    upstream = start_upstream(tmp, "--ttft-ms", "0", "--gap-ms", "0")
    try:
        port = free_port()
        proxy = Proc(["-m", "tests.bench.floor_proxy", "--port", str(port), "--upstream-port", str(upstream.port)],
                     port, "/ping", tmp / "floor-proxy.log")
        yield upstream, proxy
        proxy.stop()
    finally:
        upstream.stop()


@pytest.mark.e2e
def test_a_request_signed_for_the_upstream_streams_through_the_proxy_process(
        upstream_and_proxy: tuple[Proc, Proc]) -> None:
    """The proxy as the benchmark runs it: the request keeps the upstream's Host and signature, which the upstream
    checks (403 when they do not match what it received); a badly signed one is still refused."""
    upstream, proxy = upstream_and_proxy
    url, body = upstream.url + PATH, tgi_body(5)
    resp = httpx.post(proxy.url + PATH, content=body, headers=signed(url, body))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == EVENTSTREAM
    direct = httpx.post(url, content=body, headers=signed(url, body))
    assert resp.content == direct.content and resp.content.count(b"PayloadPart") == 5  # frames encoded once, alike
    bad = httpx.post(proxy.url + PATH, content=body, headers=signed(url, body, secret="not-the-secret"))
    assert bad.status_code == 403 and bad.headers["x-amzn-errortype"] == "InvalidSignatureException"
