"""Stream decoders: split anywhere (property test), captured fixtures, and in-stream errors."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import adapters
from service.adapters.base import streams
from service.canonical import FinishReason, StreamEnd, StreamEvent, TokenDelta
from service.errors import UpstreamStreamError

FIXTURES = Path(__file__).parent.parent / "fixtures"
STREAMING = ("tgi", "lmi", "neuron", "openai")

# Multi-byte on purpose: Arabic, Armenian, emoji with modifiers, CJK, accented Latin.
ALPHABET = list("ab ") + list("مرحبا") + list("Բարեւ") + ["😀", "👍🏽", "🇫🇷"] + list("日本語é")
tokens_st = st.lists(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=4).map("".join), min_size=1,
                     max_size=30)


def tgi_wire(tokens: list[str], space: bool) -> bytes:
    prefix = "data: " if space else "data:"
    lines = [":\n\n"]  # a keep-alive comment
    for i, text in enumerate(tokens, 1):
        event = {"index": i, "token": {"id": i, "text": text, "logprob": -0.1, "special": False},
                 "generated_text": None, "details": None}
        lines.append(prefix + json.dumps(event, ensure_ascii=False) + "\n\n")
    final = {"index": len(tokens) + 1, "token": {"id": 2, "text": "</s>", "logprob": -0.2, "special": True},
             "generated_text": "".join(tokens),
             "details": {"finish_reason": "eos_token", "generated_tokens": len(tokens) + 1, "seed": None,
                         "input_length": 7}}
    lines.append(prefix + json.dumps(final, ensure_ascii=False) + "\n\n")
    return "".join(lines).encode()


def lmi_wire(tokens: list[str], space: bool) -> bytes:
    lines = [json.dumps({"token": {"id": i, "text": t, "log_prob": -0.1}}, ensure_ascii=False)
             for i, t in enumerate(tokens[:-1])]
    lines.append(json.dumps({"token": {"id": 9, "text": tokens[-1], "log_prob": -0.1},
                             "generated_text": "".join(tokens),
                             "details": {"finish_reason": "length", "generated_tokens": len(tokens),
                                         "inputs": "x"}}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def openai_wire(tokens: list[str], space: bool) -> bytes:
    prefix = "data: " if space else ""  # TGI SSE, or LMI's bare jsonlines_chat
    end = "\n\n" if space else "\n"
    chunks: list[dict[str, Any]] = [{"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": t}, "finish_reason": None}]} for t in tokens]
    chunks.append({"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": 7, "completion_tokens": len(tokens), "total_tokens": 7 + len(tokens)}})
    body = "".join(prefix + json.dumps(c, ensure_ascii=False) + end for c in chunks)
    return (body + ("data: [DONE]\n\n" if space else "")).encode()


WIRES = {"tgi": (tgi_wire, 1, 7), "lmi": (lmi_wire, 0, None), "neuron": (lmi_wire, 0, None),
         "openai": (openai_wire, 0, 7)}


def decode_parts(schema: str, parts: list[bytes]) -> list[StreamEvent]:
    adapter = adapters.get(schema)
    assert streams(adapter)
    decoder = adapter.stream_decoder()
    events: list[StreamEvent] = []
    for part in parts:
        events.extend(decoder.feed(part))
    events.extend(decoder.close())
    return events


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def test_every_streaming_schema_has_a_wire_builder() -> None:
    assert {s for s in adapters.schema_names() if adapters.get(s).can_stream} == set(STREAMING) == set(WIRES)


@settings(max_examples=150, deadline=None)
@given(tokens=tokens_st, points=st.lists(st.integers(0, 10_000), max_size=40),
       schema=st.sampled_from(STREAMING), space=st.booleans())
def test_any_split_decodes_to_the_same_text_and_count(tokens: list[str], points: list[int], schema: str,
                                                       space: bool) -> None:
    build, extra_tokens, prompt = WIRES[schema]
    data = build(tokens, space)
    whole = decode_parts(schema, [data])
    split = decode_parts(schema, cut(data, points))
    assert split == whole
    text = "".join(e.text for e in split if isinstance(e, TokenDelta))
    assert text == "".join(tokens)
    ends = [e for e in split if isinstance(e, StreamEnd)]
    assert len(ends) == 1 and ends[-1] is split[-1]
    assert ends[0].completion_tokens == len(tokens) + extra_tokens
    assert ends[0].prompt_tokens == prompt


def test_byte_at_a_time_split_inside_multibyte_characters() -> None:
    data = tgi_wire(["مرحبا", " 👍🏽", " Բարեւ"], space=False)
    events = decode_parts("tgi", [data[i:i + 1] for i in range(len(data))])
    assert "".join(e.text for e in events if isinstance(e, TokenDelta)) == "مرحبا 👍🏽 Բարեւ"


def sse_of(chunks: list[dict[str, Any]]) -> bytes:
    return "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


@pytest.mark.parametrize(("rel", "usage"), [
    ("tgi/test_completion_prompts/test_chat_openai_usage.json", (39, 3)),
    ("tgi/test_completion_prompts/test_flash_llama_completion_stream_usage.json", None),
])
def test_tgi_chat_stream_fixtures(rel: str, usage: tuple[int, int] | None) -> None:
    chunks = json.loads((FIXTURES / rel).read_text())
    events = decode_parts("openai", cut(sse_of(chunks), [5, 77, 300, 301, 302]))
    expected = "".join((c["choices"][0]["delta"].get("content") or c["choices"][0].get("text") or "")
                       for c in chunks if c["choices"])
    assert "".join(e.text for e in events if isinstance(e, TokenDelta)) == expected
    end = events[-1]
    assert isinstance(end, StreamEnd)
    final_usage = chunks[-1]["usage"]
    assert (end.prompt_tokens, end.completion_tokens) == (final_usage["prompt_tokens"],
                                                           final_usage["completion_tokens"])
    if usage:
        assert (end.prompt_tokens, end.completion_tokens) == usage


def doc_objects(rel: str) -> list[dict[str, Any]]:
    """The JSON objects of an LMI doc example (which has '...' lines and pretty-printed finals)."""
    text = (FIXTURES / rel).read_text().replace("data:", "")
    decoder, objects, at = json.JSONDecoder(), [], 0
    while at < len(text):
        brace = text.find("{", at)
        if brace == -1:
            break
        obj, at = decoder.raw_decode(text, brace)
        objects.append(obj)
    return objects


@pytest.mark.parametrize(("rel", "sse"), [("lmi/lmi_input_output_schema.md.L76-84.txt", False),
                                          ("lmi/lmi_input_output_schema.md.L95-103.txt", True)])
def test_lmi_doc_stream_examples(rel: str, sse: bool) -> None:
    objs = doc_objects(rel)
    prefix = b"data:" if sse else b""
    wire = b"".join(prefix + json.dumps(o).encode() + b"\n" for o in objs)
    events = decode_parts("lmi", cut(wire, [3, 50, 51, 120]))
    assert "".join(e.text for e in events if isinstance(e, TokenDelta)) == "Deep  Learning is field."
    assert events[-1] == StreamEnd(FinishReason.LENGTH, None, 100)


def test_lmi_chat_stream_doc_example_as_jsonlines() -> None:
    objs = doc_objects("lmi/chat_input_output_schema.md.L120-180.txt")
    wire = b"".join(json.dumps(o).encode() + b"\n" for o in objs)
    events = decode_parts("openai", [wire])
    assert events[0] == TokenDelta(" Oh")
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason is FinishReason.LENGTH


def test_lmi_stream_error_line_fails_the_stream() -> None:
    obj = doc_objects("lmi/lmi_input_output_schema.md.L151-155.txt")[0]
    with pytest.raises(UpstreamStreamError, match="lmi endpoint failed mid-stream"):
        decode_parts("lmi", [json.dumps({"token": {"text": "a"}}).encode() + b"\n", json.dumps(obj).encode() + b"\n"])


@pytest.mark.parametrize(("schema", "line"), [
    ("tgi", b'data:{"error":"Request failed during generation: CUDA OOM","error_type":"generation"}\n\n'),
    ("lmi", b'{"code":424,"error":"exception occurred during rolling batch inference"}\n'),
    ("openai", b'data: {"error":{"message":"Input validation error","http_status_code":422}}\n\n'),
])
def test_error_objects_in_a_200_stream_raise(schema: str, line: bytes) -> None:
    with pytest.raises(UpstreamStreamError, match="failed mid-stream"):
        decode_parts(schema, [line])


@pytest.mark.parametrize(("schema", "line"), [
    ("tgi", b'data:{"error":"Request failed during generation: CUDA OOM","error_type":"generation"}\n\n'),
    ("lmi", b'{"code":424,"error":"exception occurred during rolling batch inference"}\n'),
    ("openai", b'data: {"error":{"message":"Input validation error","http_status_code":422}}\n\n'),
])
def test_tokens_before_an_error_in_the_same_bytes_come_out_first(schema: str, line: bytes) -> None:
    """One read may carry tokens and then an error line: the tokens are returned, the error raised next."""
    tokens_wire = WIRES[schema][0](["Hel", "lo ", "😀"], True)
    tokens_only = tokens_wire[:tokens_wire.rindex(b"\n", 0, len(tokens_wire) - 2)] + b"\n"  # drop the final event
    adapter = adapters.get(schema)
    assert streams(adapter)
    decoder = adapter.stream_decoder()
    events = decoder.feed(tokens_only + line)
    assert "".join(e.text for e in events if isinstance(e, TokenDelta)).startswith("Hel")
    with pytest.raises(UpstreamStreamError, match="failed mid-stream"):
        decoder.close()
    with pytest.raises(UpstreamStreamError, match="failed mid-stream"):
        decoder.feed(b"more")  # stays failed


def test_a_line_that_is_not_json_fails_cleanly() -> None:
    with pytest.raises(UpstreamStreamError, match="not JSON"):
        decode_parts("tgi", [b"data:{not json\n\n"])


@settings(max_examples=100, deadline=None)
@given(tokens=tokens_st, schema=st.sampled_from(STREAMING), space=st.booleans())
def test_one_event_per_part_decodes_as_the_whole(tokens: list[str], schema: str, space: bool) -> None:
    """The usual read carries one event (a token): the decoders' shorter path for it gives what the whole gives."""
    data = WIRES[schema][0](tokens, space)
    assert decode_parts(schema, re.findall(rb"[^\n]*\n+", data)) == decode_parts(schema, [data])


