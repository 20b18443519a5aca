"""Issue 13 end to end, on real processes: a client's deadline never harms other clients, every request is
charged for what it consumed, an endpoint that throttles is routed around, streams cut by the drain deadline say
so, and slow or malformed connections are refused in the documented shape while a reading stream lives on."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.config.demo import SIMULATOR_CREDENTIALS
from tests.procs import Proc, Sim, poll, start_gateway, start_simulator

pytestmark = pytest.mark.e2e

KEY_READ, KEY_DROP = "sk-reader-0123456789abcdef", "sk-dropper-0123456789abcdef"
SCRAPE = "scrape-token-hardening"


def tgi(name: str) -> dict[str, Any]:
    return {"endpoint_name": name, "schema": "tgi", "instance_type": "ml.g5.2xlarge", "context_length": 8192,
            "chat_template": "llama3", "max_concurrency": 64}


def config(runtime_url: str, *, auth: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "aws": {"region": "us-east-1", "runtime_url": runtime_url, "credentials": SIMULATOR_CREDENTIALS},
        "endpoints": {"slow": tgi("hd-slow"), "busy": tgi("hd-busy"), "calm": tgi("hd-calm")},
        "models": {"slow": {"targets": [{"endpoint": "slow"}]},
                   "storm": {"targets": [{"endpoint": "busy"}, {"endpoint": "calm"}]}},
        "resilience": {"drain_s": 2, "breaker": {"consecutive_failures": 3, "open_s": 3600, "min_calls": 5}},
    }
    if auth:
        sha = lambda k: hashlib.sha256(k.encode()).hexdigest()  # noqa: E731
        data["auth"] = {"tenants": {"reader": {"api_key_sha256": [sha(KEY_READ)], "tokens_per_minute": 300},
                                    "dropper": {"api_key_sha256": [sha(KEY_DROP)], "tokens_per_minute": 300}}}
        data["metrics"] = {"scrape_token_sha256": [sha(SCRAPE)]}
    return data


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        path = tmp / "hardening.yaml"
        path.write_text(yaml.safe_dump(config("http://127.0.0.1:1")))
        self.sim = start_simulator(tmp, config=path)
        self.gw = self.gateway("open", config(self.sim.url))

    def gateway(self, name: str, data: dict[str, Any]) -> Proc:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return start_gateway(self.tmp, path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("hardening"))
    yield s
    s.gw.stop()
    s.sim.stop()


@pytest.fixture
def sim(stack: Stack) -> Iterator[Sim]:
    with Sim.clean(stack.sim.url) as s:
        yield s
        s.http.post("/_sim/config", json={"latency": "zero"})


def chat(url: str, model: str, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = {"model": model, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 8, **kw}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def metric(url: str, prefix: str, headers: dict[str, str] | None = None) -> float:
    text = httpx.get(url + "/metrics", headers=headers or {}).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))



def test_short_client_deadlines_never_open_the_circuit_but_an_outage_does(stack: Stack, sim: Sim) -> None:
    sim.fault(endpoint="hd-slow", delay_s=0.5)
    for _ in range(6):
        resp = chat(stack.gw.url, "slow", headers={"x-jumpgate-timeout-s": "0.01"})
        assert resp.status_code == 504 and resp.json()["error"]["code"] == "deadline_exceeded"
    status = httpx.get(stack.gw.url + "/admin/status").json()["endpoints"]["slow"]
    assert status["circuit"] == "closed" and status["consecutive_failures"] == 0
    assert metric(stack.gw.url, 'jumpgate_upstream_errors_total{endpoint="slow"') == 0
    assert metric(stack.gw.url, 'jumpgate_abandoned_total{endpoint="slow",model="slow",reason="deadline"}') == 6
    sim.reset()
    assert chat(stack.gw.url, "slow").status_code == 200  # everyone else is served
    sim.fault(endpoint="hd-slow", error_rate=1.0, error_kind="unavailable")
    assert chat(stack.gw.url, "slow").status_code == 502  # three failed attempts: three failures in a row
    assert httpx.get(stack.gw.url + "/admin/status").json()["endpoints"]["slow"]["circuit"] == "open"
    assert chat(stack.gw.url, "slow").status_code == 503


async def _storm(url: str, count: int, concurrency: int) -> list[int]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)
        body = {"model": "storm", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}

        async def one() -> int:
            async with gate:
                return (await client.post("/v1/chat/completions", json=body)).status_code

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_an_endpoint_that_keeps_throttling_is_routed_around(stack: Stack, sim: Sim) -> None:
    sim.fault(endpoint="hd-busy", throttle_rate=1.0)
    assert asyncio.run(_storm(stack.gw.url, 200, 8)) == [200] * 200  # it has throttled for a while now
    before = len(sim.requests("hd-busy"))
    codes = asyncio.run(_storm(stack.gw.url, 1000, 8))
    touched = len(sim.requests("hd-busy")) - before
    assert codes == [200] * 1000
    assert touched < 100, f"{touched} of 1000 requests still went to the throttling endpoint first"
    streak = metric(stack.gw.url, 'jumpgate_endpoint_throttle_streak{endpoint="busy"}')
    assert streak >= 1
    sim.reset()  # the throttling stops: the endpoint takes its share again once its cooldown has passed
    poll(lambda: httpx.get(stack.gw.url + "/admin/status").json()["endpoints"]["busy"]["throttle_cooldown_s"] == 0,
         timeout_s=60)
    served = {chat(stack.gw.url, "storm").headers["x-jumpgate-endpoint"] for _ in range(40)}
    assert served == {"busy", "calm"}


def test_an_abandoned_stream_is_charged_like_a_finished_one(stack: Stack, sim: Sim) -> None:
    gw = stack.gateway("tenants", config(stack.sim.url, auth=True))
    # 20 ms a token: a client that leaves after 30 of 60 tokens leaves well before the stream's end
    sim.http.post("/_sim/config", json={"latency": "realistic", "time_scale": 1.0}).raise_for_status()
    try:
        body = {"model": "slow", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 60,
                "stream": True, "temperature": 0}

        def admitted(key: str, drop_after: int | None) -> int:
            for n in range(12):
                with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=60,
                                  headers={"authorization": f"Bearer {key}"}) as resp:
                    if resp.status_code == 429:
                        return n
                    assert resp.status_code == 200
                    lines = (line for line in resp.iter_lines() if line.startswith("data: {"))
                    for i, _ in enumerate(lines):
                        if drop_after is not None and i + 1 >= drop_after:
                            break
                if drop_after is not None:  # wait until the gateway has seen the drop and charged it
                    poll(lambda n=n: gw_metric('reason="disconnect"') >= n + 1)
            return 12

        def gw_metric(label: str) -> float:
            return metric(gw.url, f"jumpgate_abandoned_total{{endpoint=\"slow\",model=\"slow\",{label}",
                          headers={"authorization": f"Bearer {SCRAPE}"})

        reading = admitted(KEY_READ, None)
        dropping = admitted(KEY_DROP, 30)
        assert reading < 12, "the reading tenant reaches its tokens_per_minute limit"
        assert dropping <= reading + 1, f"dropping streams admitted {dropping}, reading {reading}"
        log = gw.output_with('"status": 499')
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"request"' in line]
        dropped = [r for r in lines if r.get("status") == 499]
        assert dropped and all(r["cost_usd"] > 0 and r["completion_tokens"] > 0 for r in dropped)
        assert {r["token_source"] for r in dropped} <= {"estimate", "tokenizer"}
    finally:
        gw.stop()
