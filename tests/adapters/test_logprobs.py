"""Token log-probabilities: the containers' shapes (captured fixtures and openai-surface.md section 3) read into
canonical entries, special tokens removed, LMI's malformed chat shapes repaired; the declared caps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from service import adapters
from service.adapters.base import streams
from service.adapters.logprobs import ANY, TokenData, token_data
from service.canonical import TokenDelta, TokenLogprob
from service.transport.base import RawResponse

FIXTURES = Path(__file__).parent.parent / "fixtures"


def raw(data: object) -> RawResponse:
    return RawResponse(orjson.dumps(data), "application/json")


def load(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text())


def streamed(schema: str, wire: bytes) -> list[TokenDelta]:
    adapter = adapters.get(schema)
    assert streams(adapter)
    decoder = adapter.stream_decoder()
    decoder.with_logprobs = True
    events = decoder.feed(wire) + decoder.close()
    return [e for e in events if isinstance(e, TokenDelta)]


def test_tgi_details_tokens_fixture_every_token_with_its_logprob() -> None:
    data = load("tgi/test_flash_llama/test_flash_llama_all_params.json")
    [choice] = adapters.get("tgi").decode_logprobs(raw([data])).choices
    assert choice.logprobs == tuple(TokenLogprob(t["text"], t["logprob"]) for t in data["details"]["tokens"])
    assert adapters.get("tgi").decode(raw([data])).choices[0].logprobs is None  # only read when asked for


def test_tgi_special_eos_token_is_removed() -> None:
    data = load("tgi/test_flash_grammar_llama/test_flash_llama_grammar_json.json")
    [choice] = adapters.get("tgi").decode_logprobs(raw([data])).choices
    tokens = data["details"]["tokens"]
    assert tokens[-1]["special"] and len(choice.logprobs or ()) == len(tokens) - 1
    assert "".join(e.token for e in choice.logprobs or ()) == data["generated_text"]


def tgi_token(i: int, text: str, logprob: float, special: bool = False) -> dict[str, Any]:
    return {"id": i, "text": text, "logprob": logprob, "special": special}


def test_tgi_top_tokens_one_list_per_generated_token() -> None:
    # openai-surface.md 3.2: details.top_tokens = [[{id,text,logprob,special} x k], ...]
    body = [{"generated_text": " Paris", "details": {
        "finish_reason": "eos_token", "generated_tokens": 2, "prefill": [],
        "tokens": [tgi_token(3681, " Paris", -0.11), tgi_token(2, "</s>", -0.3, True)],
        "top_tokens": [[tgi_token(3681, " Paris", -0.11), tgi_token(22852, " Lyon", -3.2)],
                       [tgi_token(2, "</s>", -0.3, True), tgi_token(13, ".", -1.5)]]}}]
    [choice] = adapters.get("tgi").decode_logprobs(raw(body)).choices
    assert choice.logprobs == (TokenLogprob(" Paris", -0.11, (TokenLogprob(" Paris", -0.11),
                                                               TokenLogprob(" Lyon", -3.2))),)


def test_tgi_stream_events_carry_their_token_and_flat_top_tokens() -> None:
    events = [{"index": 1, "token": tgi_token(3681, " Par", -0.5), "top_tokens": [
                  tgi_token(3681, " Par", -0.5), tgi_token(1, " Ly", -1.5)], "generated_text": None, "details": None},
              {"index": 2, "token": tgi_token(2, "</s>", -0.1, True), "top_tokens": [tgi_token(2, "</s>", -0.1, True)],
               "generated_text": " Par", "details": {"finish_reason": "eos_token", "generated_tokens": 2}}]
    wire = b"".join(b"data:" + orjson.dumps(e) + b"\n\n" for e in events)
    [delta] = streamed("tgi", wire)
    assert delta.logprobs == (TokenLogprob(" Par", -0.5, (TokenLogprob(" Par", -0.5), TokenLogprob(" Ly", -1.5))),)


def test_tgi_messages_api_shape_has_no_bytes_and_keeps_eos_which_is_removed() -> None:
    # openai-surface.md 3.2: Messages API logprobs, no `bytes`, the final EOS included, no special flag
    body = {"id": "", "object": "chat.completion", "choices": [{
        "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"},
        "logprobs": {"content": [
            {"token": "Hi", "logprob": -0.2, "top_logprobs": [{"token": "Hi", "logprob": -0.2},
                                                              {"token": "Hello", "logprob": -1.9}]},
            {"token": "<|eot_id|>", "logprob": -0.01, "top_logprobs": []}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    [choice] = adapters.get("openai").decode_logprobs(raw(body)).choices
    assert choice.logprobs == (TokenLogprob("Hi", -0.2, (TokenLogprob("Hi", -0.2), TokenLogprob("Hello", -1.9))),)


def lmi_token(i: int, text: str, logprob: float, special: bool = False) -> dict[str, Any]:
    token: dict[str, Any] = {"id": i, "text": text, "log_prob": logprob}
    if special:
        token["special_token"] = True
    return token


def test_lmi_details_use_log_prob_and_special_token() -> None:
    # openai-surface.md 3.3 and lmi_input_output_schema.md: tokens {id, text, log_prob[, special_token]}
    body = {"generated_text": " Deep", "details": {
        "finish_reason": "eos_token", "generated_tokens": 2, "inputs": "x",
        "tokens": [lmi_token(1, " Deep", -0.7), lmi_token(2, "", -0.1, True)],
        "top_tokens": [[lmi_token(1, " Deep", -0.7), lmi_token(5, " Machine", -1.2)], [lmi_token(2, "", -0.1)]]}}
    [choice] = adapters.get("lmi").decode_logprobs(raw(body)).choices
    assert choice.logprobs == (TokenLogprob(" Deep", -0.7, (TokenLogprob(" Deep", -0.7),
                                                           TokenLogprob(" Machine", -1.2))),)


def test_lmi_token_line_fixture_streams_its_logprob() -> None:
    line = (FIXTURES / "lmi/lmi_input_output_schema.md.L366-372.txt").read_bytes()
    token = json.loads(line)["token"]
    [delta] = streamed("lmi", line.strip().replace(b"\n", b"") + b"\n")
    assert delta.logprobs == (TokenLogprob(token["text"], token["log_prob"]),)


def lmi_chat_chunks() -> list[Any]:
    """The LMI doc's chat stream example: two chunks (valid JSON each) separated by a '...' line."""
    text = (FIXTURES / "lmi/chat_input_output_schema.md.L120-180.txt").read_text()
    return [json.loads(part) for part in text.split("\n...\n")]


