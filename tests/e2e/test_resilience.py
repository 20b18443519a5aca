"""Routing and resilience end to end: real simulator and gateway processes, the simulator's fault switches."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.config.demo import SIMULATOR_CREDENTIALS
from tests.e2e.conftest import Sim
from tests.procs import Proc, poll, start_gateway, start_simulator

pytestmark = pytest.mark.e2e


def tgi(name: str, **kw: Any) -> dict[str, Any]:
    return {"endpoint_name": name, "schema": "tgi", "instance_type": "ml.g5.2xlarge", "context_length": 8192,
            "chat_template": "llama3", **kw}


def lmi(name: str) -> dict[str, Any]:
    return {"endpoint_name": name, "schema": "lmi", "instance_type": "ml.g5.2xlarge", "context_length": 8192}


def config(runtime_url: str, shadow_log: Path) -> dict[str, Any]:
    return {
        "aws": {"region": "us-east-1", "runtime_url": runtime_url, "credentials": SIMULATOR_CREDENTIALS},
        "endpoints": {
            "gpu-a": tgi("rz-tgi-a"), "gpu-b": tgi("rz-tgi-b"),
            "flaky": tgi("rz-tgi-flaky"), "steady": tgi("rz-tgi-steady"),
            "inf2": {"endpoint_name": "rz-neuron", "schema": "neuron", "instance_type": "ml.inf2.xlarge",
                     "context_length": 2048, "max_concurrency": 4, "max_wait_s": 20, "chat_template": "llama2"},
            "gpu-big": tgi("rz-tgi-big"),
            "primary": lmi("rz-lmi-primary"), "shadow": lmi("rz-lmi-shadow"),
            "swap-a": tgi("rz-tgi-swap-a"), "swap-b": tgi("rz-tgi-swap-b"),
        },
        "models": {
            "storm": {"targets": [{"endpoint": "gpu-a"}, {"endpoint": "gpu-b"}]},
            "failing": {"targets": [{"endpoint": "flaky", "weight": 1000}, {"endpoint": "steady", "weight": 1}]},
            "mixed": {"targets": [{"endpoint": "inf2", "weight": 1000}, {"endpoint": "gpu-big", "weight": 1}]},
            "neuron-only": {"targets": [{"endpoint": "inf2"}]},
            "shadowed": {"targets": [{"endpoint": "primary"}], "shadow": {"endpoint": "shadow", "sample_rate": 1.0}},
            "swap": {"targets": [{"endpoint": "swap-a", "weight": 1}, {"endpoint": "swap-b", "weight": 0}]},
        },
        "resilience": {"drain_s": 20, "breaker": {"consecutive_failures": 3, "open_s": 1.0, "min_calls": 5}},
        "shadow_log": {"path": str(shadow_log), "include_prompts": False},
    }


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.shadow_log = tmp / "shadow.jsonl"
        self.config_path = tmp / "resilience.yaml"
        # the simulator learns the endpoint names from the config; its URL is patched in afterwards
        self.config_path.write_text(yaml.safe_dump(config("http://127.0.0.1:1", self.shadow_log)))
        self.sim = start_simulator(tmp, config=self.config_path)
        self.data = config(self.sim.url, self.shadow_log)
        self.config_path.write_text(yaml.safe_dump(self.data))
        self.gw = start_gateway(tmp, self.config_path)

    def extra_gateway(self, name: str, data: dict[str, Any] | None = None) -> tuple[Proc, Path]:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data or self.data))
        return start_gateway(self.tmp, path), path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("resilience"))
    yield s
    s.gw.stop()
    s.sim.stop()


@pytest.fixture
def sim(stack: Stack) -> Iterator[Sim]:
    with Sim.clean(stack.sim.url) as s:
        yield s
        s.http.post("/_sim/config", json={"latency": "zero"})


def chat(url: str, model: str, content: str = "Hello there", **kw: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=60,
                      json={"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8,
                            **kw})


async def many(url: str, model: str, count: int, **kw: Any) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, **kw}
        return list(await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(count))))


def metric(url: str, prefix: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(prefix):
            total += float(line.split()[-1])
    return total


def test_throttling_storm_shifts_traffic_to_the_sibling(stack: Stack, sim: Sim) -> None:
    sim.fault(endpoint="rz-tgi-a", throttle_rate=1.0)
    responses = asyncio.run(many(stack.gw.url, "storm", 40))
    assert [r.status_code for r in responses] == [200] * 40
    assert {r.headers["x-jumpgate-endpoint"] for r in responses} == {"gpu-b"}
    assert metric(stack.gw.url, 'jumpgate_fallbacks_total{from_endpoint="gpu-a",model="storm",to_endpoint="gpu-b"}') > 0


def test_a_failing_endpoint_opens_its_circuit_and_is_used_after_recovery(stack: Stack, sim: Sim) -> None:
    # open_s far longer than the test: the circuit cannot close by itself while the endpoint still fails, however
    # slow the machine. Recovery is then let in by a reload that shortens open_s (the breaker keeps its state).
    data = json.loads(json.dumps(stack.data))
    data["resilience"]["breaker"]["open_s"] = 3600
    gw, path = stack.extra_gateway("breaker", data)
    try:
        sim.fault(endpoint="rz-tgi-flaky", error_rate=1.0, error_kind="unavailable")
        for _ in range(20):
            resp = chat(gw.url, "failing")
            assert resp.status_code == 200 and resp.headers["x-jumpgate-endpoint"] == "steady"
        assert len(sim.requests("rz-tgi-flaky")) == 3  # consecutive_failures, then the circuit is open
        assert httpx.get(gw.url + "/admin/status").json()["endpoints"]["flaky"]["circuit"] == "open"
        sim.http.delete("/_sim/faults").raise_for_status()
        data["resilience"]["breaker"]["open_s"] = 0.001
        path.write_text(yaml.safe_dump(data))
        gw.popen.send_signal(signal.SIGHUP)
        poll(lambda: httpx.get(gw.url + "/admin/status").json()["config"]["reloads"] == 1)
        served = {chat(gw.url, "failing").headers["x-jumpgate-endpoint"] for _ in range(5)}
        assert "flaky" in served
        assert httpx.get(gw.url + "/admin/status").json()["endpoints"]["flaky"]["circuit"] == "closed"
    finally:
        gw.stop()



def refuses_connections(url: str) -> bool:
    try:
        httpx.get(url + "/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.RemoteProtocolError:
        # accepted just before the listener closed, then closed unanswered by the shutdown (a race the signal
        # leaves open, seen once on a busy machine): not a refusal yet, so the poll asks again
        return False
    return False


def test_connection_refused_opens_the_circuit_then_503_with_retry_after(stack: Stack) -> None:
    data = {**stack.data, "aws": {**stack.data["aws"], "runtime_url": "http://127.0.0.1:9"}}
    gw, _ = stack.extra_gateway("refused", data)
    try:
        first = chat(gw.url, "neuron-only")
        assert first.status_code == 502 and first.json()["error"]["code"] == "upstream_unavailable"
        # its three attempts were three consecutive failures: the circuit is open from the next request on
        resp = chat(gw.url, "neuron-only")
        assert resp.status_code == 503 and int(resp.headers["retry-after"]) >= 1
        assert "circuit is open" in resp.json()["error"]["message"]
    finally:
        gw.stop()


def test_a_prompt_over_the_inf2_budget_goes_to_the_gpu(stack: Stack, sim: Sim) -> None:
    long_prompt = "word " * 2000  # about 2,500 tokens by the estimate: over 2048 with max_tokens
    for _ in range(5):
        resp = chat(stack.gw.url, "mixed", long_prompt, max_tokens=100)
        assert resp.status_code == 200 and resp.headers["x-jumpgate-endpoint"] == "gpu-big"
    assert sim.requests("rz-neuron") == []
    assert chat(stack.gw.url, "mixed", "short").headers["x-jumpgate-endpoint"] == "inf2"
    only = chat(stack.gw.url, "neuron-only", long_prompt, max_tokens=100)
    assert only.status_code == 400
    message = only.json()["error"]["message"]
    assert "2048-token context budget" in message and "max_tokens (100)" in message
    counted = re.search(r"prompt \((\d+) tokens", message)
    assert counted and int(counted[1]) > 2000


def test_max_concurrency_bounds_the_endpoint_under_64_clients(stack: Stack, sim: Sim) -> None:
    sim.http.post("/_sim/config", json={"latency": "realistic", "time_scale": 0.2}).raise_for_status()
    before = sim.http.get("/_sim/stats").json()["rz-neuron"]["peak_concurrency"]
    responses = asyncio.run(many(stack.gw.url, "neuron-only", 64))
    assert [r.status_code for r in responses] == [200] * 64
    peak = sim.http.get("/_sim/stats").json()["rz-neuron"]["peak_concurrency"]
    assert max(before, 2) <= peak <= 4 or peak == 4


def test_sigterm_drains_streams_refuses_new_connections_and_exits_zero(stack: Stack, sim: Sim) -> None:
    sim.http.post("/_sim/config", json={"latency": "realistic", "time_scale": 1.0}).raise_for_status()
    gw, _ = stack.extra_gateway("sigterm")
    started = threading.Barrier(51)
    results: list[str] = []

    def stream() -> None:
        body = {"model": "storm", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 60, "stream": True,
                "temperature": 0}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=60) as resp:
            lines = resp.iter_lines()
            first = next(lines)
            started.wait(timeout=30)
            rest = [line for line in lines if line]
        results.append(([first, *rest])[-1])

    threads = [threading.Thread(target=stream) for _ in range(50)]
    for t in threads:
        t.start()
    started.wait(timeout=30)
    gw.popen.send_signal(signal.SIGTERM)
    poll(lambda: refuses_connections(gw.url))  # new connections are refused while the streams drain
    for t in threads:
        t.join(timeout=60)
    assert results == ["data: [DONE]"] * 50
    assert gw.popen.wait(timeout=30) == 0
    gw.stop()


def test_sighup_applies_a_new_weight_without_failures_and_refuses_a_broken_file(stack: Stack, sim: Sim) -> None:
    gw, path = stack.extra_gateway("sighup")
    failures: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            code = chat(gw.url, "swap").status_code
            if code != 200:
                failures.append(code)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        assert {chat(gw.url, "swap").headers["x-jumpgate-endpoint"] for _ in range(5)} == {"swap-a"}
        data = json.loads(json.dumps(stack.data))
        data["models"]["swap"]["targets"] = [{"endpoint": "swap-a", "weight": 0}, {"endpoint": "swap-b", "weight": 1}]
        path.write_text(yaml.safe_dump(data))
        gw.popen.send_signal(signal.SIGHUP)
        poll(lambda: metric(gw.url, 'jumpgate_config_reloads_total{result="applied"}') == 1)
        assert {chat(gw.url, "swap").headers["x-jumpgate-endpoint"] for _ in range(5)} == {"swap-b"}
        path.write_text("endpoints: [this is: not valid")
        gw.popen.send_signal(signal.SIGHUP)
        poll(lambda: metric(gw.url, 'jumpgate_config_reloads_total{result="refused"}') == 1)
        assert {chat(gw.url, "swap").headers["x-jumpgate-endpoint"] for _ in range(5)} == {"swap-b"}
    finally:
        stop.set()
        worker.join(timeout=30)
        gw.stop()
    assert failures == []
    assert "config reload refused" in gw.output_with("config reload refused")


def test_shadow_gets_every_request_without_slowing_the_client(stack: Stack, sim: Sim) -> None:
    # The shadow endpoint holds every call until released: the clients are answered while all three shadow
    # calls are still in flight, which is "never delayed" without a clock deciding it.
    sim.fault(endpoint="rz-lmi-shadow", hold=True)
    stack.shadow_log.unlink(missing_ok=True)
    ids = []
    for i in range(3):
        resp = chat(stack.gw.url, "shadowed", f"secret prompt {i}", temperature=0)
        assert resp.status_code == 200
        ids.append(resp.headers["x-request-id"])
    poll(lambda: len(sim.requests("rz-lmi-shadow")) == 3)
    assert not stack.shadow_log.exists() or stack.shadow_log.read_text() == ""
    sim.fault(endpoint="rz-lmi-shadow", hold=False)
    poll(lambda: stack.shadow_log.exists() and len(stack.shadow_log.read_text().splitlines()) == 3)
    entries = [json.loads(line) for line in stack.shadow_log.read_text().splitlines()]
    assert sorted(e["request_id"] for e in entries) == sorted(ids)
    for e in entries:
        assert e["primary"]["endpoint"] == "primary" and e["primary"]["texts"][0]
        assert e["shadow"]["endpoint"] == "shadow" and e["shadow"]["texts"][0]
        assert e["shadow"]["latency_s"] > 0 and e["primary"]["usage"]["source"] == "backend"
        assert "prompt" not in e
    assert "secret prompt" not in stack.shadow_log.read_text()
    assert metric(stack.gw.url, 'jumpgate_shadow_cost_usd_total{endpoint="shadow",model="shadowed"}') > 0
