"""Text containers that understand Meta's Llama 3.x tool prompts and JSON instructions, and the
``tool_output`` fault switch, over the real wire (TGI generate, LMI inputs, LMI NeuronX)."""

from __future__ import annotations

import ast
import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.simulator.conftest import LMI, NEURON, TGI, control, invoke, json_lines, payload, sse_events

WEATHER = {"name": "get_weather", "description": "Get the weather at a location.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "days": {"type": "integer", "minimum": 1}},
                          "required": ["city", "days"]}}
ADDER = {"name": "add", "description": "Add two integers.",
         "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                        "required": ["a", "b"]}}
H = "<|start_header_id|>{}<|end_header_id|>\n\n"
JSON31 = ('Given the following functions, please respond with a JSON for a function call with its proper arguments '
          'that best answers the given prompt.\n\nRespond in the format {"name": function name, "parameters": '
          'dictionary of argument name and its value}. Do not use variables.\n\n')
PYTHONIC = ("If you decide to invoke any of the function(s), you MUST put it in the format of [func_name1("
            "params_name1=params_value1, params_name2=params_value2...), func_name2(params)]\n"
            "Here is a list of functions in JSON format that you can invoke.\n\n")
FUNCTION_TAG = ("If a you choose to call a function ONLY reply in the following format:\n"
                "<function={function_name}>{parameters}</function>\n")


def llama3(system: str, user: str, *, result: str | None = None) -> str:
    prompt = f"<|begin_of_text|>{H.format('system')}{system}<|eot_id|>{H.format('user')}{user}<|eot_id|>"
    if result is not None:
        prompt += f"{H.format('assistant')}<|python_tag|>{{\"name\": \"add\"}}<|eom_id|>"
        prompt += f"{H.format('ipython')}{result}<|eot_id|>"
    return prompt + H.format("assistant")


def json31(question: str, **kwargs: Any) -> str:
    tools = "\n\n".join(json.dumps({"type": "function", "function": t}, indent=4) for t in (WEATHER, ADDER))
    return llama3("Environment: ipython\nCutting Knowledge Date: December 2023", f"{JSON31}{tools}\n\n{question}",
                  **kwargs)


async def tgi_text(client: httpx.AsyncClient, prompt: str, **params: Any) -> str:
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 300, "return_full_text": False, **params}}
    return str((await invoke(client, TGI, body)).json()[0]["generated_text"])


async def test_llama31_json_call_on_tgi_skips_the_python_tag(client: httpx.AsyncClient) -> None:
    text = await tgi_text(client, json31("What is 3 + 4?"))
    assert json.loads(text) == {"name": "add", "parameters": {"a": 3, "b": 4}}
    body = {"inputs": json31("What is 3 + 4?"), "parameters": {"max_new_tokens": 300}, "stream": True}
    events = sse_events(payload((await invoke(client, TGI, body, stream=True)).content))
    assert events[0]["token"] == {**events[0]["token"], "text": "<|python_tag|>", "special": True}


async def test_tool_choice_by_mention_and_arguments_from_the_question(client: httpx.AsyncClient) -> None:
    value = json.loads(await tgi_text(client, json31("What's the weather in 'Paris' for 3 days?")))
    assert value == {"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}


async def test_after_an_ipython_result_the_model_answers_text(client: httpx.AsyncClient) -> None:
    text = await tgi_text(client, json31("What is 3 + 4?", result='{"output": 7}'))
    with pytest.raises(ValueError):
        json.loads(text)


async def test_pythonic_on_lmi_can_call_several_tools(client: httpx.AsyncClient) -> None:
    tools = json.dumps([WEATHER, ADDER])
    prompt = llama3(f"{PYTHONIC}{tools}", "Add 2 and 5, then get_weather for 'Oslo' over 4 days")
    text = (await invoke(client, LMI, {"inputs": prompt, "parameters": {"max_new_tokens": 300}})).json()
    calls = ast.parse(text["generated_text"], mode="eval").body
    assert isinstance(calls, ast.List)
    assert [c.func.id for c in calls.elts] == ["add", "get_weather"]  # type: ignore[attr-defined]


async def test_function_tag_format_on_neuron(client: httpx.AsyncClient) -> None:
    prompt = llama3(f"{FUNCTION_TAG}Use the function 'get_weather' to: {json.dumps(WEATHER)}",
                    "Weather in 'Rome' for 2 days?")
    text = (await invoke(client, NEURON, {"inputs": prompt, "parameters": {"max_new_tokens": 200}})).json()
    assert text["generated_text"] == '<function=get_weather>{"city": "Rome", "days": 2}</function>'


async def test_calls_are_deterministic_per_seed_and_prompt(client: httpx.AsyncClient) -> None:
    prompt = json31("Do something useful")
    first = await tgi_text(client, prompt, do_sample=True, seed=1)
    assert first == await tgi_text(client, prompt, do_sample=True, seed=1)
    assert json.loads(first)["name"] in ("get_weather", "add")


SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "year": {"type": "integer"},
                                           "genres": {"type": "array", "items": {"type": "string"}}},
          "required": ["title", "year", "genres"]}


