"""Connections and shutdown on a real gateway process: slow clients are closed after the request head and body
timeouts while a long stream to a reading client lives on; the connection cap refuses in the documented shape;
streams still open at the drain deadline end with a shutting-down event, are charged, and leave no traceback."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from service.config.demo import SIMULATOR_CREDENTIALS
from tests.procs import Proc, poll, start_gateway, start_simulator

pytestmark = pytest.mark.e2e

# Timeouts scaled down from the defaults (10 s head, 30 s body, 5 s keep-alive) so the test is short; the stream
# below outlives all of them many times over.
SERVER = {"header_timeout_s": 1.0, "body_timeout_s": 1.5, "keepalive_timeout_s": 1.0, "max_connections": 40}


def config(runtime_url: str) -> dict[str, Any]:
    endpoint = {"endpoint_name": "cx-tgi", "schema": "tgi", "instance_type": "ml.g5.2xlarge",
                "context_length": 8192, "chat_template": "llama3"}
    return {"aws": {"region": "us-east-1", "runtime_url": runtime_url, "credentials": SIMULATOR_CREDENTIALS},
            "endpoints": {"tgi": endpoint}, "models": {"m": {"targets": [{"endpoint": "tgi"}]}},
            "server": SERVER, "resilience": {"drain_s": 2}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Path]]:
    tmp = tmp_path_factory.mktemp("connections")
    path = tmp / "cx.yaml"
    path.write_text(yaml.safe_dump(config("http://127.0.0.1:1")))
    sim = start_simulator(tmp, config=path)
    path.write_text(yaml.safe_dump(config(sim.url)))
    # 25 x the realistic latency: 0.5 s a token, so an answer of 8-48 tokens streams for 4-24 s
    httpx.post(sim.url + "/_sim/config", json={"latency": "realistic", "time_scale": 25.0}).raise_for_status()
    try:
        yield sim, path
    finally:
        sim.stop()


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=60)


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket timeout only bounds a hang)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def assert_refusal(raw: bytes, status: int, code: str) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), raw[:200]
    assert json.loads(body)["error"]["code"] == code


def test_slow_heads_and_bodies_are_closed_while_a_reading_stream_lives(stack: tuple[Proc, Path]) -> None:
    _, path = stack
    gw = start_gateway(path.parent, path)
    try:
        tokens: list[str] = []
        ended: list[str] = []

        def read_stream() -> None:  # several seconds, several times the longest timeout
            body = {"model": "m", "messages": [{"role": "user", "content": "a long story"}], "max_tokens": 700,
                    "stream": True, "temperature": 0}
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=120) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: {"):
                        tokens.append(line)
                    elif line:
                        ended.append(line)

        reader = threading.Thread(target=read_stream)
        reader.start()
        poll(lambda: len(tokens) > 2)
        idle, slow_head, slow_body = connect(gw.url), connect(gw.url), connect(gw.url)
        slow_head.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n")
        slow_body.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                          b"\r\nContent-Length: 100\r\n\r\n{\"model\"")
        assert_refusal(answer_of(idle), 408, "request_timeout")
        assert_refusal(answer_of(slow_head), 408, "request_timeout")
        assert_refusal(answer_of(slow_body), 408, "request_timeout")
        during = len(tokens)
        reader.join(timeout=120)
        assert ended == ["data: [DONE]"], ended
        assert len(tokens) > during > 2  # it kept streaming after the slow connections were closed
    finally:
        gw.stop()


def test_connections_beyond_the_cap_are_refused_with_503(stack: tuple[Proc, Path]) -> None:
    _, path = stack
    data = yaml.safe_load(path.read_text())
    data["server"] = {**SERVER, "max_connections": 5, "header_timeout_s": 60}
    capped = path.parent / "capped.yaml"
    capped.write_text(yaml.safe_dump(data))
    gw = start_gateway(path.parent, capped)
    held = [connect(gw.url) for _ in range(4)]  # with the health check's closed connection: 4 open, cap 5
    try:
        fifth = connect(gw.url)
        extra = connect(gw.url)
        assert_refusal(answer_of(extra), 503, "server_overloaded")
        fifth.close()
    finally:
        for sock in held:
            sock.close()
        gw.stop()


def test_streams_cut_at_the_drain_deadline_say_so_and_are_charged(stack: tuple[Proc, Path]) -> None:
    _, path = stack
    gw = start_gateway(path.parent, path)
    outcomes: list[list[str]] = []
    started = threading.Barrier(4)

    def stream() -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "a long story"}], "max_tokens": 1000,
                "stream": True, "temperature": 0}
        lines: list[str] = []
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=120) as resp:
            for i, line in enumerate(line for line in resp.iter_lines() if line):
                lines.append(line)
                if i == 2:
                    started.wait(timeout=60)
        outcomes.append(lines)

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait(timeout=60)
    gw.popen.send_signal(signal.SIGTERM)  # drain_s 2: tokens 0.5 s apart cannot finish in time
    for t in threads:
        t.join(timeout=120)
    assert gw.popen.wait(timeout=60) == 0
    assert len(outcomes) == 3
    for lines in outcomes:
        last = json.loads(lines[-1].removeprefix("data: "))
        assert last["error"]["type"] == "server_shutting_down" and "data: [DONE]" not in lines
    log = gw.output()
    assert "Traceback" not in log and "CancelledError" not in log
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"request"' in line]
    cut = [r for r in records if r.get("error") == "server_shutting_down"]
    assert len(cut) == 3 and all(r["cost_usd"] > 0 and r["completion_tokens"] > 0 for r in cut)
    gw.stop()


def test_requests_beyond_the_upstream_capacity_are_refused_at_once_not_queued(stack: tuple[Proc, Path]) -> None:
    """The upstream pool has no cap of its own: each endpoint's max_concurrency slots are the cap, and a request
    that finds them taken waits max_wait_s, then is refused with 429 + Retry-After and counted."""
    _, path = stack
    data = yaml.safe_load(path.read_text())
    data["endpoints"]["tgi"] |= {"max_concurrency": 3, "max_wait_s": 0.2}
    capped = path.parent / "slots.yaml"
    capped.write_text(yaml.safe_dump(data))
    gw = start_gateway(path.parent, capped)
    events: list[tuple[str, int]] = []  # in the order they happened
    lock = threading.Lock()

    def stream() -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "a long story"}], "max_tokens": 40,
                "stream": True, "temperature": 0}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=120) as resp:
            status, retry_after = resp.status_code, resp.headers.get("retry-after")
            for _ in resp.iter_lines():
                pass
        with lock:
            events.append(("refused" if status == 429 and retry_after else "streamed" if status == 200 else
                           f"other {status}", status))

    threads = [threading.Thread(target=stream) for _ in range(10)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        kinds = [kind for kind, _ in events]
        assert kinds.count("streamed") == 3 and kinds.count("refused") == 7, kinds
        assert kinds[:7] == ["refused"] * 7, "refusals come while the three streams still run, not after"
        text = httpx.get(gw.url + "/metrics").text
        assert 'jumpgate_requests_total{api="chat",endpoint="tgi",model="m",status="429"} 7.0' in text
    finally:
        gw.stop()
