"""Stream faults and splitting, disconnects, concurrency slots, latency, recording and the control API."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from service.simulator.app import create_simulator_app
from tests.simulator.conftest import LMI, T5, TGI, control, frames, invoke, json_lines, payload, sign, sse_events

PROMPT = "Tell me about Zürich and 東京 🚀"
TGI_STREAM = {"inputs": PROMPT, "parameters": {"max_new_tokens": 40, "details": True}, "stream": True}
LMI_STREAM = {"inputs": PROMPT, "parameters": {"max_new_tokens": 40, "details": True}, "stream": True}


async def test_random_split_cuts_lines_and_utf8_but_reassembles(client: httpx.AsyncClient) -> None:
    by_line = (await invoke(client, TGI, TGI_STREAM, stream=True)).content
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "split": "random"})
    by_random = (await invoke(client, TGI, TGI_STREAM, stream=True)).content
    parts = [m.payload for m in frames(by_random)]
    assert len(parts) > len(frames(by_line))
    assert any(not p.endswith(b"\n\n") for p in parts)
    undecodable = 0
    for p in parts:
        try:
            p.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0  # some part ends or starts inside a multi-byte character
    assert payload(by_random) == payload(by_line)
    assert sse_events(payload(by_random))[-1]["generated_text"].startswith(PROMPT)


async def test_random_split_for_jsonlines(client: httpx.AsyncClient) -> None:
    expected = payload((await invoke(client, LMI, LMI_STREAM, stream=True)).content)
    await control(client, "POST", "/_sim/faults", {"endpoint": "*", "split": "random"})
    got = (await invoke(client, LMI, LMI_STREAM, stream=True)).content
    assert len(frames(got)) > len(json_lines(expected))
    assert payload(got) == expected


@pytest.mark.parametrize(("kind", "body"), [
    ("ModelStreamError", {"Message": "Model stream was broken by the container.", "ErrorCode": "StreamBroken"}),
    ("InternalStreamFailure", {"Message": "An internal stream failure occurred. Try your request again."}),
])
async def test_stream_exception_frames(client: httpx.AsyncClient, kind: str, body: dict[str, str]) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "stream_error_after": 2, "stream_error_kind": kind})
    messages = frames((await invoke(client, TGI, TGI_STREAM, stream=True)).content)
    assert [m.headers[":message-type"] for m in messages] == ["event", "event", "exception"]
    last = messages[-1]
    assert last.headers[":exception-type"] == kind
    assert orjson.loads(last.payload) == body
    assert last.to_response_dict()["status_code"] == 400


async def test_container_error_line_in_tgi_stream(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "stream_error_after": 3,
                                                   "stream_error_kind": "container"})
    events = sse_events(payload((await invoke(client, TGI, TGI_STREAM, stream=True)).content))
    assert len(events) == 4 and "token" in events[2]
    assert events[-1] == {"error": "Simulated container failure during generation", "error_type": "generation"}


async def test_container_error_line_in_lmi_stream(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": LMI, "stream_error_after": 1,
                                                   "stream_error_kind": "container"})
    lines = json_lines(payload((await invoke(client, LMI, LMI_STREAM, stream=True)).content))
    assert lines == [lines[0], {"code": 424, "error": "Simulated container failure during generation"}]
    assert "token" in lines[0]


# ---- a raw ASGI harness, to observe send timing and to disconnect mid-stream ----

async def _raw_stream(app: Starlette, body: dict[str, Any], disconnect_after: int | None) -> list[tuple[float, Any]]:
    raw = orjson.dumps(body)
    path = f"/endpoints/{TGI}/invocations-response-stream"
    signed = sign(path, raw, {"Content-Type": "application/json"})
    headers = [(k.lower().encode(), v.encode()) for k, v in signed.items()]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"sim.test"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("sim.test", 80)}
    sent: list[tuple[float, Any]] = []
    gone = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append((time.monotonic(), message))
        bodies = sum(1 for _, m in sent if m["type"] == "http.response.body")
        if disconnect_after is not None and bodies >= disconnect_after:
            gone.set()

    await asyncio.wait_for(app(scope, receive, send), 10)
    return sent


async def test_disconnect_mid_stream_is_counted_and_frees_the_slot() -> None:
    app = create_simulator_app(latency="realistic")
    app.state.sim.latency.configure(time_scale=0.2)
    sent = await _raw_stream(app, {**TGI_STREAM, "parameters": {"max_new_tokens": 40}}, disconnect_after=2)
    stats = app.state.sim.stats()[TGI]
    assert stats["streams_disconnected"] == 1 and stats["streams_completed"] == 0
    assert stats["in_flight"] == 0 and stats["queued"] == 0
    assert not any(m.get("more_body") is False for _, m in sent)


async def test_realistic_stream_paces_tokens_and_completes() -> None:
    app = create_simulator_app(latency="realistic")
    sent = await _raw_stream(app, {**TGI_STREAM, "parameters": {"max_new_tokens": 5}}, disconnect_after=None)
    times = [t for t, m in sent if m["type"] == "http.response.body" and m["body"]]
    assert len(times) == 5  # one write per token: each is separated by a decode step
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.015  # gpu decode 20 ms per token
    assert app.state.sim.stats()[TGI]["streams_completed"] == 1


async def test_zero_latency_stream_is_one_write() -> None:
    app = create_simulator_app()
    sent = await _raw_stream(app, TGI_STREAM, disconnect_after=None)
    assert sum(1 for _, m in sent if m["type"] == "http.response.body" and m["body"]) == 1
    assert app.state.sim.stats()[TGI]["streams_completed"] == 1


async def test_realistic_latency_grows_with_tokens_and_is_slower_on_inf2() -> None:
    app = create_simulator_app(latency="realistic")
    model = app.state.sim.latency
    assert model.total("inf2", 100, 10) > model.total("gpu", 100, 10)
    assert model.ttft("gpu", 1000) > model.ttft("gpu", 10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test") as client:
        started = time.monotonic()
        await invoke(client, TGI, {"inputs": "hi", "parameters": {"max_new_tokens": 10}})
        assert time.monotonic() - started >= model.total("gpu", 2, 10) * 0.9
        await control(client, "POST", "/_sim/config", {"latency": "zero"})
        assert not model.enabled and model.total("gpu", 2, 10) == 0  # nothing left to wait for
        resp = await invoke(client, TGI, {"inputs": "hi", "parameters": {"max_new_tokens": 10}})
        assert resp.status_code == 200


@pytest.mark.parametrize(("slots", "peak"), [(2, 2), (32, 8)])
async def test_slots_bound_peak_concurrency(slots: int, peak: int) -> None:
    app = create_simulator_app(latency="realistic")
    app.state.sim.latency.configure(time_scale=0.3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test") as client:
        await control(client, "PUT", "/_sim/endpoints/slotted", {"container": "lmi", "slots": slots})
        body = {"inputs": "hello", "parameters": {"max_new_tokens": 5}}
        results = await asyncio.gather(*(invoke(client, "slotted", body) for _ in range(8)))
        assert all(r.status_code == 200 for r in results)
        stats = (await control(client, "GET", "/_sim/stats"))["slotted"]
    assert stats["peak_concurrency"] == peak and stats["requests"] == 8 and stats["in_flight"] == 0


async def test_delay_fault_holds_the_slot(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "delay_s": 0.05})
    started = time.monotonic()
    await asyncio.gather(*(invoke(client, TGI, {"inputs": "x"}) for _ in range(3)))
    assert time.monotonic() - started >= 0.05
    assert (await control(client, "GET", "/_sim/stats"))[TGI]["peak_concurrency"] == 3


async def test_recording(client: httpx.AsyncClient) -> None:
    await invoke(client, TGI, {"inputs": "x"}, headers={"X-Amzn-SageMaker-Custom-Attributes": "a=b"})
    await invoke(client, T5, b"raw text", content_type="application/x-text")
    first, second = await control(client, "GET", "/_sim/requests")
    assert first["endpoint"] == TGI and first["path"] == f"/endpoints/{TGI}/invocations"
    assert first["body_json"] == {"inputs": "x"}
    assert orjson.loads(base64.b64decode(first["body_b64"])) == {"inputs": "x"}
    headers = {k.lower(): v for k, v in first["headers"].items()}
    assert headers["x-amzn-sagemaker-custom-attributes"] == "a=b"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert second["body_json"] is None and second["time"] >= first["time"]
    await control(client, "DELETE", "/_sim/requests")
    assert await control(client, "GET", "/_sim/requests") == []


async def test_unauthenticated_and_unknown_requests_are_recorded_too(client: httpx.AsyncClient) -> None:
    await client.post(f"/endpoints/{TGI}/invocations", json={"inputs": "x"})
    await invoke(client, "missing", {"inputs": "x"})
    assert [r["endpoint"] for r in await control(client, "GET", "/_sim/requests")] == [TGI, "missing"]


async def test_stats_count_requests_and_streams(client: httpx.AsyncClient) -> None:
    await invoke(client, TGI, {"inputs": "x"})
    await invoke(client, TGI, TGI_STREAM, stream=True)
    stats = (await control(client, "GET", "/_sim/stats"))[TGI]
    assert stats == {"requests": 2, "in_flight": 0, "queued": 0, "peak_concurrency": 1, "streams_completed": 1,
                     "streams_disconnected": 0}


async def test_put_endpoint_and_reset(client: httpx.AsyncClient) -> None:
    created = await control(client, "PUT", "/_sim/endpoints/extra", {"container": "text2text", "slots": 2})
    assert created.items() >= {"name": "extra", "container": "text2text", "accelerator": "gpu",
                               "max_total_tokens": 8192, "slots": 2, "requires_eula": False}.items()
    assert created["version"] is None
    assert (await invoke(client, "extra", {"text_inputs": "hi"})).status_code == 200
    assert "extra" in await control(client, "GET", "/_sim/endpoints")
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "throttle_next": 3})
    await control(client, "POST", "/_sim/reset")
    assert "extra" not in await control(client, "GET", "/_sim/endpoints")
    assert await control(client, "GET", "/_sim/requests") == []
    assert (await control(client, "GET", "/_sim/stats"))[TGI]["requests"] == 0
    assert (await invoke(client, TGI, {"inputs": "x"})).status_code == 200


@pytest.mark.parametrize("spec", [{"container": "vllm"}, {"container": "lmi", "gpu_count": 1}, {}])
async def test_put_endpoint_rejects_bad_specs(client: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    resp = await client.put("/_sim/endpoints/bad", json=spec)
    assert resp.status_code == 400 and resp.json()["error"]


async def test_config_api(client: httpx.AsyncClient) -> None:
    got = await control(client, "POST", "/_sim/config", {"latency": "realistic", "time_scale": 0.5})
    assert got == {"latency": "realistic", "time_scale": 0.5, "record": True}
    assert (await client.post("/_sim/config", json={"latency": "slow"})).status_code == 400
    await control(client, "POST", "/_sim/config", {"record": False, "latency": "zero"})
    await invoke(client, TGI, {"inputs": "x"})
    assert await control(client, "GET", "/_sim/requests") == []


async def test_sampling_without_seed_follows_the_simulator_seed() -> None:
    body = {"inputs": "pick", "parameters": {"do_sample": True, "max_new_tokens": 8, "details": True}}

    async def run(seed: int) -> list[str]:
        app = create_simulator_app(seed=seed)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test") as c:
            return [(await invoke(c, TGI, body)).json()[0]["generated_text"] for _ in range(2)]

    first, same, other = await run(1), await run(1), await run(2)
    assert first == same and first[0] != first[1] and first != other


async def test_control_api_creates_endpoints_with_container_facts(client: httpx.AsyncClient) -> None:
    spec = {"container": "lmi", "version": "0.35.0", "async_mode": True, "tool_call_parser": "pythonic"}
    created = await control(client, "PUT", "/_sim/endpoints/lmi-tools", spec)
    assert created["tool_call_parser"] == "pythonic" and created["async_mode"] is True
    tei = await control(client, "PUT", "/_sim/endpoints/tei-small", {"container": "tei", "embedding_dim": 4})
    assert tei["container"] == "tei"
    assert len((await invoke(client, "tei-small", {"inputs": "hi"})).json()[0]) == 4
    resp = await client.put("/_sim/endpoints/bad-version", json={"container": "tgi", "version": "x.y"})
    assert resp.status_code == 400 and "version" in resp.text