async def test_json_instruction_with_a_schema_is_answered_with_an_instance(client: httpx.AsyncClient) -> None:
    system = f"Reply with a single JSON object that matches this JSON Schema: {json.dumps(SCHEMA)}"
    lines = json_lines(payload((await invoke(client, LMI, {"inputs": llama3(system, "'Alien', 1979"), "stream": True,
                                                           "parameters": {"max_new_tokens": 200}},
                                             stream=True)).content))
    value = json.loads(lines[-1]["generated_text"])
    jsonschema.validate(value, SCHEMA)
    assert value["title"] == "Alien" and value["year"] == 1979


async def test_plain_prompts_are_unaffected(client: httpx.AsyncClient) -> None:
    text = await tgi_text(client, "Tell me about rivers.", max_new_tokens=5)
    assert len(text.split()) == 5


@pytest.mark.parametrize(("kind", "check"), [
    ("malformed", lambda t: not _parses(t)),
    ("invalid_json", lambda t: not _parses(t) and "add" in t),
    ("wrong_name", lambda t: json.loads(t)["name"] == "add_v2"),
    ("bad_arguments", lambda t: json.loads(t)["parameters"] == {"b": 4}),
])
async def test_tool_output_faults(client: httpx.AsyncClient, kind: str, check: Any) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "tool_output": kind, "tool_output_next": 1})
    assert (await tgi_text(client, "Plain prompt", max_new_tokens=3))  # no tool output: counter kept
    assert check(await tgi_text(client, json31("What is 3 + 4?")))
    assert json.loads(await tgi_text(client, json31("What is 3 + 4?")))["name"] == "add"  # used up


@pytest.mark.parametrize("kind", ["malformed", "invalid_json", "bad_arguments"])
async def test_json_faults(client: httpx.AsyncClient, kind: str) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": "*", "tool_output": kind})
    system = f"Reply with a JSON object that matches this JSON Schema: {json.dumps(SCHEMA)}"
    text = await tgi_text(client, llama3(system, "'Alien', 1979"))
    if kind == "bad_arguments":
        assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(json.loads(text))
    else:
        assert not _parses(text)


async def test_fault_spec_validation(client: httpx.AsyncClient) -> None:
    resp = await client.post("/_sim/faults", json={"endpoint": TGI, "tool_output": "garbage"})
    assert resp.status_code == 400 and "tool_output" in resp.text


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


DOLLY = ("Below is an instruction that describes a task, paired with an input that provides further context. Write a "
         "response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n"
         "{context}\n\n### Response:\n\n")


async def test_instruction_format_prompts_are_read_by_their_sections(client: httpx.AsyncClient) -> None:
    tools = "\n\n".join(json.dumps({"type": "function", "function": t}, indent=4) for t in (WEATHER, ADDER))
    prompt = DOLLY.format(instruction=f"{JSON31}{tools}\n\nPlease add 3 and 4.", context="Environment: ipython")
    text = (await invoke(client, LMI, {"inputs": prompt, "parameters": {"max_new_tokens": 300}})).json()
    assert json.loads(text["generated_text"]) == {"name": "add", "parameters": {"a": 3, "b": 4}}
    after = DOLLY.format(instruction=f"{JSON31}{tools}\n\nWhat is 3 + 4?",
                         context='assistant: {"name": "add", "parameters": {"a": 3, "b": 4}}\nipython: 7')
    text = (await invoke(client, LMI, {"inputs": after, "parameters": {"max_new_tokens": 20}})).json()
    assert not _parses(text["generated_text"])  # a result came back: the model answers in words


async def test_json_without_a_schema_uses_the_keys_the_user_names(client: httpx.AsyncClient) -> None:
    ask = "Tell me a joke about cats. Return the result as a JSON with 'setup' and 'punchline' keys."
    value = json.loads(await tgi_text(client, llama3("Answer with one JSON object.", ask)))
    assert set(value) == {"setup", "punchline"} and all(isinstance(v, str) and v for v in value.values())
    value = json.loads(await tgi_text(client, llama3("Answer with one JSON object.", "Name a colour, in JSON.")))
    assert set(value) == {"answer"}
