"""The decoders' plain-token path (`push_plain`, adapters/plain.py) against the general one (`feed`).

Whatever a part holds and however the stream is cut, a part written straight out is one the general path reads as
exactly one plain text delta, written as the SSE layer's template would write it; every other part reaches the
pipeline as the general path's events (or raises its error); the bytes counted and the decoder's state stay the
same."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from service import adapters
from service.adapters.base import StreamDecoder, streams
from service.adapters.plain import PlainOut
from service.canonical import StreamEvent, TokenDelta
from service.errors import UpstreamStreamError

HEAD, TAIL = b'data: {"choices":[{"delta":{"content":', b"}}]}\n\n"
SCHEMAS = ("tgi", "lmi", "neuron")

texts_st = st.one_of(st.sampled_from(["Hel", " lo", "", "😀", '"q"', "\\", "\n", "\u2028", "a\x00b", "é"]),
                     st.text(max_size=6))
token_st = st.fixed_dictionaries({"id": st.integers(0, 9), "text": texts_st}, optional={
    "special": st.sampled_from([False, True, None, 0, 1]),
    "special_token": st.sampled_from([False, True, None]),
    "logprob": st.just(-0.5), "log_prob": st.just(-0.5)})
object_st = st.fixed_dictionaries({}, optional={
    "index": st.integers(0, 3),
    "token": st.one_of(token_st, st.sampled_from([None, "x", 3, [], {}])),
    "generated_text": st.sampled_from([None, "", "Hello"]),
    "details": st.sampled_from([None, {}, {"finish_reason": "length", "generated_tokens": 2, "input_length": 3},
                                {"finish_reason": "error"}]),
    "error": st.sampled_from([None, "CUDA OOM"]),
    "outputs": st.sampled_from([None, [], ["a"]]),
    "top_tokens": st.just([]),
    "extra": st.just(1)})


def _line(obj: Any, style: str) -> bytes:
    body = json.dumps(obj, ensure_ascii=False)
    return {"sse": f"data:{body}\n\n", "sse_space": f"data: {body}\n\n", "jsonl": f"{body}\n",
            "crlf": f"data:{body}\r\n\r\n", "jsonl_crlf": f"{body}\r\n"}[style].encode()


raw_st = st.sampled_from([b"data:[DONE]\n\n", b":\n\n", b"data:{not json\n\n", b'data:"text"\n\n', b"[1]\n",
                          b'{"token":{"text":"a"}}', b'data:{"token":{"text":"b"}}\n\n\n', b"\n"])
# the usual token: a text-only object (TGI's nulls, or LMI's bare token), most parts in a real stream
usual_st = st.builds(lambda text, nulls: {"index": 1, "token": {"id": 1, "text": text, "special": False},
                                          **({"generated_text": None, "details": None} if nulls else {})},
                     texts_st, st.booleans())
styles_st = st.sampled_from(["sse", "sse_space", "jsonl", "crlf", "jsonl_crlf"])
usual_part_st = st.tuples(usual_st, st.sampled_from(["sse", "jsonl"])).map(lambda p: _line(*p))
any_part_st = st.tuples(object_st, styles_st).map(lambda p: _line(*p))
part_st = st.one_of(usual_part_st, usual_part_st, usual_part_st, any_part_st, raw_st)


def _decoder(schema: str) -> StreamDecoder:
    adapter = adapters.get(schema)
    assert streams(adapter)
    return adapter.stream_decoder()


def _general(decoder: StreamDecoder, part: bytes) -> object:
    try:
        return decoder.feed(part)
    except UpstreamStreamError as exc:
        return ("raised", exc.message)


class _Out:
    """A PlainOut and what was written through it or handed to the general path's receiver."""

    def __init__(self, answer: bool = True, live: bool = True) -> None:
        self.written: list[bytes] = []
        self.events: list[StreamEvent] = []
        self.answer = answer
        self.times = iter(range(1, 1_000_000))
        self.out = PlainOut(HEAD, TAIL, self._write, [], [], lambda: float(next(self.times)), live)

    def _write(self, data: bytes) -> bool:
        self.written.append(data)
        return self.answer

    def on_events(self, events: list[StreamEvent]) -> bool:
        self.events.extend(events)
        return self.answer


def _plain(decoder: StreamDecoder, out: _Out, part: bytes) -> object:
    try:
        return decoder.push_plain(out.out, out.on_events, part)
    except UpstreamStreamError as exc:
        return ("raised", exc.message)


