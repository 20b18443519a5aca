"""TGI grammar (generate) and response_format (Messages API), logprobs, and images for a vision endpoint."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from service.simulator.app import create_simulator_app
from service.simulator.model import DEMO_ENDPOINTS, SimEndpoint
from tests.simulator.conftest import BASE, TGI, invoke, payload, sse_events

VISION = "jumpgate-demo-tgi-llama32-11b-vision"
PERSON = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 130},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
    "address": {"$ref": "#/$defs/Address"}, "nick": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    "required": ["name", "age", "tags", "address"], "additionalProperties": False,
    "$defs": {"Address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                          "required": ["zip"]}}}


def png(width: int = 2, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    endpoints = {**DEMO_ENDPOINTS, "tgi-3.2": SimEndpoint("tgi-3.2", "tgi", version="3.2.0"),
                 "no-grammar": SimEndpoint("no-grammar", "tgi", grammar=False)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_simulator_app(endpoints)),
                                 base_url=BASE) as c:
        yield c


def validation(resp: httpx.Response) -> str:
    assert resp.status_code == 424, resp.text
    body = orjson.loads(resp.json()["OriginalMessage"])
    assert body["error_type"] == "validation"
    return str(body["error"])


@pytest.mark.parametrize("seed", range(4))
async def test_generate_json_grammar_answers_a_valid_instance(sim: httpx.AsyncClient, seed: int) -> None:
    params = {"grammar": {"type": "json", "value": PERSON}, "max_new_tokens": 200, "return_full_text": False,
              "do_sample": True, "seed": seed}
    [result] = (await invoke(sim, TGI, {"inputs": "Make up 'Ada', aged 36.", "parameters": params})).json()
    value = json.loads(result["generated_text"])
    jsonschema.validate(value, PERSON)
    assert value["name"] == "Ada" and value["age"] == 36


async def test_generate_grammar_reads_values_from_the_user_turn(sim: httpx.AsyncClient) -> None:
    tools = json.dumps({"name": "person", "parameters": {"properties": {"age": {"exclusiveMaximum": 1000}}}})
    prompt = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + tools
              + "\n\nMake up 'Ada', aged 36.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    params = {"grammar": {"type": "json", "value": PERSON}, "max_new_tokens": 200, "return_full_text": False}
    [result] = (await invoke(sim, TGI, {"inputs": prompt, "parameters": params})).json()
    value = json.loads(result["generated_text"])
    assert value["name"] == "Ada" and value["age"] == 36  # not "person" and 1000 from the definitions


async def test_grammar_value_as_a_json_string_and_regex(sim: httpx.AsyncClient) -> None:
    params = {"grammar": {"type": "json_object", "value": json.dumps(PERSON)}, "return_full_text": False}
    [result] = (await invoke(sim, TGI, {"inputs": "x", "parameters": params})).json()
    jsonschema.validate(json.loads(result["generated_text"]), PERSON)
    params = {"grammar": {"type": "regex", "value": r"(yes|no), [0-9]{3}"}, "return_full_text": False}
    [result] = (await invoke(sim, TGI, {"inputs": "x", "parameters": params})).json()
    assert re.fullmatch(r"(yes|no), [0-9]{3}", result["generated_text"])


@pytest.mark.parametrize(("grammar", "message"), [
    ({"type": "json", "value": {"type": "object"}}, "grammar is not valid: Grammar must have a 'properties' field"),
    ({"type": "json", "value": {"properties": {"a": {"type": 5}}}}, "grammar is not valid: "),
    ({"type": "json", "value": "{not json"}, "grammar is not valid: "),
])
async def test_grammar_tgi_cannot_compile(sim: httpx.AsyncClient, grammar: Any, message: str) -> None:
    resp = await invoke(sim, TGI, {"inputs": "x", "parameters": {"grammar": grammar}})
    assert validation(resp).startswith(f"Input validation error: {message}")


async def test_grammar_disabled(sim: httpx.AsyncClient) -> None:
    resp = await invoke(sim, "no-grammar", {"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "a"}}})
    assert validation(resp) == "Input validation error: grammar is not supported"


@pytest.mark.parametrize("fmt", [
    {"type": "json_object"},  # OpenAI's shape: no `value`
    {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
])
async def test_openai_response_format_shapes_do_not_deserialize(sim: httpx.AsyncClient, fmt: Any) -> None:
    resp = await invoke(sim, TGI, {"messages": [{"role": "user", "content": "hi"}], "response_format": fmt})
    assert resp.json()["OriginalMessage"].endswith("did not match any variant of untagged enum SagemakerRequest")


async def test_json_schema_response_format_only_from_3_3(sim: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": "Who is 'Bo', 7?"}], "max_tokens": 300,
            "response_format": {"type": "json_schema", "value": {"name": "p", "schema": PERSON}}}
    message = (await invoke(sim, TGI, body)).json()["choices"][0]["message"]
    jsonschema.validate(json.loads(message["content"]), PERSON)
    old = await invoke(sim, "tgi-3.2", body)
    assert old.json()["OriginalMessage"].endswith("did not match any variant of untagged enum SagemakerRequest")
    body["response_format"] = {"type": "json", "value": PERSON}
    content = (await invoke(sim, "tgi-3.2", body)).json()["choices"][0]["message"]["content"]
    assert json.loads(content)["name"] == "Bo"


async def test_chat_logprobs_include_eos_and_no_bytes(sim: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 3, "max_tokens": 60,
            "temperature": 0}
    choice = (await invoke(sim, TGI, body)).json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert content[-1]["token"] == "</s>"  # special tokens are not filtered
    assert all(set(e) == {"token", "logprob", "top_logprobs"} and len(e["top_logprobs"]) == 3 for e in content)
    assert "".join(e["token"] for e in content[:-1]) == choice["message"]["content"]
    events = sse_events(payload((await invoke(sim, TGI, {**body, "stream": True}, stream=True)).content))
    assert [e["choices"][0]["logprobs"]["content"][0] for e in events[:-1]] == content


async def test_top_logprobs_above_the_cap(sim: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 6}
    assert validation(await invoke(sim, TGI, body)) == ("Input validation error: `top_n_tokens` must be >= 0 and "
                                                        "<= 5. Given: 6")


def image_chat(*urls: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "What is this?"}]}],
            "max_tokens": 10}


async def test_vision_model_takes_a_data_uri_and_counts_image_tokens(sim: httpx.AsyncClient) -> None:
    with_image = (await invoke(sim, VISION, image_chat(data_uri(png())))).json()
    text_only = (await invoke(sim, VISION, image_chat())).json()
    assert with_image["usage"]["prompt_tokens"] == text_only["usage"]["prompt_tokens"] + 1601


@pytest.mark.parametrize(("url", "message"), [
    (data_uri(b"not an image"), "invalid image: The image format could not be determined"),
    ("data:image/png;base64,@@@", "base64 encoding is invalid"),
    ("https://example.com/cat.png", "Could not fetch image"),
])
async def test_vision_model_checks_what_it_received(sim: httpx.AsyncClient, url: str, message: str) -> None:
    assert validation(await invoke(sim, VISION, image_chat(url))).startswith(f"Input validation error: {message}")


async def test_vision_model_image_count_and_payload_limit(sim: httpx.AsyncClient) -> None:
    two = image_chat(data_uri(png()), data_uri(png()))
    assert "at most 1 image(s)" in validation(await invoke(sim, VISION, two))
    big = image_chat(data_uri(png() + b"\x00" * 1_600_000))
    resp = await invoke(sim, VISION, big)
    assert resp.json()["OriginalStatusCode"] == 413
    assert resp.json()["OriginalMessage"] == "Failed to buffer the request body: length limit exceeded"


async def test_generate_markdown_image_on_vision_and_text_models(sim: httpx.AsyncClient) -> None:
    inputs = f"![]({data_uri(png())})What is this?"
    ok = await invoke(sim, VISION, {"inputs": inputs, "parameters": {"max_new_tokens": 3, "details": True}})
    assert ok.status_code == 200
    # A text-only model does not parse the markdown: the data URI is just prompt text.
    params = {"max_new_tokens": 3, "decoder_input_details": True}
    with_uri = (await invoke(sim, TGI, {"inputs": inputs, "parameters": params})).json()[0]["details"]["prefill"]
    plain = (await invoke(sim, TGI, {"inputs": "What is this?", "parameters": params})).json()[0]["details"]["prefill"]
    assert "data" in [t["text"] for t in with_uri] and len(with_uri) > len(plain) + 5
