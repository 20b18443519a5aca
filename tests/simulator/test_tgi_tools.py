"""TGI Messages API tool calling, version by version (openai-surface.md section 1.3), over the real wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from service.simulator.app import create_simulator_app
from service.simulator.model import SimEndpoint
from tests.simulator.conftest import BASE, invoke, payload, sse_events

VERSIONS = ("1.4.5", "2.0.4", "3.1.1", "3.2.0", "3.3.7")
TOOLS = [
    {"type": "function", "function": {"name": "magic_function", "description": "Applies a magic function.",
                                      "parameters": {"type": "object", "properties": {"input": {"type": "integer"}},
                                                     "required": ["input"]}}},
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather at a location.",
                                      "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                                                     "required": ["location"]}}},
]
ASK = [{"role": "user", "content": "What is the value of magic_function(3)? Use the tool."}]
HISTORY = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "magic_function", "arguments": "{\"input\": 3}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "5"}]


@pytest.fixture
async def tgi() -> AsyncIterator[httpx.AsyncClient]:
    endpoints = {f"tgi-{v}": SimEndpoint(f"tgi-{v}", "tgi", version=v) for v in VERSIONS}
    endpoints["no-grammar"] = SimEndpoint("no-grammar", "tgi", grammar=False)
    app = create_simulator_app(endpoints)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def chat(client: httpx.AsyncClient, version: str, **body: Any) -> Any:
    resp = await invoke(client, f"tgi-{version}", {"messages": ASK, "tools": TOOLS, "max_tokens": 200, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def stream(client: httpx.AsyncClient, endpoint: str, **body: Any) -> list[Any]:
    full = {"messages": ASK, "tools": TOOLS, "max_tokens": 200, "stream": True, **body}
    return sse_events(payload((await invoke(client, endpoint, full, stream=True)).content))


def tool_error(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 424, resp.text
    assert resp.json()["OriginalStatusCode"] == 422
    return orjson.loads(resp.json()["OriginalMessage"])  # type: ignore[no-any-return]


@pytest.mark.parametrize(("version", "call"), [
    ("1.4.5", {"id": 0, "type": "function", "function": {"description": None, "name": "tools",
                                                         "parameters": {"input": 3}}}),
    ("2.0.4", {"id": "0", "type": "function", "function": {"description": None, "name": "magic_function",
                                                           "arguments": {"input": 3}}}),
    ("3.1.1", {"id": "0", "type": "function", "function": {"description": None, "name": "magic_function",
                                                           "arguments": {"input": 3}}}),
    ("3.2.0", {"id": "0", "type": "function", "function": {"description": None, "name": "magic_function",
                                                           "arguments": "{\"input\":3}"}}),
])
async def test_non_stream_call_shape_per_version(tgi: httpx.AsyncClient, version: str, call: Any) -> None:
    body = await chat(tgi, version, tool_choice="auto")
    assert body["id"] == "" and body["system_fingerprint"] == f"{version}-native"
    [choice] = body["choices"]
    assert choice["message"] == {"role": "assistant", "tool_calls": [call]}  # no content key at all
    assert choice["finish_reason"] == "stop"  # never tool_calls


async def test_tools_are_ignored_by_1_4_without_tool_choice(tgi: httpx.AsyncClient) -> None:
    body = await chat(tgi, "1.4.5")
    assert "tool_calls" not in body["choices"][0]["message"]


@pytest.mark.parametrize("version", ["2.0.4", "3.1.1"])
async def test_stream_before_3_2_is_one_object_of_raw_fragments(tgi: httpx.AsyncClient, version: str) -> None:
    events = await stream(tgi, f"tgi-{version}")
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"]["tool_calls"] for e in events[:-1]]
    assert all(isinstance(d, dict) and d["id"] == "" and d["function"]["name"] is None for d in deltas)
    raw = "".join(d["function"]["arguments"] for d in deltas)
    assert raw == '{"function": {"_name": "magic_function", "input": 3}}</s>'  # the EOS text included
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("version", ["3.2.0", "3.3.7"])
async def test_stream_from_3_2_is_a_list_without_final_chunk(tgi: httpx.AsyncClient, version: str) -> None:
    events = await stream(tgi, f"tgi-{version}", stream_options={"include_usage": True})
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []  # the usage chunk
    chunks = events[:-2]
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks]
    assert all(isinstance(c, list) and len(c) == 1 and c[0]["id"] == "0" for c in calls)
    assert calls[0][0]["function"] == {"name": "magic_function", "arguments": "{"}
    assert all(c[0]["function"]["name"] is None for c in calls[1:])
    assert json.loads("".join(c[0]["function"]["arguments"] for c in calls)) == {"input": 3}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


async def test_stream_id_follows_numeric_history_ids_else_uuid(tgi: httpx.AsyncClient) -> None:
    numeric = [*ASK, {"role": "assistant", "tool_calls": [
        {"id": "4", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "x"}}}]},
        {"role": "tool", "tool_call_id": "4", "content": "sunny"},
        {"role": "user", "content": "And magic_function(7)?"}]
    events = await stream(tgi, "tgi-3.2.0", messages=numeric)
    assert events[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == "5"
    events = await stream(tgi, "tgi-3.2.0", messages=[*HISTORY, {"role": "user", "content": "magic_function(2)?"}])
    assert len(events[0]["choices"][0]["delta"]["tool_calls"][0]["id"]) == 36


async def test_after_a_tool_result_3_2_answers_text_from_a_second_generation(tgi: httpx.AsyncClient) -> None:
    body = await chat(tgi, "3.2.0", messages=HISTORY, temperature=0)
    message = body["choices"][0]["message"]
    assert message["content"] and "tool_calls" not in message
    events = await stream(tgi, "tgi-3.2.0", messages=HISTORY, temperature=0)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == message["content"]
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")


async def test_no_tool_in_3_1_is_content_in_the_json(tgi: httpx.AsyncClient) -> None:
    body = await chat(tgi, "3.1.1", messages=HISTORY, temperature=0)
    assert body["choices"][0]["message"]["content"]
    events = await stream(tgi, "tgi-3.1.1", messages=HISTORY, temperature=0)
    text = "".join(e["choices"][0]["delta"]["content"] for e in events[:-1])
    # The first fragment lost its spaces and the stream stopped at the closing quote, with no finish chunk.
    assert body["choices"][0]["message"]["content"].startswith(text.split()[0])
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])


async def test_2_0_answers_words_through_notify_error(tgi: httpx.AsyncClient) -> None:
    body = await chat(tgi, "2.0.4", messages=HISTORY)
    [call] = body["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "notify_error" and set(call["function"]["arguments"]) == {"error"}


NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("choice", ["required", "get_weather", NAMED])
async def test_forced_choices_call_even_after_a_result(tgi: httpx.AsyncClient, choice: Any) -> None:
    body = await chat(tgi, "3.2.0", messages=HISTORY, tool_choice=choice)
    [call] = body["choices"][0]["message"]["tool_calls"]
    if choice != "required":
        assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])


async def test_tool_choice_none_answers_text(tgi: httpx.AsyncClient) -> None:
    body = await chat(tgi, "3.2.0", tool_choice="none")
    assert isinstance(body["choices"][0]["message"]["content"], str)


async def test_mentioned_tool_and_arguments_come_from_the_question(tgi: httpx.AsyncClient) -> None:
    ask = [{"role": "user", "content": "What is the weather in 'San Francisco, CA'?"}]
    [call] = (await chat(tgi, "3.2.0", messages=ask))["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA"}


async def test_unknown_named_tool_is_a_tool_error(tgi: httpx.AsyncClient) -> None:
    resp = await invoke(tgi, "tgi-3.2.0", {"messages": ASK, "tools": TOOLS, "tool_choice": "nope"})
    assert tool_error(resp) == {"error": "Tool error: Tool with name nope not found", "error_type": "tool_error"}


async def test_tools_and_response_format_are_mutually_exclusive(tgi: httpx.AsyncClient) -> None:
    fmt = {"type": "json", "value": {"properties": {"a": {"type": "string"}}}}
    for choice in ("auto", "none"):
        body = {"messages": ASK, "tools": TOOLS, "tool_choice": choice, "response_format": fmt}
        resp = await invoke(tgi, "tgi-3.2.0", body)
        assert tool_error(resp)["error"] == "Tool error: Grammar and tools are mutually exclusive"


async def test_grammar_disabled_refuses_tools(tgi: httpx.AsyncClient) -> None:
    resp = await invoke(tgi, "no-grammar", {"messages": ASK, "tools": TOOLS})
    assert tool_error(resp) == {"error": "Input validation error: grammar is not supported", "error_type": "validation"}


async def test_cut_off_call_is_a_parse_tool_error(tgi: httpx.AsyncClient) -> None:
    resp = await invoke(tgi, "tgi-3.2.0", {"messages": ASK, "tools": TOOLS, "max_tokens": 2})
    assert tool_error(resp)["error"].startswith("Tool error: Failed to parse generated text")


@pytest.mark.parametrize("message", [
    {"role": "assistant", "content": None},  # neither content nor tool_calls
    {"role": "assistant", "tool_calls": [{"id": 1, "type": "function", "function": {"name": "f", "arguments": {}}}]},
])
async def test_messages_that_do_not_deserialize(tgi: httpx.AsyncClient, message: Any) -> None:
    resp = await invoke(tgi, "tgi-3.2.0", {"messages": [*ASK, message]})
    assert resp.json()["OriginalMessage"].endswith("did not match any variant of untagged enum SagemakerRequest")


async def test_tools_count_in_prompt_tokens(tgi: httpx.AsyncClient) -> None:
    with_tools = (await chat(tgi, "3.2.0"))["usage"]["prompt_tokens"]
    without = (await chat(tgi, "3.2.0", tool_choice="none"))["usage"]["prompt_tokens"]
    assert with_tools > without + 50