def test_lmi_rolling_chat_stream_quirks_are_repaired() -> None:
    # logprobs is a list, the top entry's token is the logprob number, bytes are code points
    chunks = lmi_chat_chunks()
    assert isinstance(chunks[0]["choices"][0]["logprobs"], list)
    assert isinstance(chunks[0]["choices"][0]["logprobs"][0]["content"][0]["top_logprobs"][0]["token"], float)
    deltas = streamed("openai", b"".join(orjson.dumps(c) + b"\n" for c in chunks))
    first = chunks[0]["choices"][0]["logprobs"][0]["content"][0]
    assert deltas[0].logprobs == (TokenLogprob(" Oh", first["logprob"], (TokenLogprob(" Oh", first["logprob"]),)),)
    assert deltas[1].logprobs[0].token == " assist" and deltas[1].logprobs[0].top[0].token == " assist"


def test_lmi_rolling_chat_non_stream_list_and_code_points() -> None:
    # the non-stream formatter has the same trailing comma; `bytes` are ord() values, not UTF-8
    body = {"id": "chatcmpl-0", "object": "chat.completion", "choices": [{
        "index": 0, "finish_reason": "eos_token", "message": {"role": "assistant", "content": "Café"},
        "logprobs": [{"content": [
            {"token": "Café", "logprob": -0.3, "bytes": [67, 97, 102, 233],
             "top_logprobs": [{"token": "Café", "logprob": -0.3, "bytes": [67, 97, 102, 233]}]},
            {"token": "", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}]}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    [choice] = adapters.get("openai").decode_logprobs(raw(body)).choices
    assert choice.logprobs == (TokenLogprob("Café", -0.3, (TokenLogprob("Café", -0.3),)),)


@pytest.mark.parametrize(("schema", "variant", "override", "cap"), [
    ("tgi", ANY, None, 5), ("tgi", "tgi", 10, 10),          # MAX_TOP_N_TOKENS, raised at launch
    ("openai", ANY, None, 5), ("openai", "lmi", 5, 1),       # LMI rolling chat: one alternative, whatever asked
    ("openai", "lmi-async", None, 20),                       # vLLM's own server
    ("lmi", ANY, None, 20), ("lmi", "lmi-async", 5, 0),      # async `inputs`: top_n_tokens would become n
    ("neuron", ANY, None, 0),
])
def test_caps_per_container_variant(schema: str, variant: str, override: int | None, cap: int) -> None:
    data = token_data(adapters.get(schema).token_data, variant, override)
    assert data is not None and data.max_top == cap


@pytest.mark.parametrize("schema", ["jumpstart", "text2text"])
def test_schemas_without_token_data(schema: str) -> None:
    assert token_data(adapters.get(schema).token_data, ANY, 5) is None


def test_lmi_streams_no_alternatives() -> None:
    assert token_data(adapters.get("lmi").token_data, ANY, None) == TokenData(20, True, stream_top=False)
