"""The OpenAI request surface in-process (create_app + FakeTransport): logprobs through routing, rendering and
streams; fields sent at their default values; every offending field named at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from service.app import create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.transport.base import Payload, RawResponse, Target
from service.transport.fake import FakeTransport

Handler = Callable[[Target, Payload], Any]


def config(**models: Any) -> Any:
    data = demo_config_data("http://sim.invalid")
    data["models"]["chat-lenient"] = {"targets": [{"endpoint": "llama2-7b-chat-js"}], "unsupported_params": "drop"}
    data["models"]["mixed"] = {"targets": [{"endpoint": "llama2-7b-chat-js"}, {"endpoint": "llama3-8b-g5"}]}
    data["models"].update(models)
    return parse_config(data, source="<test>")


@pytest.fixture
async def make_client() -> Any:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler) -> tuple[httpx.AsyncClient, FakeTransport]:
        fake = FakeTransport(handler)
        app = create_app(config(), transport=fake)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
        clients.append(client)
        return client, fake

    yield make
    for c in clients:
        await c.aclose()


def tgi_token(text: str, logprob: float, special: bool = False) -> dict[str, Any]:
    return {"id": 7, "text": text, "logprob": logprob, "special": special}


def tgi_answer(tokens: list[tuple[str, float]], top: int = 0) -> RawResponse:
    details: dict[str, Any] = {"finish_reason": "eos_token", "generated_tokens": len(tokens) + 1, "prefill": [],
               "tokens": [tgi_token(t, lp) for t, lp in tokens] + [tgi_token("</s>", -0.2, True)]}
    if top:
        details["top_tokens"] = [[tgi_token(t + str(k) if k else t, lp - k) for k in range(top)]
                                 for t, lp in [*tokens, ("</s>", -0.2)]]
    return RawResponse(orjson.dumps([{"generated_text": "".join(t for t, _ in tokens), "details": details}]),
                       "application/json")


def tgi_stream(tokens: list[tuple[str, float]]) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {"token": tgi_token(t, lp), "top_tokens": [tgi_token(t, lp), tgi_token(t + "1", lp - 1)],
         "generated_text": None, "details": None} for t, lp in tokens]
    events.append({"token": tgi_token("</s>", -0.2, True), "generated_text": "".join(t for t, _ in tokens),
                   "details": {"finish_reason": "eos_token", "generated_tokens": len(tokens) + 1,
                               "input_length": 3}})
    return [b"data:" + orjson.dumps(e) + b"\n\n" for e in events]


def chat(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **kw}


def sse(text: str) -> list[Any]:
    return [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]


async def test_chat_logprobs_in_the_openai_shape_with_utf8_bytes(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: tgi_answer([("Caf", -0.5), ("é", -0.25)], top=2))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", logprobs=True, top_logprobs=2))
    assert resp.status_code == 200, resp.text
    sent = orjson.loads(fake.calls[0].payload.body)["parameters"]
    assert sent["top_n_tokens"] == 2 and sent["details"] is True
    content = resp.json()["choices"][0]["logprobs"]["content"]
    assert [(e["token"], e["logprob"]) for e in content] == [("Caf", -0.5), ("é", -0.25)]  # EOS removed
    assert content[1]["bytes"] == [195, 169]
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["Caf", "Caf1"]


async def test_no_logprobs_asked_for_means_null_and_no_top_n_tokens(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", logprobs=False))
    assert resp.json()["choices"][0]["logprobs"] is None
    assert "top_n_tokens" not in orjson.loads(fake.calls[0].payload.body)["parameters"]


async def test_top_logprobs_over_the_container_cap_is_400_naming_the_cap(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", logprobs=True, top_logprobs=6))
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["param"] == "top_logprobs"
    assert "at most 5" in error["message"] and "llama3-8b-g5" in error["message"] and fake.calls == []


async def test_top_logprobs_needs_logprobs(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", top_logprobs=2))
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "top_logprobs"


async def test_endpoint_without_token_data_is_400_or_dropped_by_policy(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: RawResponse(b'[{"generation": "Hello"}]', "application/json"))
    resp = await client.post("/v1/chat/completions", json=chat("llama2-7b-chat", logprobs=True))
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["param"] == "logprobs" and "llama2-7b-chat-js" in error["message"]
    assert fake.calls == []
    resp = await client.post("/v1/chat/completions", json=chat("chat-lenient", logprobs=True))
    assert resp.status_code == 200 and resp.headers["x-jumpgate-dropped-params"] == "logprobs"
    assert resp.json()["choices"][0]["logprobs"] is None


async def test_routing_prefers_the_target_that_can_answer(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    for _ in range(6):  # the jumpstart target is never chosen, whatever the weighted draw
        resp = await client.post("/v1/chat/completions", json=chat("mixed", logprobs=True))
        assert resp.headers["x-jumpgate-endpoint"] == "llama3-8b-g5"
    assert {c.target.endpoint_name for c in fake.calls} == {"jumpgate-demo-tgi-llama3-8b"}


async def test_completions_logprobs_in_the_legacy_shape(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_answer([("Hel", -0.5), ("lo", -0.25)], top=1))
    resp = await client.post("/v1/completions", json={"model": "llama3-8b", "prompt": "x", "logprobs": 1})
    assert resp.json()["choices"][0]["logprobs"] == {
        "tokens": ["Hel", "lo"], "token_logprobs": [-0.5, -0.25], "top_logprobs": [{"Hel": -0.5}, {"lo": -0.25}],
        "text_offset": [0, 3]}
    resp = await client.post("/v1/completions", json={"model": "llama3-8b", "prompt": "x", "logprobs": 6})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "logprobs"


async def test_stop_cut_by_the_gateway_cuts_the_logprobs_too(make_client: Any) -> None:
    body = orjson.dumps({"generated_text": "one two three", "details": {
        "finish_reason": "length", "generated_tokens": 3, "tokens": [
            {"id": 1, "text": t, "log_prob": -0.1} for t in ("one", " two", " three")]}})
    client, _ = make_client(lambda t, p: RawResponse(body, "application/json"))
    resp = await client.post("/v1/chat/completions", json=chat("llama2-13b-neuron", logprobs=True, stop=[" thr"]))
    choice = resp.json()["choices"][0]
    assert choice["message"]["content"] == "one two"
    assert [e["token"] for e in choice["logprobs"]["content"]] == ["one", " two"]


async def test_streamed_chunks_carry_their_own_tokens(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_stream([("A", -0.1), ("B", -0.2), ("C", -0.3)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", stream=True, logprobs=True,
                                                                top_logprobs=1))
    chunks = [c for c in sse(resp.text) if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert [(c["choices"][0]["delta"]["content"], [e["token"] for e in c["choices"][0]["logprobs"]["content"]])
            for c in chunks] == [("A", ["A"]), ("B", ["B"]), ("C", ["C"])]
    assert all(len(c["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 1 for c in chunks)


async def test_streamed_legacy_chunks_continue_the_text_offset(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_stream([("Ab", -0.1), ("cd", -0.2)]))
    resp = await client.post("/v1/completions", json={"model": "llama3-8b", "prompt": "x", "stream": True,
                                                      "logprobs": 0})
    shapes = [c["choices"][0]["logprobs"] for c in sse(resp.text) if c["choices"] and c["choices"][0]["text"]]
    assert [s["text_offset"] for s in shapes] == [[0], [2]] and shapes[1]["top_logprobs"] == [{}]


async def test_lmi_stream_cannot_send_alternatives_per_chunk(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: [])
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b-dolly", stream=True, logprobs=True,
                                                                top_logprobs=2))
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["param"] == "top_logprobs" and "end of a stream" in error["message"]


DEFAULTS = {"store": False, "service_tier": "auto", "modalities": ["text"], "metadata": {"team": "search"},
            "user": "u-1", "logit_bias": {}, "reasoning_effort": None, "prediction": None, "audio": None,
            "safety_identifier": "s-1", "verbosity": None, "parallel_tool_calls": None}


@pytest.mark.parametrize(("name", "value"), list(DEFAULTS.items()))
async def test_each_default_valued_field_is_accepted(make_client: Any, name: str, value: Any) -> None:
    client, fake = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", **{name: value}))
    assert resp.status_code == 200, resp.text
    assert name not in orjson.loads(fake.calls[0].payload.body)["parameters"]


async def test_every_offending_field_is_named_in_one_400(make_client: Any) -> None:
    client, fake = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat(
        "llama3-8b", store=True, service_tier="flex", modalities=["text", "audio"], bogus=1, also_bogus=2,
        reasoning_effort="high", store_extra=0))
    error = resp.json()["error"]
    assert resp.status_code == 400 and fake.calls == []
    for name in ("bogus", "also_bogus", "store_extra", "`store`=True", "`service_tier`='flex'", "modalities",
                 "reasoning_effort"):
        assert name in error["message"], name
    assert error["param"] == "bogus"


async def test_store_zero_is_not_false(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", store=0))
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "store"


async def test_completions_legacy_defaults(make_client: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    ok = await client.post("/v1/completions", json={"model": "llama3-8b", "prompt": "x", "echo": False,
                                                    "best_of": 1, "suffix": None, "user": "u"})
    assert ok.status_code == 200, ok.text
    bad = await client.post("/v1/completions", json={"model": "llama3-8b", "prompt": "x", "echo": True,
                                                     "best_of": 2})
    assert bad.status_code == 400 and "`echo`" in bad.json()["error"]["message"]
    assert "`best_of`" in bad.json()["error"]["message"]


@pytest.mark.parametrize("metadata", [{f"k{i}": "v" for i in range(17)}, {"k": "v" * 513}, {"k": 1}])
async def test_metadata_is_bounded(make_client: Any, metadata: Any) -> None:
    client, _ = make_client(lambda t, p: tgi_answer([("Hi", -0.5)]))
    resp = await client.post("/v1/chat/completions", json=chat("llama3-8b", metadata=metadata))
    assert resp.status_code == 400 and resp.json()["error"]["param"].startswith("metadata")


async def test_models_say_per_endpoint_how_tools_json_and_images_are_served(make_client: Any) -> None:
    client, _ = make_client(lambda target, payload: None)  # nothing is invoked
    listed = {m["id"]: m["endpoints"][0] for m in (await client.get("/v1/models")).json()["data"]
              if m["kind"] == "text_generation"}
    # what the demo's containers allow (README "Tools, structured output and images"), resolved from its config
    assert (listed["llama3-8b-messages"]["tools"], listed["llama3-8b-messages"]["json_schema_output"]) == \
        ("native", "grammar")
    assert listed["llama3-8b"]["tools"] == "prompt" and listed["llama3-8b"]["tool_format"] == "llama3_json"
    assert listed["llama3-8b"]["json_schema_output"] == "grammar"
    assert (listed["llama3-8b-dolly"]["tools"], listed["llama3-8b-dolly"]["json_schema_output"]) == \
        ("prompt", "prompt")
    for refusing in ("flan-t5-xl", "llama2-7b-chat"):
        assert (listed[refusing]["tools"], listed[refusing]["json_schema_output"]) == (None, None), refusing
    assert listed["llama32-11b-vision"]["images"] == {"max_images": 1}
    assert listed["llama3-8b"]["images"] is None
