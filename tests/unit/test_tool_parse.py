"""The emulation's reading of model output, property-tested: every tool format parses with and without Meta's
special tokens and code fences; a stream cut anywhere reads as the whole text does; arbitrary and broken text
is never a call it should not be, and never an exception."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.canonical import Choice, TokenDelta, Tool, ToolCall, ToolCallEvent, ToolChoice
from service.pipeline.outputs import StreamReader, read_choice
from service.pipeline.tooling import Path, Treatment
from service.prompts.tool_parse import ParsedCall, call_prefix, extract_json, parse_calls
from service.prompts.tools import TOOL_FORMATS

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
SCALARS = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=20), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
ARGS = st.dictionaries(NAMES, SCALARS, max_size=4)
CALLS = st.lists(st.tuples(NAMES, ARGS), min_size=1, max_size=3)
WRAPPERS = st.sampled_from([("", ""), ("<|python_tag|>", ""), ("", "<|eom_id|>"), ("<|python_tag|>", "<|eot_id|>"),
                            ("```json\n", "\n```"), ("  \n", " \n")])


def render(fmt: str, calls: list[tuple[str, dict[str, Any]]]) -> str:
    return TOOL_FORMATS[fmt].replay([ToolCall("x", n, json.dumps(a)) for n, a in calls])


@given(calls=CALLS, fmt=st.sampled_from(["llama3_function", "llama32_pythonic"]), wrap=WRAPPERS)
def test_every_format_parses_back(calls: list[tuple[str, dict[str, Any]]], fmt: str, wrap: tuple[str, str]) -> None:
    text = wrap[0] + render(fmt, calls) + wrap[1]
    assert parse_calls(text) == [ParsedCall(n, a) for n, a in calls]


def test_pythonic_names_that_python_cannot_read_are_read() -> None:
    # OpenAI function and JSON Schema property names are not Python identifiers: keywords and hyphens are valid
    text = '[class(if=1, for-each="a, b(c)"), get-weather(city="or(")]'
    assert parse_calls(text) == [ParsedCall("class", {"if": 1, "for-each": "a, b(c)"}),
                                 ParsedCall("get-weather", {"city": "or("})]


def test_pythonic_calls_with_unpacked_arguments_are_not_calls() -> None:
    assert parse_calls("[f(**x)]") is None
    assert parse_calls("[f(1)]") is None


@given(name=NAMES, args=ARGS, wrap=WRAPPERS, key=st.sampled_from(["parameters", "arguments"]))
def test_the_json_format_parses_back(name: str, args: dict[str, Any], wrap: tuple[str, str], key: str) -> None:
    text = wrap[0] + json.dumps({"name": name, key: args}) + wrap[1]
    assert parse_calls(text) == [ParsedCall(name, args)]


@given(st.text(max_size=400))
@settings(max_examples=400)
def test_arbitrary_text_never_raises(text: str) -> None:
    calls = parse_calls(text)
    assert calls is None or all(isinstance(c.name, str) and c.name for c in calls)
    extract_json(text)
    call_prefix(text)


@given(calls=CALLS, fmt=st.sampled_from(["llama3_function", "llama32_pythonic"]), cut=st.integers(1, 10**6))
def test_broken_calls_are_not_calls(calls: list[tuple[str, dict[str, Any]]], fmt: str, cut: int) -> None:
    text = render(fmt, calls)
    truncated = text[: cut % len(text)]
    parsed = parse_calls(truncated)
    assert parsed is None or parsed != [ParsedCall(n, a) for n, a in calls]


TOOL = Tool("get_weather", None, {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]})
AUTO = Treatment(Path.PROMPT, offered=(TOOL,), choice=ToolChoice("auto"))


def _stream(text: str, cuts: list[int]) -> tuple[str, list[ToolCallEvent]]:
    reader = StreamReader(AUTO)
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    out: list[TokenDelta | ToolCallEvent] = []
    for a, b in itertools.pairwise(bounds):
        out += reader.push(TokenDelta(text[a:b]))
    out += reader.finish()
    return "".join(e.text for e in out if isinstance(e, TokenDelta)), [e for e in out if isinstance(e, ToolCallEvent)]


CALL_TEXTS = st.builds(lambda city, pre, post: pre + json.dumps({"name": "get_weather", "parameters": {"city": city}})
                       + post, st.text(max_size=15), st.sampled_from(["", "<|python_tag|>", " "]),
                       st.sampled_from(["", "<|eot_id|>", "\n"]))


@given(text=st.one_of(CALL_TEXTS, st.text(max_size=200)), cuts=st.lists(st.integers(0, 10**6), max_size=8))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_stream_cut_anywhere_reads_as_the_whole_text(text: str, cuts: list[int]) -> None:
    streamed_text, streamed_calls = _stream(text, cuts)
    whole = read_choice(AUTO, Choice(text, None))
    assert isinstance(whole, Choice)  # under auto, nothing is ever rejected
    expected = [(c.name, c.arguments) for c in whole.tool_calls]
    assert [(e.call.name, e.call.arguments) for e in streamed_calls] == expected
    assert streamed_text == whole.text  # text relayed as it came, or the call and no text
