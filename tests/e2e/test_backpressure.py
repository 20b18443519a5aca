"""A client that reads slower than the upstream writes: the gateway writes the stream straight to the client's
socket from inside the upstream's reads (service/protocol.py `SocketBody`), so when that socket is full it must
stop reading the upstream, wait for the client, and go on, losing and reordering nothing.

The upstream is the paced-streams benchmark's TGI stand-in, unpaced: a 40,000-token answer (~6 MB of OpenAI
chunks) comes as fast as the gateway takes it, more than the kernel's socket buffers (autotuned up to 4 MB on
Linux) and the transport's high-water mark hold for a client with a small receive buffer.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httptools
import httpx
import orjson
import pytest
import yaml

from tests.bench.paced import ENDPOINT, chat_body, gateway_config
from tests.bench.paced_upstream import token_texts
from tests.procs import Proc, free_port, start_gateway

pytestmark = pytest.mark.e2e

TOKENS = 40_000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    tmp = tmp_path_factory.mktemp("backpressure")
    port = free_port()
    upstream = Proc(["-m", "tests.bench.paced_upstream", "--port", str(port), "--ttft-ms", "0", "--gap-ms", "0",
                     "--max-tokens", str(TOKENS)], port, "/ping", tmp / "paced-upstream.log")
    try:
        config = gateway_config(upstream.url, 4)
        config["endpoints"][ENDPOINT]["context_length"] = 2 * TOKENS
        (tmp / "jumpgate.yaml").write_text(yaml.safe_dump(config))
        gw = start_gateway(tmp, tmp / "jumpgate.yaml")
    except BaseException:
        upstream.stop()  # never leave the upstream process behind
        raise
    yield gw, upstream
    gw.stop()
    upstream.stop()


class Body:
    """An HTTP/1.1 response read with httptools (the chunked encoding undone)."""

    def __init__(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.done = False
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


def slow_read(port: int, request: bytes) -> Body:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the advertised window stays small
    sock.settimeout(60)  # bounds a hang only
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(request)
        got, reads = Body(), 0
        while not got.done:
            data = sock.recv(2048)
            assert data, "the gateway closed the connection before the end of the stream"
            got.parser.feed_data(data)
            reads += 1
            if reads % 8 == 0:
                time.sleep(0.002)  # the client dawdles so the socket fills; the verdict does not depend on it
        return got
    finally:
        sock.close()


def test_a_client_that_reads_slowly_gets_every_token_in_order(gateway: tuple[Proc, Proc]) -> None:
    gw, upstream = gateway
    body = chat_body(TOKENS)
    port = gw.port
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    got = slow_read(port, request)
    assert got.status == 200
    events = [line[6:] for line in bytes(got.body).split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(token_texts(TOKENS))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert httpx.get(upstream.url + "/_paced/stats").json()["streams_completed"] == 1
