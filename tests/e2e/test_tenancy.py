"""Tenancy end to end: two gateway processes sharing one Redis, budgets, Redis failure modes, and logs
that hold no prompt, completion or credential."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.config.demo import SIMULATOR_CREDENTIALS, demo_config_data
from tests.procs import Proc, free_port, start_gateway, start_simulator

pytestmark = pytest.mark.e2e

KEY_A, KEY_B = "sk-live-team-a-5f1e2d3c4b5a69788796", "sk-live-team-b-0a1b2c3d4e5f60718293"
KEY_C = "sk-live-team-c-99aa88bb77cc66dd55ee"
PROMPT = "PROMPT-SENTINEL-7d1f private words"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


SCRAPE_TOKEN = "prometheus-scrape-token"


def config(runtime_url: str, redis_url: str, failure_mode: str = "closed") -> dict[str, Any]:
    data = demo_config_data(runtime_url)
    data["auth"] = {"tenants": {
        "team-a": {"api_key_sha256": [sha(KEY_A)], "requests_per_minute": 10},
        "team-b": {"api_key_sha256": [sha(KEY_B)], "monthly_budget_usd": 1e-9},
        "team-c": {"api_key_sha256": [sha(KEY_C)]},
    }}
    data["rate_limits"] = {"backend": "redis", "redis_url": redis_url, "failure_mode": failure_mode}
    data["metrics"] = {"scrape_token_sha256": [sha(SCRAPE_TOKEN)]}
    return data


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: the test command installs Debian's redis-server")
        pytest.skip("redis-server is not installed (make test installs it)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


class Stack:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.sim = start_simulator(tmp)
        self.gateways = [self.gateway(f"gw{i}", config(self.sim.url, redis_url)) for i in range(2)]

    def gateway(self, name: str, data: dict[str, Any]) -> Proc:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return start_gateway(self.tmp, path)

    def stop(self) -> None:
        for proc in [*self.gateways, self.sim]:
            proc.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("tenancy"), redis_url)
    yield s
    s.stop()


def chat(url: str, key: str, content: str = "Hello", **kw: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "llama3-8b", "messages": [{"role": "user", "content": content}],
                            "max_tokens": 8, **kw})


def test_two_replicas_enforce_one_requests_per_minute_limit(stack: Stack) -> None:
    codes = [chat(stack.gateways[i % 2].url, KEY_A).status_code for i in range(16)]
    assert codes.count(200) == 10 and codes.count(429) == 6
    assert codes[:10] == [200] * 10  # the two replicas drew from one shared bucket
    limited = chat(stack.gateways[1].url, KEY_A)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "10 requests per minute" in limited.json()["error"]["message"]


def test_a_spent_budget_is_429_naming_the_budget_on_every_replica(stack: Stack) -> None:
    first = chat(stack.gateways[0].url, KEY_B)
    assert first.status_code == 200 and float(first.headers["x-jumpgate-cost-usd"]) > 0
    for gw in stack.gateways:
        resp = chat(gw.url, KEY_B)
        assert resp.status_code == 429
        error = resp.json()["error"]
        assert error["code"] == "budget_exceeded" and "monthly budget of $0.00" in error["message"]


def test_redis_unreachable_fails_closed_or_open_as_configured(stack: Stack) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    closed = stack.gateway("closed", config(stack.sim.url, dead, "closed"))
    opened = stack.gateway("open", config(stack.sim.url, dead, "open"))
    try:
        refused = chat(closed.url, KEY_A)
        assert refused.status_code == 503 and "rate limiter" in refused.json()["error"]["message"]
        assert chat(opened.url, KEY_A).status_code == 200
        for proc, mode in ((closed, "closed"), (opened, "open")):
            assert f"failure_mode {mode}" in proc.output_with(f"failure_mode {mode}")
            scrape = {"authorization": f"Bearer {SCRAPE_TOKEN}"}
            assert "jumpgate_limiter_errors_total 1.0" in httpx.get(proc.url + "/metrics", headers=scrape).text
    finally:
        closed.stop()
        opened.stop()


def test_logs_hold_no_prompt_completion_or_credential(stack: Stack) -> None:
    chat(stack.gateways[0].url, KEY_B, PROMPT)  # refused once the budget is spent, or served: logged either way
    ok = chat(stack.gateways[1].url, KEY_C, PROMPT, temperature=0)
    assert ok.status_code == 200
    completion = ok.json()["choices"][0]["message"]["content"].strip()
    stack.gateways[1].output_with(ok.headers["x-request-id"])  # written in batches, off the event loop
    logs = "".join(gw.output() for gw in stack.gateways)
    assert ok.headers["x-request-id"] in logs, "the last request was never logged"
    request_lines = [line for line in logs.splitlines() if '"message":"request"' in line]
    assert len(request_lines) >= 20 and all('"tenant":"team-' in line for line in request_lines)
    for secret in (PROMPT, "PROMPT-SENTINEL", completion, KEY_A, KEY_B, KEY_C,
                   SIMULATOR_CREDENTIALS["secret_access_key"]):
        assert secret not in logs, f"{secret[:12]}... leaked into the logs"
