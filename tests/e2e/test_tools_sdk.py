"""Tool calling and structured output end to end with the official openai SDK: gateway process, simulator behind.

On every capable model: `chat.completions.parse` with a pydantic model, a streamed tool call put together by the
SDK's stream helpers, a two-turn loop (call, tool result, answer). Then what the gateway does when a model's
emulated call or JSON is wrong (simulator faults): asks again with the reason, or fails with the documented 502;
how the containers were asked (the simulator's recorded payloads); routing by capability; the native API.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

from tests.e2e.conftest import LMI_TOOLS_ENDPOINT
from tests.procs import Sim

pytestmark = pytest.mark.e2e

CAPABLE = ["llama3-8b", "llama3-8b-messages", "llama3-8b-dolly", "llama32-11b-vision", "lmi-tools"]
ENDPOINT = {"llama3-8b": "jumpgate-demo-tgi-llama3-8b", "llama3-8b-messages": "jumpgate-demo-tgi-llama3-8b",
            "llama3-8b-dolly": "jumpgate-demo-ft-llama3-8b-dolly",
            "llama32-11b-vision": "jumpgate-demo-tgi-llama32-11b-vision", "lmi-tools": LMI_TOOLS_ENDPOINT}
NATIVE = ("llama3-8b-messages", "llama32-11b-vision", "lmi-tools")


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str = Field(description="the city, e.g. 'Paris'")
    days: int = Field(ge=1, le=14, description="how many days to forecast")


class Movie(BaseModel):
    title: str
    year: int


WEATHER_TOOL = openai.pydantic_function_tool(GetWeather)  # strict, as the SDK builds it
ASK = [{"role": "user", "content": "What is the weather in 'Paris' for 3 days? Use GetWeather."}]


@pytest.mark.parametrize("model", CAPABLE)
def test_parse_returns_the_pydantic_object(client: OpenAI, sim: Sim, model: str) -> None:
    completion = client.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Name the movie 'Alien' from 1979."}],
        response_format=Movie, max_tokens=200)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Movie) and parsed.title and isinstance(parsed.year, int)
    assert completion.choices[0].finish_reason == "stop"
    [sent] = sim.requests(ENDPOINT[model])
    body = sent["body_json"]
    if model == "llama3-8b":  # TGI generate: the schema as TGI's grammar
        assert body["parameters"]["grammar"]["type"] == "json"
        assert body["parameters"]["grammar"]["value"]["properties"].keys() == {"title", "year"}
    elif model == "llama3-8b-dolly":  # LMI: no grammar, an instruction with the schema
        assert "grammar" not in body["parameters"] and '"title"' in body["inputs"] and "JSON" in body["inputs"]
    elif model == "lmi-tools":  # LMI chat documents no response_format: the instruction, in a system message
        assert "response_format" not in body and '"title"' in body["messages"][0]["content"]
    else:  # TGI Messages API: TGI's own response_format shape
        assert body["response_format"]["type"] == "json" and "properties" in body["response_format"]["value"]


@pytest.mark.parametrize("model", CAPABLE)
def test_a_streamed_tool_call_comes_together_with_the_sdk_helpers(client: OpenAI, sim: Sim, model: str) -> None:
    with client.chat.completions.stream(model=model, messages=ASK, tools=[WEATHER_TOOL], max_tokens=200,
                                        stream_options={"include_usage": True}) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.id.startswith("call_") and call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="Paris", days=3)
    assert [e.name for e in done] == ["GetWeather"] and final.usage is not None and final.usage.prompt_tokens > 0


def _tool_result(call: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"forecast": "sunny", "celsius": 21})}


@pytest.mark.parametrize("model", CAPABLE)
def test_two_turns_call_result_answer(client: OpenAI, sim: Sim, model: str) -> None:
    first = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER_TOOL], max_tokens=200)
    message = first.choices[0].message
    [call] = message.tool_calls or []
    history = [*ASK, message.model_dump(exclude_none=True), _tool_result(call)]
    # room for TGI's constrained no_tool answer (its words inside JSON): cut by max_tokens it is TGI's tool error
    second = client.chat.completions.create(model=model, messages=history, tools=[WEATHER_TOOL], max_tokens=200)
    answer = second.choices[0]
    assert answer.finish_reason in ("stop", "length") and not answer.message.tool_calls
    assert answer.message.content
    sent = sim.requests(ENDPOINT[model])[-1]["body_json"]
    text = json.dumps(sent)
    assert "sunny" in text  # the result reached the model
    if model in NATIVE:  # OpenAI's own history shape
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.id,
                                        "content": _tool_result(call)["content"]}
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.id and "content" not in sent["messages"][-2]
    else:  # Meta's format: the call replayed as JSON, the result as an ipython turn
        assert '{\\"name\\": \\"GetWeather\\", \\"parameters\\": {\\"city\\": \\"Paris\\"' in text
        assert "ipython" in sent["inputs"]


def _required(client: OpenAI, model: str = "llama3-8b-dolly", **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER_TOOL], tool_choice="required",
                                          max_tokens=200, **kw)


@pytest.mark.parametrize("kind", ["malformed", "invalid_json", "wrong_name", "bad_arguments"])
def test_a_broken_emulated_call_is_asked_for_again_with_the_reason(client: OpenAI, sim: Sim, kind: str) -> None:
    clean = _required(client)
    sim.reset()
    sim.fault(endpoint="jumpgate-demo-ft-llama3-8b-dolly", tool_output=kind, tool_output_next=1)
    answer = _required(client)
    [call] = answer.choices[0].message.tool_calls or []
    assert call.function.name == "GetWeather" and answer.choices[0].finish_reason == "tool_calls"
    GetWeather.model_validate_json(call.function.arguments)
    _, retry = sim.requests("jumpgate-demo-ft-llama3-8b-dolly")
    assert "That answer could not be used" in retry["body_json"]["inputs"]
    assert answer.usage is not None and clean.usage is not None
    assert answer.usage.prompt_tokens > clean.usage.prompt_tokens  # both attempts are counted and charged


def test_still_broken_after_the_retries_is_a_502_naming_invalid_model_output(client: OpenAI, sim: Sim) -> None:
    sim.fault(endpoint="jumpgate-demo-ft-llama3-8b-dolly", tool_output="invalid_json")
    with pytest.raises(openai.APIStatusError) as caught:
        _required(client)
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "invalid_model_output"  # type: ignore[index]
    assert len(sim.requests("jumpgate-demo-ft-llama3-8b-dolly")) == 2  # the call and one retry (the default)


def test_under_auto_an_unusable_call_is_the_models_text(client: OpenAI, sim: Sim) -> None:
    sim.fault(endpoint="jumpgate-demo-tgi-llama3-8b", tool_output="malformed", tool_output_next=1)
    answer = client.chat.completions.create(model="llama3-8b", messages=ASK, tools=[WEATHER_TOOL], max_tokens=200)
    choice = answer.choices[0]
    assert not choice.message.tool_calls and choice.finish_reason == "stop"
    assert choice.message.content and "GetWeather" in choice.message.content
    assert len(sim.requests("jumpgate-demo-tgi-llama3-8b")) == 1  # auto: no retry


def test_emulated_json_with_a_schema_violation_is_retried(client: OpenAI, sim: Sim) -> None:
    sim.fault(endpoint="jumpgate-demo-ft-llama3-8b-dolly", tool_output="bad_arguments", tool_output_next=1)
    completion = client.chat.completions.parse(model="llama3-8b-dolly", response_format=Movie, max_tokens=200,
                                               messages=[{"role": "user", "content": "'Alien' from 1979, please."}])
    assert isinstance(completion.choices[0].message.parsed, Movie)
    assert len(sim.requests("jumpgate-demo-ft-llama3-8b-dolly")) == 2


def test_required_stream_on_an_emulated_model_is_checked_then_relayed(gateway_url: str, sim: Sim) -> None:
    body = {"model": "llama3-8b-dolly", "messages": ASK, "tools": [WEATHER_TOOL], "tool_choice": "required",
            "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 200}
    resp = httpx.post(gateway_url + "/v1/chat/completions", json=body, timeout=30)
    events = [json.loads(line[6:]) for line in resp.text.split("\n\n") if line.startswith("data: {")]
    assert resp.text.rstrip().endswith("data: [DONE]")
    calls = [c for e in events for ch in e["choices"] for c in ch["delta"].get("tool_calls", [])]
    [call] = calls
    assert call["index"] == 0 and call["id"].startswith("call_") and call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 3}
    assert [ch["finish_reason"] for e in events for ch in e["choices"] if ch["finish_reason"]] == ["tool_calls"]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0
    assert sim.requests("jumpgate-demo-ft-llama3-8b-dolly")[0]["path"].endswith("/invocations")  # not streamed


def test_named_choice_on_tgi_generate_is_constrained_by_grammar(client: OpenAI, sim: Sim) -> None:
    answer = client.chat.completions.create(
        model="llama3-8b", messages=ASK, tools=[WEATHER_TOOL], max_tokens=200,
        tool_choice={"type": "function", "function": {"name": "GetWeather"}})
    [call] = answer.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}
    [sent] = sim.requests("jumpgate-demo-tgi-llama3-8b")
    grammar = sent["body_json"]["parameters"]["grammar"]
    assert grammar["value"]["properties"]["name"] == {"const": "GetWeather"}


def test_tools_go_only_to_the_targets_that_can_call_them(client: OpenAI, sim: Sim) -> None:
    for _ in range(6):
        raw = client.chat.completions.with_raw_response.create(model="tools-mixed", messages=ASK,
                                                               tools=[WEATHER_TOOL], max_tokens=200)
        assert raw.headers["x-jumpgate-endpoint"] == "llama3-8b-dolly-ft"
    assert sim.requests("jumpgate-demo-flan-t5-xl") == []


def test_the_native_api_takes_tools_and_formats(gateway_url: str) -> None:
    body = {"model": "llama3-8b", "inputs": "What is the weather in 'Paris' for 3 days?", "tools": [WEATHER_TOOL],
            "tool_choice": "required", "parameters": {"max_new_tokens": 200}}
    answer = httpx.post(gateway_url + "/v1/generate", json=body, timeout=30).json()
    [generation] = answer["generations"]
    assert generation["finish_reason"] == "tool_calls"
    assert generation["tool_calls"][0]["function"]["name"] == "GetWeather"
    body = {"model": "llama3-8b-dolly", "inputs": "Name the movie 'Alien' from 1979.",
            "parameters": {"max_new_tokens": 200}, "response_format": {
                "type": "json_schema", "json_schema": {"name": "movie", "schema": Movie.model_json_schema()}}}
    answer = httpx.post(gateway_url + "/v1/generate", json=body, timeout=30).json()
    assert Movie.model_validate_json(answer["generations"][0]["text"]).year == 1979


@pytest.mark.parametrize("model", ["flan-t5-xl", "llama2-13b-neuron", "llama2-7b-chat"])
def test_models_without_tools_answer_the_documented_400(client: OpenAI, sim: Sim, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER_TOOL])
    assert caught.value.body["code"] == "tools_not_supported" and caught.value.body["param"] == "tools"  # type: ignore[index]
    assert "cannot call tools" in caught.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.parse(model=model, messages=ASK, response_format=Movie)
    assert "'response_format' of type 'json_schema' is not supported with this model" in caught.value.message
    assert sim.requests() == []
