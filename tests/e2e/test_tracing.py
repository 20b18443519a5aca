"""OpenTelemetry end to end: a real gateway process exports over OTLP/HTTP protobuf to a receiver decoding the
real protobuf; the span tree, the GenAI attributes, sampling and the propagation of a client's traceparent."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.config.demo import demo_config_data
from tests.otlp import Receiver, Span, otlp_receiver
from tests.procs import Proc, Sim, start_gateway, start_simulator

pytestmark = pytest.mark.e2e
PROMPT = "TRACE-SENTINEL a private question"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}  # the batch processor exports every 50 ms (default 5 s)


class Stack:
    def __init__(self, tmp: Path, receiver: Receiver) -> None:
        self.tmp, self.receiver = tmp, receiver
        self.sim = start_simulator(tmp)
        self.gw = self.gateway("traced", 1.0)

    def gateway(self, name: str, sample_rate: float) -> Proc:
        data = demo_config_data(self.sim.url)
        data["tracing"] = {"otlp_endpoint": self.receiver.url, "sample_rate": sample_rate,
                           "service_name": "jumpgate-e2e"}
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return start_gateway(self.tmp, path, env=FAST_EXPORT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with otlp_receiver() as receiver:
        s = Stack(tmp_path_factory.mktemp("tracing"), receiver)
        try:
            yield s
        finally:
            s.gw.stop()
            s.sim.stop()


@pytest.fixture
def sim(stack: Stack) -> Iterator[Sim]:
    with Sim.clean(stack.sim.url) as s:
        yield s


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def chat(url: str, header: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"traceparent": header} if header else {}
    body = {"model": "llama3-8b", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8, **kw}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def spans_of(receiver: Receiver, trace_id: str, count: int) -> list[Span]:
    """The trace's spans once `count` of them arrived (the deadline only bounds a hang)."""
    deadline = time.monotonic() + 30
    while True:
        got = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def one(spans: list[Span], where: Callable[[Span], bool]) -> Span:
    (span,) = [s for s in spans if where(s)]
    return span


def test_a_request_is_a_server_span_under_the_clients_with_a_client_span_per_attempt(stack: Stack, sim: Sim) -> None:
    header, trace_id, client_span = traceparent()
    sim.fault(endpoint="jumpgate-demo-tgi-llama3-8b", error_next=1, error_kind="unavailable")
    resp = chat(stack.gw.url, header)
    assert resp.status_code == 200 and resp.headers["x-jumpgate-attempts"] == "2"
    spans = spans_of(stack.receiver, trace_id, 3)
    server = one(spans, lambda s: s.kind == "SPAN_KIND_SERVER")
    attempts = sorted((s for s in spans if s.kind == "SPAN_KIND_CLIENT"),
                      key=lambda s: s.attributes["jumpgate.attempt"])
    assert server.parent_span_id == client_span and server.name == "chat llama3-8b"
    assert [a.parent_span_id for a in attempts] == [server.span_id] * 2  # the retry is a sibling
    assert [a.attributes["jumpgate.attempt"] for a in attempts] == [1, 2]
    assert attempts[0].attributes["error.type"] == "upstream_unavailable" and "error.type" not in attempts[1].attributes
    usage = resp.json()["usage"]
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "llama3-8b"
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert a["gen_ai.response.finish_reasons"] == [resp.json()["choices"][0]["finish_reason"]]
    assert a["jumpgate.endpoint"] == "llama3-8b-g5" and a["jumpgate.cost_usd"] > 0
    assert a["jumpgate.token_source"] == "backend" and a["http.response.status_code"] == 200
    c = attempts[1].attributes
    assert c["gen_ai.provider.name"] == "aws.sagemaker" and c["server.address"] == "127.0.0.1"
    assert c["jumpgate.schema"] == "tgi" and c["jumpgate.region"] == "us-east-1"
    assert server.resource["service.name"] == "jumpgate-e2e"
    assert PROMPT not in json.dumps([s.attributes for s in spans]) + json.dumps([s.events for s in spans])
    line = next(json.loads(x) for x in stack.gw.output_with(trace_id).splitlines() if trace_id in x)
    assert line["trace_id"] == trace_id and line["request_id"] == resp.headers["x-request-id"]


def test_a_stream_records_its_first_token_and_its_attempt_spans_the_stream(stack: Stack, sim: Sim) -> None:
    header, trace_id, _ = traceparent()
    with httpx.stream("POST", stack.gw.url + "/v1/chat/completions", headers={"traceparent": header}, timeout=30,
                      json={"model": "llama3-8b", "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": 16, "stream": True}) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    spans = spans_of(stack.receiver, trace_id, 2)
    server = one(spans, lambda s: s.kind == "SPAN_KIND_SERVER")
    attempt = one(spans, lambda s: s.kind == "SPAN_KIND_CLIENT")
    (event,) = [e for e in server.events if e["name"] == "gen_ai.first_token"]
    assert event["attributes"]["gen_ai.response.time_to_first_chunk"] > 0
    assert server.attributes["jumpgate.stream"] is True and attempt.parent_span_id == server.span_id


def test_sampling_follows_the_rate_and_the_clients_decision(stack: Stack, sim: Sim) -> None:
    unsampled_header, unsampled_trace, _ = traceparent(sampled=False)
    assert chat(stack.gw.url, unsampled_header).status_code == 200  # the client said: do not record
    quiet = stack.gateway("sample-zero", 0.0)
    try:
        before = {s.trace_id for s in stack.receiver.snapshot()}
        for _ in range(5):
            assert chat(quiet.url).status_code == 200  # no parent, rate 0: none recorded
        header, trace_id, client_span = traceparent()
        assert chat(quiet.url, header).status_code == 200  # a sampled parent is followed even at rate 0
        spans = spans_of(stack.receiver, trace_id, 2)
        assert one(spans, lambda s: s.kind == "SPAN_KIND_SERVER").parent_span_id == client_span
        new = {s.trace_id for s in stack.receiver.snapshot()} - before
        assert new == {trace_id}
        assert not [s for s in stack.receiver.snapshot() if s.trace_id == unsampled_trace]
    finally:
        quiet.stop()


def test_every_worker_exports_its_spans(stack: Stack, sim: Sim) -> None:
    data = demo_config_data(stack.sim.url)
    data["tracing"] = {"otlp_endpoint": stack.receiver.url, "sample_rate": 1.0}
    path = stack.tmp / "workers.yaml"
    path.write_text(yaml.safe_dump(data))
    gw = start_gateway(stack.tmp, path, extra=["--workers", "2"], env=FAST_EXPORT)
    try:
        traces = []
        for _ in range(12):  # spread over both workers by the kernel's accept queue
            header, trace_id, _ = traceparent()
            assert chat(gw.url, header).status_code == 200
            traces.append(trace_id)
        for trace_id in traces:
            assert len(spans_of(stack.receiver, trace_id, 2)) == 2
        pids = {s.resource.get("process.pid") for s in stack.receiver.snapshot() if s.trace_id in traces}
        assert len(pids - {None}) >= 1
    finally:
        gw.stop()
