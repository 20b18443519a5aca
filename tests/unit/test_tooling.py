"""Tools, output formats and images in-process (create_app + FakeTransport): which path each endpoint gets, the
400s that name the field, and the property that no model output makes the gateway fail with anything but the
documented 502 (nor any output a 5xx under `auto`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.canonical import GenerationRequest, Message, ResponseFormat, SamplingParams, Tool, ToolChoice
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.errors import UnsupportedFeature
from service.pipeline.catalog import build_catalog
from service.pipeline.tooling import Path, call_grammar, treat
from service.transport.base import Payload, RawResponse, Target
from service.transport.fake import FakeTransport

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in 'Oslo'?"}]


def catalog(**endpoint: dict[str, Any]) -> Any:
    data = demo_config_data("http://sim.invalid")
    for eid, changes in endpoint.items():
        data["endpoints"][eid.replace("_", "-")] = {**data["endpoints"][eid.replace("_", "-")], **changes}
    return build_catalog(parse_config(data, source="<test>"))


WEATHER = Tool("get_weather", None, TOOL["function"]["parameters"])  # type: ignore[index]


def request(**kw: Any) -> GenerationRequest:
    return GenerationRequest(**{"model": "m", "api": "chat", "params": SamplingParams(),
                                "messages": (Message("user", "Hi"),), "tools": (WEATHER,), **kw})


def test_paths_per_demo_endpoint() -> None:
    eps = catalog().endpoints
    schema = ResponseFormat("json_schema", {"type": "object", "properties": {"a": {"type": "string"}}})
    expected = {"llama3-8b-g5": (Path.PROMPT, Path.GRAMMAR), "llama3-8b-g5-messages": (Path.NATIVE, Path.GRAMMAR),
                "llama3-8b-dolly-ft": (Path.PROMPT, Path.PROMPT)}
    for eid, (tools, output) in expected.items():
        assert treat(request(), eps[eid], "m")[1].tools is tools
        assert treat(request(tools=(), response_format=schema), eps[eid], "m")[1].output is output
    for eid in ("llama2-13b-inf2", "llama2-7b-chat-js", "flan-t5-xl-g5"):
        with pytest.raises(UnsupportedFeature, match="cannot call tools"):
            treat(request(), eps[eid], "m")
        with pytest.raises(UnsupportedFeature, match="'response_format' of type 'json_schema' is not supported"):
            treat(request(tools=(), response_format=schema), eps[eid], "m")


def test_container_facts_decide_native_or_prompt() -> None:
    old = catalog(llama3_8b_g5_messages={"container": {"kind": "tgi", "version": "2.3.1"}})
    assert not old.endpoints["llama3-8b-g5-messages"].capabilities.native_tools  # no `no_tool` before 2.4
    off = catalog(llama3_8b_g5={"container": {"kind": "tgi", "grammar": False}})
    fmt = ResponseFormat("json_schema", {"type": "object", "properties": {"a": {"type": "string"}}})
    assert treat(request(tools=(), response_format=fmt), off.endpoints["llama3-8b-g5"], "m")[1].output is Path.PROMPT
    no_root = ResponseFormat("json_schema", {"anyOf": [{"type": "object"}]})  # TGI needs top-level properties
    tgi = catalog().endpoints["llama3-8b-g5"]
    assert treat(request(tools=(), response_format=no_root), tgi, "m")[1].output is Path.PROMPT
    llama2 = catalog(llama2_13b_inf2={"tool_format": "generic_json"})  # opted in
    assert treat(request(), llama2.endpoints["llama2-13b-inf2"], "m")[1].tools is Path.PROMPT


def test_lmi_rolling_batch_required_becomes_the_named_choice() -> None:
    lmi = {"schema": "openai", "container": {"kind": "lmi", "tool_call_parser": "llama3_json"}}
    ep = catalog(llama3_8b_dolly_ft=lmi).endpoints["llama3-8b-dolly-ft"]
    sent, how = treat(request(tool_choice=ToolChoice("required")), ep, "m")
    assert how.tools is Path.NATIVE and sent.tool_choice == ToolChoice("function", "get_weather")
    two = request(tool_choice=ToolChoice("required"), tools=(WEATHER, Tool("other", None, {})))
    assert treat(two, ep, "m")[1].tools is Path.PROMPT  # cannot force "any" natively: Meta's format instead
    async_ep = catalog(llama3_8b_dolly_ft={**lmi, "container": {**lmi["container"], "async_mode": True}})
    assert treat(request(tool_choice=ToolChoice("required")), async_ep.endpoints["llama3-8b-dolly-ft"], "m")[0] \
        .tool_choice == ToolChoice("required")  # vLLM's own server takes it


def test_call_grammar_keeps_each_tools_definitions_resolvable() -> None:
    a = Tool("a", None, {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}},
                         "$defs": {"X": {"type": "integer"}}})
    b = Tool("b", None, {"type": "object", "properties": {}})
    grammar = call_grammar((a, b), ToolChoice("required"))
    assert grammar is not None and grammar["$defs"] == {"X": {"type": "integer"}} and len(grammar["anyOf"]) == 2
    clash = Tool("c", None, {"type": "object", "$defs": {"X": {"type": "string"}}})
    assert call_grammar((a, clash), ToolChoice("required")) is None


def client_with(handler: Any) -> httpx.AsyncClient:
    app = create_app(parse_config(demo_config_data("http://sim.invalid"), source="<test>"),
                     transport=FakeTransport(handler))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://localhost")


@pytest.mark.parametrize(("body", "status", "param", "fragment"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]}, 400,
     "tools[0].function.parameters", "not a valid JSON Schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "https://x.example/s"}}}]},
     400, "tools[0].function.parameters", "only local references"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}, 400,
     "tools[0].function.parameters", "of type object"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 7}}}}, 400,
     "response_format.json_schema.schema", "not a valid JSON Schema"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, 400, "tool_choice",
     "not among `tools`"),
    ({"tool_choice": "required"}, 400, "tool_choice", "only allowed when `tools`"),
    ({"tools": [TOOL, TOOL]}, 400, "tools", "twice"),
    ({"tools": [TOOL] * 129}, 400, "tools", "over the limit of 128"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, 400, "tools.0.custom", "unknown parameter"),
    ({"messages": [*ASK, {"role": "tool", "tool_call_id": "call_9", "content": "5"}]}, 400,
     "messages[1].tool_call_id", "answers no tool call"),
    ({"messages": [*ASK, {"role": "tool", "content": "5"}]}, 400, "messages[1].tool_call_id", "required"),
    ({"messages": [{"role": "user", "content": None}]}, 400, "messages[0].content", "required"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                                                        "AAAA"}}]}]},
     400, "messages[0].content[0]", "does not accept images"),
])
async def test_bad_input_is_a_400_naming_the_field(body: dict[str, Any], status: int, param: str,
                                                   fragment: str) -> None:
    async with client_with(lambda t, p: RawResponse(b"{}", "application/json")) as client:
        resp = await client.post("/v1/chat/completions", json={"model": "llama3-8b", "messages": ASK, **body})
    error = resp.json()["error"]
    assert resp.status_code == status and error["param"] == param and fragment in error["message"], error


def tgi_answer(text: str) -> Any:
    def handler(target: Target, payload: Payload) -> RawResponse:
        answer = [{"generated_text": text, "details": {"finish_reason": "eos_token", "generated_tokens": 5,
                                                       "prefill": []}}]
        return RawResponse(orjson.dumps(answer), "application/json")

    return handler


def tgi_stream(text: str, cut: int) -> Any:
    def handler(target: Target, payload: Payload) -> list[bytes]:
        pieces = [text[:cut], text[cut:]] if 0 < cut < len(text) else [text]
        events = [{"token": {"id": 1, "text": p, "logprob": -0.1, "special": False}, "generated_text": None}
                  for p in pieces if p]
        events.append({"token": {"id": 2, "text": "</s>", "logprob": 0, "special": True}, "generated_text": text,
                       "details": {"finish_reason": "eos_token", "generated_tokens": len(events) + 1}})
        return [b"data:" + orjson.dumps(e) + b"\n\n" for e in events]

    return handler


OUTPUTS = st.one_of(
    st.text(max_size=120),
    st.builds(lambda c, junk: json.dumps({"name": "get_weather", "parameters": {"city": c}})[:junk],
              st.text(max_size=8), st.integers(1, 80)),
    st.sampled_from(['{"name": "get_weather", "parameters": {"city": 3}}', "<|python_tag|>{", "[get_weather(",
                     '<function=get_weather>{"city": "Oslo"}</function>', "[get_weather(city='Oslo')]", "```json\n{",
                     '{"name": "nope", "parameters": {}}', "{" * 40, "[" * 40]))


@given(text=OUTPUTS, choice=st.sampled_from(["auto", "required"]), stream=st.booleans(), cut=st.integers(0, 100))
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_model_output_is_a_5xx_but_the_documented_502(text: str, choice: str, stream: bool, cut: int) -> None:
    body = {"model": "llama3-8b", "messages": ASK, "tools": [TOOL], "tool_choice": choice, "stream": stream}

    async def run() -> httpx.Response:
        handler = tgi_stream(text, cut) if stream and choice == "auto" else tgi_answer(text)
        async with client_with(handler) as client:
            return await client.post("/v1/chat/completions", json=body)

    resp = asyncio.run(run())
    if choice == "auto":
        assert resp.status_code == 200, resp.text
        assert "data: [DONE]" in resp.text if stream else resp.json()["choices"][0]["finish_reason"]
    else:
        assert resp.status_code in (200, 502), resp.text
        if resp.status_code == 502:
            assert resp.json()["error"]["type"] == "invalid_model_output"


async def test_a_bare_prompt_to_an_lmi_chat_endpoint_is_a_400() -> None:
    data = demo_config_data("http://sim.invalid")
    data["endpoints"]["llama3-8b-dolly-ft"] = {**data["endpoints"]["llama3-8b-dolly-ft"], "schema": "openai",
                                               "container": {"kind": "lmi"}}
    app = create_app(parse_config(data, source="<test>"), transport=FakeTransport(lambda t, p: None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        resp = await client.post("/v1/completions", json={"model": "llama3-8b-dolly", "prompt": "Hi"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "prompt_not_supported"