def _decoded(step: Any) -> object:
    try:
        return step()
    except UpstreamStreamError as exc:
        return ("raised", exc.message)


@pytest.mark.parametrize("schema", ["tgi", "openai"])
@pytest.mark.parametrize("part", [
    b"data:[DONE]\n\n", b"data: [DONE]\n\n", b"data:{not json\n\n", b"data:[1,2]\n\n", b'data:"text"\n\n',
    b'data:\x0c{"token":{"text":"a"}}\x0c\n\n', b'data:\t{"token":{"text":"t"}}\n\n',
    b'data:  {"token": {"text":"b"}}  \n\n', b'data:{"token":{"text":"c"}}\r\n\r\n', b'data:{"error":"x"}\n\n',
    b'data:{"token":{"text":"d"}}\n\ndata:{"token":{"text":"e"}}\n\n', b"data:\n\n", b'data:{"a":1}\n\n\n',
])
def test_a_part_of_one_event_decodes_as_the_general_path_does(schema: str, part: bytes) -> None:
    """Whatever a one-event part holds, the shorter path gives what the line-by-line path gives (reached by
    feeding the same bytes in two pieces): the same events, the same failure, the same [DONE]."""
    adapter = adapters.get(schema)
    assert streams(adapter)
    whole, pieces = adapter.stream_decoder(), adapter.stream_decoder()
    got = _decoded(lambda: whole.feed(part))
    assert pieces.feed(part[:1]) == []
    assert got == _decoded(lambda: pieces.feed(part[1:]))
    assert whole.done == pieces.done
