"""LMI vLLM chat with tools (rolling batch vs async mode), LMI logprob shapes, and the LMI details top_tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from service.simulator.app import create_simulator_app
from service.simulator.model import SimEndpoint
from tests.simulator.conftest import BASE, invoke, json_lines, payload
from tests.simulator.test_tgi_tools import ASK, HISTORY, TOOLS


@pytest.fixture
async def lmi() -> AsyncIterator[httpx.AsyncClient]:
    endpoints = {
        "rolling": SimEndpoint("rolling", "lmi", tool_call_parser="llama3_json"),
        "pythonic": SimEndpoint("pythonic", "lmi", tool_call_parser="pythonic"),
        "async": SimEndpoint("async", "lmi", version="0.35.0", async_mode=True, tool_call_parser="llama3_json"),
        "no-parser": SimEndpoint("no-parser", "lmi"),
        "neuron": SimEndpoint("neuron", "lmi-neuron"),
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_simulator_app(endpoints)),
                                 base_url=BASE) as c:
        yield c


def lmi_error(resp: httpx.Response, status: int = 424) -> str:
    assert resp.status_code == 424, resp.text
    assert resp.json()["OriginalStatusCode"] == status
    return str(orjson.loads(resp.json()["OriginalMessage"])["error"])


async def test_rolling_auto_with_parser_puts_tool_calls_in_the_message(lmi: httpx.AsyncClient) -> None:
    body = (await invoke(lmi, "rolling", {"messages": ASK, "tools": TOOLS})).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert "tool_calls" not in choice
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("chatcmpl-tool-") and call["function"]["name"] == "magic_function"
    assert json.loads(call["function"]["arguments"]) == {"input": 3}


async def test_rolling_named_choice_is_guided_with_eos_finish(lmi: httpx.AsyncClient) -> None:
    choice_arg = {"type": "function", "function": {"name": "get_weather"}}
    body = (await invoke(lmi, "no-parser", {"messages": ASK, "tools": TOOLS, "tool_choice": choice_arg})).json()
    [choice] = body["choices"]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "eos_token"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    lines = json_lines(payload((await invoke(lmi, "no-parser", {"messages": ASK, "tools": TOOLS, "stream": True,
                                                                 "tool_choice": choice_arg}, stream=True)).content))
    calls = [line["choices"][0]["delta"]["tool_calls"][0] for line in lines]
    assert all(c["function"]["name"] == "get_weather" and "id" not in c and "type" not in c for c in calls)
    assert "location" in json.loads("".join(c["function"]["arguments"] for c in calls))


async def test_rolling_refusals(lmi: httpx.AsyncClient) -> None:
    resp = await invoke(lmi, "rolling", {"messages": ASK, "tools": TOOLS, "tool_choice": "required"})
    assert lmi_error(resp) == 'tool_choice = "required" is not supported!'
    resp = await invoke(lmi, "no-parser", {"messages": ASK, "tools": TOOLS})
    assert lmi_error(resp).startswith('"auto" tool choice requires --enable-auto-tool-choice')


async def test_rolling_stream_of_a_call(lmi: httpx.AsyncClient) -> None:
    resp = await invoke(lmi, "rolling", {"messages": ASK, "tools": TOOLS, "stream": True}, stream=True)
    lines = json_lines(payload(resp.content))
    first = lines[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["id"].startswith("chatcmpl-tool-") and first["function"] == {"name": "magic_function"}
    arguments = "".join(line["choices"][0]["delta"]["tool_calls"][0]["function"].get("arguments", "")
                        for line in lines)
    assert json.loads(arguments) == {"input": 3}
    assert lines[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_async_mode_speaks_vllm_and_supports_required(lmi: httpx.AsyncClient) -> None:
    body = (await invoke(lmi, "async", {"messages": ASK, "tools": TOOLS, "tool_choice": "required"})).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "magic_function"
    text = (await invoke(lmi, "async", {"messages": HISTORY, "tools": TOOLS})).json()["choices"][0]
    assert text["message"]["tool_calls"] == [] and text["finish_reason"] in ("stop", "length")
    raw = payload((await invoke(lmi, "async", {"messages": ASK, "stream": True}, stream=True)).content)
    assert raw.endswith(b"}\n\n")  # chunks as JSON lines, then the empty line that stands for [DONE]


async def test_pythonic_parser_calls_every_mentioned_tool(lmi: httpx.AsyncClient) -> None:
    ask = [{"role": "user", "content": "magic_function(3) and get_weather for 'Paris' please"}]
    choice = (await invoke(lmi, "pythonic", {"messages": ask, "tools": TOOLS})).json()["choices"][0]
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["magic_function", "get_weather"]


@pytest.mark.parametrize("kind", ["malformed", "invalid_json"])
async def test_faults_leave_unparsable_text_as_content(lmi: httpx.AsyncClient, kind: str) -> None:
    await lmi.post("/_sim/faults", json={"endpoint": "rolling", "tool_output": kind, "tool_output_next": 1})
    choice = (await invoke(lmi, "rolling", {"messages": ASK, "tools": TOOLS})).json()["choices"][0]
    assert "tool_calls" not in choice["message"] and "magic_function" in choice["message"]["content"]
    again = (await invoke(lmi, "rolling", {"messages": ASK, "tools": TOOLS})).json()["choices"][0]
    assert again["finish_reason"] == "tool_calls"  # the counter is used up


async def test_wrong_name_fault_is_passed_through_by_the_parser(lmi: httpx.AsyncClient) -> None:
    await lmi.post("/_sim/faults", json={"endpoint": "*", "tool_output": "wrong_name"})
    choice = (await invoke(lmi, "rolling", {"messages": ASK, "tools": TOOLS})).json()["choices"][0]
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "magic_function_v2"


async def test_rolling_chat_logprobs_quirks(lmi: httpx.AsyncClient) -> None:
    msgs = [{"role": "user", "content": "Zürich?"}]
    body = {"messages": msgs, "logprobs": True, "top_logprobs": 4, "max_tokens": 8}
    content = (await invoke(lmi, "rolling", body)).json()["choices"][0]["logprobs"]["content"]
    assert all(len(e["top_logprobs"]) == 1 for e in content)  # one "top" entry whatever top_logprobs
    assert all(e["bytes"] == [ord(c) for c in e["token"]] for e in content)  # code points, not UTF-8
    lines = json_lines(payload((await invoke(lmi, "rolling", {**body, "stream": True}, stream=True)).content))
    first = lines[0]["choices"][0]["logprobs"]
    assert isinstance(first, list) and isinstance(first[0]["content"][0]["top_logprobs"][0]["token"], float)


async def test_async_chat_logprobs_are_vllm_shaped(lmi: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": "Zürich?"}], "logprobs": True, "top_logprobs": 4,
            "max_tokens": 8}
    content = (await invoke(lmi, "async", body)).json()["choices"][0]["logprobs"]["content"]
    assert all(len(e["top_logprobs"]) == 4 and e["bytes"] == list(e["token"].encode()) for e in content)


async def test_inputs_details_top_tokens(lmi: httpx.AsyncClient) -> None:
    params = {"details": True, "top_n_tokens": 3, "max_new_tokens": 4}
    details = (await invoke(lmi, "rolling", {"inputs": "hi", "parameters": params})).json()["details"]
    assert len(details["top_tokens"]) == 4 and all(len(t) == 3 for t in details["top_tokens"])
    lines = json_lines(payload((await invoke(lmi, "rolling", {"inputs": "hi", "parameters": params,
                                                              "stream": True}, stream=True)).content))
    assert "top_tokens" not in lines[0] and len(lines[-1]["details"]["top_tokens"]) == 4


async def test_neuron_chat_silently_drops_tools_and_refuses_null_content(lmi: httpx.AsyncClient) -> None:
    choice = (await invoke(lmi, "neuron", {"messages": ASK, "tools": TOOLS, "tool_choice": "required"})).json()
    message = choice["choices"][0]["message"]
    assert "tool_calls" not in message and isinstance(message["content"], str)
    resp = await invoke(lmi, "neuron", {"messages": HISTORY, "tools": TOOLS})
    assert "content" in lmi_error(resp)
