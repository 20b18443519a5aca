"""A real Prometheus scrapes a real gateway in front of the simulator, loads deploy/prometheus/rules, and the
series and recording rules it computes are checked against the usage the OpenAI SDK received and the
prices GET /v1/models reports.

Traffic goes in two phases: a warm-up that creates every series, then Prometheus starts, then the measured
traffic. rate() and increase() only count what a counter gained between two of its samples, so each
series' first sample (which holds the warm-up) is the baseline and the measured traffic is what they see.
The cost rule is compared with the hand value within the bound of rate()'s extrapolation (raw_span_factor);
deploy/prometheus/rules_test.yml checks the same rules to the last digit on hand-written series.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai import OpenAI

from service.config.demo import DEMO_EMBEDDING_MODELS, DEMO_MODELS, demo_config_data
from tests.procs import ROOT, Proc, start_gateway, start_simulator
from tests.prom import PromAPI, PromProc, prometheus_binary, start_prometheus

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(prometheus_binary() is None and not os.environ.get("CI"),
                       reason="the prometheus binary is not installed (apt-get install prometheus; "
                              "`make test` installs it); in CI this test always runs"),
]

INTERVAL = 0.25  # scrape and rule evaluation interval, seconds
EXACT = ("llama3-8b", "llama3-8b-messages")  # backends that report token counts: tgi, openai
MESSAGES = [{"role": "user", "content": "Write one short line about the sea."}]
FAILING = "flan-t5-xl"  # gets one injected model error per phase
STREAMS = tuple(m for m in DEMO_MODELS if m != "flan-t5-xl")


@dataclass
class Usage:
    requests: int = 0
    failed: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})


@dataclass
class Run:
    """What the client saw, per model, by phase, and what Prometheus held before any traffic."""

    warm: dict[str, Usage]
    measured: dict[str, Usage]
    sources: dict[str, str]               # model -> x-jumpgate-token-source
    endpoints: dict[str, dict[str, Any]]  # endpoint id -> its /v1/models entry
    before_traffic: list[str]             # jumpgate_tokens_total lines of /metrics before the first request
    settled: float = 0.0                  # wall time when Prometheus held the client's final counts


def chat(client: OpenAI, model: str, usage: Usage, sources: dict[str, str], *, stream: bool, max_tokens: int) -> None:
    kw: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0}
    if stream:
        chunks = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
        got = [c.usage for c in chunks if c.usage is not None]
        assert len(got) == 1, f"{model}: one usage chunk expected"
        u = got[0]
    else:
        raw = client.chat.completions.with_raw_response.create(**kw)
        sources[model] = raw.headers["x-jumpgate-token-source"]
        u = raw.parse().usage
        assert u is not None
    usage.requests += 1
    usage.tokens["prompt"] += u.prompt_tokens
    usage.tokens["completion"] += u.completion_tokens


def fail_once(client: OpenAI, sim_url: str, usage: Usage) -> None:
    """One request the container fails. It held the endpoint, so its prompt is charged (the same count as the
    prompt of a request that succeeds with the same messages, measured first), and no completion."""
    before = usage.tokens["prompt"]
    chat(client, FAILING, usage, {}, stream=False, max_tokens=4)
    prompt = usage.tokens["prompt"] - before
    fault = {"endpoint": "jumpgate-demo-flan-t5-xl", "error_next": 1, "error_kind": "model", "error_status": 500}
    httpx.post(sim_url + "/_sim/faults", json=fault).raise_for_status()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=FAILING, messages=MESSAGES, max_tokens=4, temperature=0)
    usage.requests += 1
    usage.failed += 1
    usage.tokens["prompt"] += prompt


def counts_seen(prom: PromAPI) -> dict[tuple[str, ...], float]:
    seen = prom.values("sum by (model, direction) (jumpgate_tokens_total)", ("model", "direction"))
    return seen | prom.values("sum(jumpgate_requests_total)", ("requests",))


def wait_for_counts(prom: PromAPI, *phases: dict[str, Usage]) -> float:
    """Wait until one scrape holds every token and request the client saw (the 404 included); returns the
    wall time then."""
    want = {(m, d): float(sum(p[m].tokens[d] for p in phases)) for m in phases[0] for d in ("prompt", "completion")}
    want[("",)] = float(sum(u.requests for p in phases for u in p.values()) + 1)
    deadline = time.monotonic() + 20
    while (seen := counts_seen(prom)) != want and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen == want  # counters only grow: once past the client's total, never equal again
    return time.time()


def generation_only(data: dict[str, Any]) -> dict[str, Any]:
    """The demo config without its embedding model: this run measures the text generation series (the
    embedding series are checked in tests/unit/test_embeddings.py and tests/e2e/test_embeddings.py)."""
    for name, endpoint in DEMO_EMBEDDING_MODELS.items():
        del data["models"][name], data["endpoints"][endpoint]
    return data


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromAPI, Run]]:
    tmp = tmp_path_factory.mktemp("prometheus")
    procs: list[Proc] = []
    try:
        sim = start_simulator(tmp)
        procs.append(sim)
        config = tmp / "jumpgate.yaml"
        config.write_text(yaml.safe_dump(generation_only(demo_config_data(sim.url))))
        gw = start_gateway(tmp, config)
        procs.append(gw)
        exposition = httpx.get(gw.url + "/metrics").raise_for_status().text
        before = [line for line in exposition.splitlines() if line.startswith("jumpgate_tokens_total{")]
        models = httpx.get(gw.url + "/v1/models").raise_for_status().json()["data"]
        endpoints = {ep["id"]: ep for m in models for ep in m["endpoints"]}
        with OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=30) as client:
            sources: dict[str, str] = {}
            warm = {m: Usage() for m in DEMO_MODELS}
            for m in DEMO_MODELS:
                chat(client, m, warm[m], sources, stream=False, max_tokens=4)
                if m in STREAMS:
                    chat(client, m, warm[m], sources, stream=True, max_tokens=4)
            fail_once(client, sim.url, warm[FAILING])
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="no-such-model", messages=MESSAGES)
            # Prometheus starts after the warm-up: its first scrape holds all of it, so the warm-up is
            # every series' first sample and the measured traffic is exactly what rate() sees
            prom_proc: PromProc = start_prometheus(tmp, [f"127.0.0.1:{gw.port}"],
                                                   interval=f"{int(INTERVAL * 1000)}ms")
            procs.append(prom_proc)
            prom = PromAPI(prom_proc.url)
            wait_for_counts(prom, warm)
            measured = {m: Usage() for m in DEMO_MODELS}
            for m in DEMO_MODELS:
                for i in range(3):
                    chat(client, m, measured[m], sources, stream=False, max_tokens=16 + 8 * i)
                    if m in STREAMS:
                        chat(client, m, measured[m], sources, stream=True, max_tokens=24 + 8 * i)
            fail_once(client, sim.url, measured[FAILING])
            throttle = {"endpoint": "jumpgate-demo-neuron-llama2-13b", "throttle_next": 1}
            httpx.post(sim.url + "/_sim/faults", json=throttle).raise_for_status()  # retried: a retry series
            chat(client, "llama2-13b-neuron", measured["llama2-13b-neuron"], sources, stream=False, max_tokens=8)
            settled = wait_for_counts(prom, warm, measured)
        yield prom, Run(warm, measured, sources, endpoints, before, settled)
        prom.close()
    finally:
        for p in reversed(procs):
            p.stop()


def endpoint_of(model: str) -> str:
    return DEMO_MODELS[model]


def test_tokens_total_equals_the_usage_the_client_received(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    for model in EXACT:
        assert r.sources[model] == "backend", f"{model} should report its own counts"
    got = prom.values("sum by (model, endpoint, direction) (jumpgate_tokens_total)", ("model", "endpoint", "direction"))
    want = {(m, endpoint_of(m), d): float(r.warm[m].tokens[d] + r.measured[m].tokens[d])
            for m in DEMO_MODELS for d in ("prompt", "completion")}
    assert got == want
    # a model's requests may be counted differently (e.g. LMI: backend counts, estimated when streaming);
    # those whose backend reports counts are counted by it, streaming and not
    sources = prom.values("count by (model, source) (jumpgate_tokens_total)", ("model", "source"))
    assert {src for _, src in sources} <= {"backend", "tokenizer", "estimate"}
    assert {src for m, src in sources if m in EXACT} == {"backend"}


def test_request_series_have_the_contract_labels(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    # series that only exist at zero were created up front for every configured (model, endpoint, api)
    got = {k: v for k, v in prom.values("jumpgate_requests_total", ("model", "endpoint", "api", "status")).items()
           if v}
    want = {(m, endpoint_of(m), "chat", "200"): float(r.warm[m].requests + r.measured[m].requests
                                                      - r.warm[m].failed - r.measured[m].failed)
            for m in DEMO_MODELS}
    want[(FAILING, endpoint_of(FAILING), "chat", "502")] = 2.0
    want[("unknown", "none", "chat", "404")] = 1.0
    assert got == want
    errors = prom.values("jumpgate_upstream_errors_total", ("endpoint", "error"))
    assert errors == {(endpoint_of(FAILING), "model_error"): 2.0, ("llama2-13b-inf2", "throttled"): 1.0}
    assert prom.values("jumpgate_retries_total", ("endpoint", "reason")) == {("llama2-13b-inf2", "throttled"): 1.0}
    streams = prom.values("sum by (model, endpoint, stream) (jumpgate_request_duration_seconds_count)",
                          ("model", "endpoint", "stream"))
    assert {k for k, v in streams.items() if k[2] == "true"} == {(m, endpoint_of(m), "true") for m in STREAMS}


def test_cost_and_price_series_have_the_contract_labels(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    cost = prom.values("jumpgate_cost_usd_total", ("model", "endpoint", "tenant"))
    assert set(cost) == {(m, endpoint_of(m), "anonymous") for m in DEMO_MODELS}
    assert all(v > 0 for v in cost.values())
    price = prom.values("jumpgate_endpoint_price_per_hour_usd", ("endpoint", "instance_type", "accelerator"))
    assert price == {(eid, ep["instance_type"], ep["accelerator"]): ep["price_per_hour_usd"]
                     for eid, ep in r.endpoints.items()}
    ttft = prom.values("sum by (endpoint, accelerator) (jumpgate_time_to_first_token_seconds_count)",
                       ("endpoint", "accelerator"))
    assert set(ttft) == {(endpoint_of(m), r.endpoints[endpoint_of(m)]["accelerator"]) for m in STREAMS}


def test_token_series_exist_at_zero_before_traffic(run: tuple[PromAPI, Run]) -> None:
    series = {(re.search(r'model="([^"]*)"', line)[1], re.search(r'direction="([^"]*)"', line)[1])  # type: ignore[index]
              for line in run[1].before_traffic}
    assert series == {(m, d) for m in DEMO_MODELS for d in ("prompt", "completion")}


def raw_span_factor(prom: PromAPI, selector: str, at: float) -> float:
    """The most rate() can inflate an increase by, for the series of `selector` at time `at`.

    rate() extrapolates the increase between a series' first and last sample in the window toward the
    window's edges, by at most 1.1 average sample intervals at each end (Prometheus'
    extrapolatedRate). Returns max over the series of (span + 2.2 x mean interval) / span.
    """
    body = prom.http.get("/api/v1/query", params={"query": f"{selector}[1h]", "time": at}).json()
    factors = []
    for series in body["data"]["result"]:
        ts = [float(t) for t, _ in series["values"]]
        span = ts[-1] - ts[0]
        factors.append((span + 2.2 * span / (len(ts) - 1)) / span)
    assert factors, f"no samples of {selector}"
    return max(factors)


def rule_after_traffic(prom: PromAPI, r: Run, rule: str, key: str) -> dict[str, tuple[float, float]]:
    """The rule's values, from an evaluation that saw the final counts, with enough samples since the warm-up
    that extrapolation stays under 5%: {key label: (timestamp, value)}."""
    deadline = time.monotonic() + 25
    while True:
        got = {s["metric"][key]: (float(s["value"][0]), float(s["value"][1])) for s in prom.query(rule)}
        fresh = got and min(ts for ts, _ in got.values()) > r.settled
        if fresh and raw_span_factor(prom, "jumpgate_tokens_total", min(ts for ts, _ in got.values())) < 1.05:
            return got
        assert time.monotonic() < deadline, f"{rule}: no fresh evaluation; last {got}"
        time.sleep(INTERVAL)


def check_cost(prom: PromAPI, got: tuple[float, float], selector: str, price_per_hour: float, tokens: int,
               window_hours: float) -> None:
    """Hand value: the hourly price times the window's hours over the measured tokens, per million."""
    at, value = got
    by_hand = price_per_hour * window_hours / (tokens / 1e6)
    inflation = raw_span_factor(prom, selector, at)
    assert by_hand / inflation <= value <= by_hand * (1 + 1e-9), f"{selector}: rule {value}, by hand {by_hand}"


