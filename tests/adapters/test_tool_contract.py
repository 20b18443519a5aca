"""Tool calls and constrained output in every shape the containers answer (openai-surface.md 1.3, 1.4, 2.2), read
through the adapters and the gateway's normalization: captured TGI snapshots per version, the LMI doc's sample,
and LMI stream shapes written from the reference (tests/fixtures/PROVENANCE.md). Streams are fed cut at every
byte boundary, as SageMaker's PayloadParts may cut them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.adapters.openai_compat import OpenAICompatAdapter
from service.adapters.params import WireParams
from service.adapters.tgi import TgiAdapter
from service.canonical import (
    Choice,
    FinishReason,
    GenerationRequest,
    ImagePart,
    Message,
    SamplingParams,
    StreamEnd,
    StreamEvent,
    TextPart,
    Tool,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
)
from service.errors import UpstreamStreamError
from service.pipeline.outputs import read_choice
from service.pipeline.tooling import Path as Via
from service.pipeline.tooling import Treatment
from service.prompts.render import PromptSpec
from service.transport.base import RawResponse

FIXTURES = Path(__file__).parent.parent / "fixtures"
WEATHER = Tool("get_current_weather", None, {"type": "object", "properties": {
    "location": {"type": "string"}, "format": {"type": "string"}, "city": {"type": "string"},
    "state": {"type": "string"}, "unit": {"type": "string"}}})
NATIVE = Treatment(Via.NATIVE, offered=(WEATHER,), choice=ToolChoice("auto"))


def load(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text())


def decode(body: Any) -> Choice:
    [choice] = OpenAICompatAdapter().decode(RawResponse(orjson.dumps(body), "application/json")).choices
    return choice


def stream(data: bytes, cut: int | None = None) -> list[StreamEvent]:
    """The events of a whole stream, fed as two parts cut at `cut` (or byte by byte when None)."""
    decoder = OpenAICompatAdapter().stream_decoder()
    parts = [data[i:i + 1] for i in range(len(data))] if cut is None else [data[:cut], data[cut:]]
    events = [e for part in parts for e in decoder.feed(part)]
    return events + decoder.close()


def sse(chunks: list[Any]) -> bytes:
    return b"".join(b"data:" + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data:[DONE]\n\n"


@pytest.mark.parametrize(("rel", "name", "arguments"), [
    ("tgi/test_tools_llama/test_flash_llama_grammar_tools_nostream.json", "get_current_weather",
     {"location": "Brooklyn, NY", "format": "fahrenheit"}),
    ("tgi/test_tools_llama/test_flash_llama_grammar_tools_auto_nostream.json", "get_current_weather",
     {"location": "Brooklyn, NY", "format": "fahrenheit"}),
    ("tgi/test_tools_llama/v3.1.1/test_flash_llama_grammar_tools.json", "get_current_weather",
     {"format": "celsius", "location": "Brooklyn, New York"}),  # arguments an object
    ("tgi/test_tools_llama/v1.4.5/test_flash_llama_grammar_tools.json", "tools",
     {"format": "celsius", "location": "New York, NY", "num_days": 14}),  # integer id, `parameters`, name "tools"
    ("lmi/tools/tool_calling.md.sample_output.json", "get_current_weather",
     {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}),  # content "", finish eos_token
    ("lmi/tools/async_nostream.json", "get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}),
])
def test_non_streaming_calls_in_every_shape(rel: str, name: str, arguments: dict[str, Any]) -> None:
    choice = decode(load(rel))
    [call] = choice.tool_calls
    assert call.name == name and json.loads(call.arguments) == arguments
    read = read_choice(NATIVE, choice)
    assert isinstance(read, Choice) and read.finish_reason is FinishReason.TOOL_CALLS
    [normal] = read.tool_calls
    assert normal.id.startswith("call_") and len(normal.id) == 29 and normal.id != call.id
    assert json.loads(normal.arguments) == arguments and read.text == ""


def test_ids_are_unique_per_answer() -> None:
    body = load("tgi/test_tools_llama/test_flash_llama_grammar_tools_nostream.json")
    ids = set()
    for _ in range(50):
        read = read_choice(NATIVE, decode(body))
        assert isinstance(read, Choice)
        ids.add(read.tool_calls[0].id)
    assert len(ids) == 50  # TGI always says "0"


def _one_call(events: list[StreamEvent]) -> tuple[ToolCallEvent, StreamEnd]:
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    ends = [e for e in events if isinstance(e, StreamEnd)]
    assert len(calls) == 1 and len(ends) == 1 and events[-1] is ends[0], events
    return calls[0], ends[0]


def test_tgi_32_stream_without_a_final_chunk() -> None:
    chunks = load("tgi/test_tools_llama/test_flash_llama_grammar_tools_choice_stream.json")
    data = sse(chunks)
    for cut in [None, *range(0, len(data), 97)]:
        call, end = _one_call(stream(data, cut))
        assert call.call.name == "get_current_weather" and call.position == 0
        assert json.loads(call.call.arguments) == {"location": "Brooklyn, NY", "format": "fahrenheit"}
        assert end.finish_reason is None  # TGI sends none after a call; the gateway's reading says tool_calls


def test_tgi_24_to_31_stream_spells_the_whole_constrained_json() -> None:
    data = (FIXTURES / "tgi/test_tools_llama/v3.1.1/stream_required.sse").read_bytes()
    for cut in [None, *range(0, len(data), 131)]:
        call, end = _one_call(stream(data, cut))
        assert call.call.name == "get_current_weather"  # from `_name`; the chunks' name is null
        assert json.loads(call.call.arguments) == {"location": "San Francisco, CA", "format": "celsius"}
        assert end.finish_reason is FinishReason.STOP


def test_tgi_14_stream_without_a_name_is_a_clean_stream_error() -> None:
    last = load("tgi/test_tools_llama/v1.4.5/test_flash_llama_grammar_tools_stream.json")
    with pytest.raises(UpstreamStreamError, match="could not be read"):
        stream(sse([last]))


@pytest.mark.parametrize("rel", ["lmi/tools/rolling_named_stream.jsonl", "lmi/tools/rolling_auto_stream.jsonl"])
def test_lmi_chat_streams(rel: str) -> None:
    data = (FIXTURES / rel).read_bytes()
    for cut in [None, *range(0, len(data), 113)]:
        call, _ = _one_call(stream(data, cut))
        assert call.call.name == "get_current_weather"  # named choice repeats it in every chunk: not concatenated
        assert json.loads(call.call.arguments) == {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}


def test_grammar_constrained_answers_are_json() -> None:
    generate = load("tgi/test_flash_grammar_llama/test_flash_llama_grammar_json.json")
    [choice] = TgiAdapter().decode(RawResponse(orjson.dumps([generate]), "application/json")).choices
    assert isinstance(json.loads(choice.text), dict)
    chat = decode(load("tgi/test_grammar_response_format_llama/test_grammar_response_format_llama_json.json"))
    assert json.loads(chat.text) == {"unit": "fahrenheit", "temperature": [72, 79, 88]} and not chat.tool_calls


def _wire() -> WireParams:
    return WireParams({"max_tokens": 50})


def test_native_requests_carry_openai_tools_history_and_images() -> None:
    history = (Message("user", "Weather?", parts=(TextPart("Weather? "), ImagePart("data:image/png;base64,AAAA"))),
               Message("assistant", "", tool_calls=(ToolCall("call_1", "get_current_weather", '{"city":"Oslo"}'),)),
               Message("tool", "12C", tool_call_id="call_1"))
    req = GenerationRequest(model="m", api="chat", params=SamplingParams(), messages=history, tools=(WEATHER,),
                            tool_choice=ToolChoice("function", "get_current_weather"))
    body = orjson.loads(OpenAICompatAdapter().encode(req, PromptSpec(), _wire()).body)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather? "},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_current_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "content": "12C", "tool_call_id": "call_1"}]
    assert body["tools"] == [{"type": "function", "function": {"name": "get_current_weather", "description": "",
                                                               "parameters": dict(WEATHER.parameters)}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_current_weather"}}
    assert "response_format" not in body


def test_a_constraint_is_tgis_grammar_on_both_routes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    msg = Message("user", "Hi", parts=(ImagePart("data:image/png;base64,AAAA"), TextPart("Hi")))
    req = GenerationRequest(model="m", api="chat", params=SamplingParams(), messages=(msg,), constraint=schema)
    chat = orjson.loads(OpenAICompatAdapter().encode(req, PromptSpec(), _wire()).body)
    assert chat["response_format"] == {"type": "json", "value": schema}  # TGI's shape, not OpenAI's
    generate = orjson.loads(TgiAdapter().encode(req, PromptSpec("llama3"), _wire()).body)
    assert generate["parameters"]["grammar"] == {"type": "json", "value": schema}
    user = "<|start_header_id|>user<|end_header_id|>\n\n![](data:image/png;base64,AAAA)Hi<|eot_id|>"
    assert user in generate["inputs"]
