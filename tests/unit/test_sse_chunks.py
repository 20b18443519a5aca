"""Token chunks built from a per-stream template are byte for byte the chunks built as dicts and dumped."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.sse import SHAPES, ChunkShape, frame
from service.canonical import GenerationRequest, SamplingParams, TokenDelta
from service.pipeline.streaming import AnswerStream

HOSTILE = ['plain', '"quoted"', "back\\slash", "\x00nul", "tab\tnew\nline\r", "é ü 漢字 🦜", "\u2028\u2029",
           "</script>", "", " ", "\x00", '"\\u0000"', "a" * 4096]


def shape(api: str, *, logprobs: bool = False, model: str = 'm"odel\\x') -> ChunkShape:
    req = GenerationRequest(model=model, api=api, params=SamplingParams(), prompt="p",  # type: ignore[arg-type]
                            request_id="rid-1")
    plan = SimpleNamespace(logprobs=object() if logprobs else None)
    stream = SimpleNamespace(plan=plan, endpoint=SimpleNamespace(id="ep"))
    return SHAPES[api](req, cast(AnswerStream, stream))


@pytest.mark.parametrize("api", sorted(SHAPES))
@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("index", [0, 1, 7])
def test_template_frame_equals_dumped_chunk(api: str, text: str, index: int) -> None:
    templated, dumped = shape(api), shape(api)
    delta = TokenDelta(text, index)
    assert templated.token_frame(delta) == frame(dumped.token(delta))
    assert templated.token_frame(delta) == templated.token_frame(delta)  # the cached template, used again


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(), min_size=1, max_size=8))
def test_template_frames_equal_dumped_chunks_for_any_text(texts: list[str]) -> None:
    templated, dumped = shape("chat"), shape("chat")
    for text in texts:
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            continue  # lone surrogates are not UTF-8: orjson refuses them either way (decoders never produce them)
        assert templated.token_frame(TokenDelta(text)) == frame(dumped.token(TokenDelta(text)))


def test_streams_with_logprobs_are_not_templated() -> None:
    s = shape("chat", logprobs=True)
    calls: list[Any] = []
    original = s.token

    def counting(delta: TokenDelta) -> dict[str, Any]:
        calls.append(delta)
        return original(delta)

    s.token = counting  # type: ignore[method-assign]
    s.token_frame(TokenDelta("x"))
    s.token_frame(TokenDelta("y"))
    assert len(calls) == 2, "with log-probabilities every chunk is built whole"