def test_cost_per_million_tokens_rule_matches_the_hand_computation(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    hourly = rule_after_traffic(prom, r, "endpoint:jumpgate_cost_per_1m_tokens_usd:1h", "endpoint")
    daily = rule_after_traffic(prom, r, "endpoint:jumpgate_cost_per_1m_tokens_usd:1d", "endpoint")
    assert set(hourly) == set(daily) == {endpoint_of(m) for m in DEMO_MODELS}
    for model in EXACT:
        eid = endpoint_of(model)
        tokens = sum(r.measured[model].tokens.values())
        price = r.endpoints[eid]["price_per_hour_usd"]
        selector = f'jumpgate_tokens_total{{endpoint="{eid}"}}'
        check_cost(prom, hourly[eid], selector, price, tokens, 1)
        check_cost(prom, daily[eid], selector, price, tokens, 24)
    labels = {s["metric"]["endpoint"]: s["metric"] for s in prom.query("endpoint:jumpgate_cost_per_1m_tokens_usd:1h")}
    for eid, ep in r.endpoints.items():
        assert (labels[eid]["accelerator"], labels[eid]["instance_type"]) == (ep["accelerator"], ep["instance_type"])


def test_cost_per_million_tokens_by_accelerator(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    got = rule_after_traffic(prom, r, "accelerator:jumpgate_cost_per_1m_tokens_usd:1h", "accelerator")
    assert set(got) == {"gpu", "inf2"}
    for acc, value in got.items():
        eids = {eid for eid, ep in r.endpoints.items() if ep["accelerator"] == acc}
        price = sum(r.endpoints[eid]["price_per_hour_usd"] for eid in eids)
        tokens = sum(sum(r.measured[m].tokens.values()) for m in DEMO_MODELS if endpoint_of(m) in eids)
        selector = f'jumpgate_tokens_total{{endpoint=~"{"|".join(sorted(eids))}"}}'
        check_cost(prom, value, selector, price, tokens, 1)


def test_latency_error_and_throughput_rules(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    rule_after_traffic(prom, r, "endpoint:jumpgate_cost_per_1m_tokens_usd:1h", "endpoint")  # rules saw the traffic
    for q in ("p50", "p99"):
        ttft = prom.values(f"accelerator:jumpgate_time_to_first_token_seconds:{q}_5m", ("accelerator",))
        assert set(ttft) == {("gpu",), ("inf2",)} and all(v > 0 for v in ttft.values())
        latency = prom.values(f"model_endpoint:jumpgate_request_duration_seconds:{q}_5m", ("model", "endpoint"))
        assert set(latency) == {(m, endpoint_of(m)) for m in DEMO_MODELS}
    errors = prom.values("endpoint:jumpgate_requests_errors:ratio_rate5m", ("endpoint",))
    # endpoint="none" (the 404) had no traffic after its first sample: no ratio rather than 0/0
    assert errors.keys() == {(endpoint_of(m),) for m in DEMO_MODELS}
    assert errors.pop((endpoint_of(FAILING),)) > 0
    assert set(errors.values()) == {0.0}
    rates = prom.values("endpoint_direction:jumpgate_tokens:rate5m", ("endpoint", "direction", "accelerator"))
    assert set(rates) == {(endpoint_of(m), d, r.endpoints[endpoint_of(m)]["accelerator"])
                          for m in DEMO_MODELS for d in ("prompt", "completion")}
    assert all(v > 0 for v in rates.values())


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads((ROOT / "deploy" / "grafana" / "jumpgate.json").read_text())
    panels = [p for row in board["panels"] for p in [row, *row.get("panels", [])]]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$model": ".*", "$endpoint": ".*",
                     "$accelerator": ".*"}
#: panels of events this traffic does not cause: their queries must run, but may return nothing
MAY_BE_EMPTY = {"Fallbacks and rejections": "fallbacks", "Idle endpoints (paid, no tokens in 1h)": "idle"}


def test_every_dashboard_query_runs_and_the_cost_panels_have_data(run: tuple[PromAPI, Run]) -> None:
    prom, r = run
    rule_after_traffic(prom, r, "endpoint:jumpgate_cost_per_1m_tokens_usd:1h", "endpoint")
    empty = []
    for title, expr in dashboard_queries():
        real = re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES[f"${m.group(1)}"], expr)
        if not prom.query(real) and MAY_BE_EMPTY.get(title, "") not in expr:
            empty.append((title, expr))
    assert empty == []


def test_deploy_rule_files_are_loaded(run: tuple[PromAPI, Run]) -> None:
    prom, _ = run
    groups = prom.http.get("/api/v1/rules").json()["data"]["groups"]
    loaded = {Path(g["file"]).name for g in groups}
    assert loaded == {"recording.yml", "alerts.yml"}
    unhealthy = [(rule["name"], rule.get("lastError")) for g in groups for rule in g["rules"]
                 if rule.get("health") == "err"]
    assert unhealthy == []