@settings(max_examples=400, deadline=None)
@given(schema=st.sampled_from(SCHEMAS),
       parts=st.lists(st.tuples(part_st, st.one_of(st.just(1 << 20), st.integers(0, 200))), max_size=12),
       answer=st.booleans())
def test_a_part_written_straight_out_is_one_the_general_path_reads_as_one_plain_token(
        schema: str, parts: list[tuple[bytes, int]], answer: bool) -> None:
    plain, general, out = _decoder(schema), _decoder(schema), _Out(answer)
    tokens = 0
    for part, cut in parts:
        pieces = [part] if cut >= len(part) else [part[:cut], part[cut:]]  # whole, or cut anywhere
        for piece in pieces:
            written, events = len(out.written), len(out.events)
            got = _plain(plain, out, piece)
            expected = _general(general, piece)
            if len(out.written) > written:  # straight out: one plain delta, as the template writes it
                [data] = out.written[written:]
                assert expected == [TokenDelta(out.out.texts[-1], 0, ())]
                assert data == HEAD + orjson.dumps(out.out.texts[-1]) + TAIL
                assert got is answer and len(out.events) == events
                tokens += 1
            elif isinstance(expected, tuple):  # the general path's failure, raised the same way
                assert got == expected
            else:
                assert out.events[events:] == expected
                assert got is (answer if expected else True)
            assert plain.received == general.received and plain.done == general.done
            if isinstance(expected, tuple):
                break
        else:
            continue
        break
    assert out.out.tokens == tokens == len(out.out.generated) == len(out.out.texts)
    assert out.out.texts == out.out.generated
    assert out.out.last == (float(tokens) if tokens else None)
    event(f"written straight out: {min(tokens, 3)}+")


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_usual_token_is_written_straight_out(schema: str) -> None:
    """Not a vacuous property: the usual token of each schema (TGI's `data:` event, LMI's JSON line) takes the
    shorter path, with the bytes and time it counts."""
    obj = {"index": 1, "token": {"id": 5, "text": " wörld", "logprob": -0.1, "special": False},
           "generated_text": None, "details": None}
    part = _line(obj, "sse" if schema == "tgi" else "jsonl")
    decoder, out = _decoder(schema), _Out()
    assert decoder.push_plain(out.out, out.on_events, part) is True
    assert out.written == [HEAD + '" wörld"'.encode() + TAIL] and out.events == []
    assert out.out.texts == out.out.generated == [" wörld"] and out.out.tokens == 1 and out.out.last == 1.0
    assert decoder.received == len(part)


@pytest.mark.parametrize("why", ["not live", "log-probabilities", "openai schema"])
def test_without_a_live_out_or_with_log_probabilities_every_part_takes_the_general_path(why: str) -> None:
    schema = "openai" if why == "openai schema" else "tgi"
    decoder, out = _decoder(schema), _Out(live=why != "not live")
    decoder.with_logprobs = why == "log-probabilities"
    part = _line({"token": {"id": 1, "text": "x", "logprob": -0.1, "special": False}, "generated_text": None,
                  "choices": [{"index": 0, "delta": {"content": "x"}}]}, "sse")
    assert decoder.push_plain(out.out, out.on_events, part) is True
    assert out.written == [] and [e.text for e in out.events if isinstance(e, TokenDelta)] == ["x"]
    assert out.out.tokens == 0


def test_a_pause_asked_by_the_socket_comes_back_to_the_read() -> None:
    decoder, out = _decoder("tgi"), _Out(answer=False)
    part = _line({"token": {"id": 1, "text": "x", "special": False}, "generated_text": None}, "sse")
    assert decoder.push_plain(out.out, out.on_events, part) is False
    assert len(out.written) == 1


@pytest.mark.parametrize(("schema", "part"), [
    ("tgi", b'data:{"token":"x","generated_text":null}\n\n'),
    ("tgi", b'data:{"token":{"text":"a"},"generated_text":"a","details":"x"}\n\n'),
    ("lmi", b'{"token":3}\n'),
    ("lmi", b'{"token":{"text":"a"},"outputs":5}\n'),
])
def test_an_event_of_an_unexpected_shape_is_a_stream_error(schema: str, part: bytes) -> None:
    """A `token` or `details` that is not an object is the endpoint's fault, said as such (it was an
    AttributeError, a 500 'internal error' event), on either path and whole or cut."""
    for pieces in ([part], [part[:7], part[7:]]):
        decoder, out = _decoder(schema), _Out()
        with pytest.raises(UpstreamStreamError, match="unexpected shape"):
            for piece in pieces:
                decoder.push_plain(out.out, out.on_events, piece)
