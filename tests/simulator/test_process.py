"""The simulator as a real process: ``python -m service.simulator`` under uvicorn on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.simulator.conftest import payload, sign, sse_events

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "jumpgate.yaml"
    config.write_text(yaml.safe_dump({"endpoints": {"g": {"endpoint_name": "proc-tgi", "schema": "tgi",
                                                          "instance_type": "ml.g5.2xlarge"}}}))
    port = _free_port()
    log = (tmp_path / "sim.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "service.simulator", "--port", str(port), "--latency", "zero",
                             "--config", str(config)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "sim.log").read_text()
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.mark.e2e
def test_real_process_serves_config_endpoints_and_streams(server: str) -> None:
    path = "/endpoints/proc-tgi/invocations-response-stream"
    body = orjson.dumps({"inputs": "Hello", "parameters": {"max_new_tokens": 6}, "stream": True})
    headers = sign(path, body, {"Content-Type": "application/json", "X-Amzn-SageMaker-Accept": "text/event-stream"},
                   base=server)
    resp = httpx.post(server + path, content=body, headers=headers, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.amazon.eventstream"
    events = sse_events(payload(resp.content))
    assert len(events) == 6 and events[-1]["generated_text"].startswith("Hello ")
    demo = "/endpoints/jumpgate-demo-tgi-llama3-8b/invocations"
    missing = httpx.post(server + demo, content=b"{}", headers=sign(demo, b"{}", base=server), timeout=10)
    assert missing.status_code == 400  # only the config's endpoints are simulated
    assert httpx.get(server + "/_sim/stats", timeout=10).json()["proc-tgi"]["streams_completed"] == 1
