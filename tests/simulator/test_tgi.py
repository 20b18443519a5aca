"""TGI container: Generate / Chat / Completion variants, validation texts, SSE streams."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from service.simulator.textgen import count_tokens
from tests.simulator.conftest import TGI, frames, invoke, payload, sse_events

PROMPT = "What is the capital of France?"


def model_error(resp: httpx.Response) -> tuple[int, str]:
    assert resp.status_code == 424, resp.text
    body = resp.json()
    return body["OriginalStatusCode"], body["OriginalMessage"]


async def test_generate_is_a_one_element_list_with_full_text_by_default(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, TGI, {"inputs": PROMPT, "parameters": {"max_new_tokens": 5}})
    [result] = resp.json()
    assert set(result) == {"generated_text"}
    assert result["generated_text"].startswith(PROMPT + " ")


async def test_generate_details(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 4, "details": True, "return_full_text": False}
    [result] = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()
    details = result["details"]
    assert details["finish_reason"] == "length" and details["generated_tokens"] == 4
    assert details["seed"] is None  # greedy
    assert details["prefill"] == []
    assert len(details["tokens"]) == 4
    assert all(set(t) == {"id", "text", "logprob", "special"} for t in details["tokens"])
    assert result["generated_text"] == "".join(t["text"] for t in details["tokens"])
    assert all(t["text"].startswith(" ") for t in details["tokens"])


async def test_decoder_input_details_gives_one_prefill_entry_per_prompt_token(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 2, "decoder_input_details": True}
    [result] = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()
    prefill = result["details"]["prefill"]
    assert len(prefill) == count_tokens(PROMPT) == 8
    assert prefill[0] == {"id": 1, "text": "<s>", "logprob": None}


async def test_eos_finish_ends_with_special_token(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 100, "details": True, "return_full_text": False}
    [result] = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()
    tokens = result["details"]["tokens"]
    assert result["details"]["finish_reason"] == "eos_token"
    assert tokens[-1] == {**tokens[-1], "text": "</s>", "special": True, "id": 2}
    assert not any(t["special"] for t in tokens[:-1])
    assert "</s>" not in result["generated_text"]


async def test_sampling_reports_seed_and_is_reproducible(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 10, "do_sample": True, "seed": 42, "details": True}
    first = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()[0]
    again = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()[0]
    other = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": {**params, "seed": 43}})).json()[0]
    greedy = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": {"max_new_tokens": 10}})).json()[0]
    assert first["details"]["seed"] == 42
    assert first["generated_text"] == again["generated_text"]
    assert first["generated_text"] != other["generated_text"]
    assert first["generated_text"] != greedy["generated_text"]


async def test_stop_sequence_is_kept_and_finishes_stop_sequence(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 20, "stop": ["\nUser:"], "details": True, "return_full_text": False}
    [result] = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()
    assert result["details"]["finish_reason"] == "stop_sequence"
    assert result["details"]["generated_tokens"] == 4
    assert result["generated_text"].endswith("\nUser:")


LIMITS = [
    ({"temperature": 0}, "`temperature` must be strictly positive"),
    ({"temperature": -1}, "`temperature` must be strictly positive"),
    ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
    ({"top_p": 0}, "`top_p` must be > 0.0 and < 1.0"),
    ({"top_k": 0}, "`top_k` must be strictly positive"),
    ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
    ({"repetition_penalty": 0}, "`repetition_penalty` must be strictly positive"),
    ({"frequency_penalty": 2.5}, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
    ({"typical_p": 1.0}, "`typical_p` must be > 0.0 and < 1.0"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
    ({"best_of": 2}, "you must use sampling when `best_of` is > 1"),
    ({"best_of": 2, "do_sample": True, "seed": 1}, "`seed` must not be set when `best_of` > 1"),
    ({"best_of": 3, "do_sample": True}, "`best_of` must be > 0 and <= 2. Given: 3"),
    ({"top_n_tokens": 6}, "`top_n_tokens` must be >= 0 and <= 5. Given: 6"),
    ({"max_new_tokens": 8190}, "`inputs` tokens + `max_new_tokens` must be <= 8192. "
                               "Given: 8 `inputs` tokens and 8190 `max_new_tokens`"),
]


@pytest.mark.parametrize(("params", "message"), LIMITS)
async def test_validation_errors(client: httpx.AsyncClient, params: dict[str, Any], message: str) -> None:
    status, original = model_error(await invoke(client, TGI, {"inputs": PROMPT, "parameters": params}))
    assert status == 422
    assert orjson.loads(original) == {"error": f"Input validation error: {message}", "error_type": "validation"}


async def test_empty_inputs_rejected(client: httpx.AsyncClient) -> None:
    status, original = model_error(await invoke(client, TGI, {"inputs": "", "parameters": {}}))
    assert (status, orjson.loads(original)["error"]) == (422, "Input validation error: `inputs` cannot be empty")


async def test_input_longer_than_budget(client: httpx.AsyncClient) -> None:
    status, original = model_error(await invoke(client, TGI, {"inputs": "w " * 8200, "parameters": {}}))
    assert status == 422
    assert orjson.loads(original)["error"] == ("Input validation error: `inputs` must have less than 8191 tokens. "
                                               "Given: 8201")


@pytest.mark.parametrize("body", [
    {"inputs": [[{"role": "user", "content": "hi"}]], "parameters": {}},  # JumpStart dialogs are no TGI variant
    {"inputs": "x", "parameters": {"max_new_tokens": "5"}},
    {"something": "else"},
    [1, 2],
])
async def test_body_matching_no_variant_is_plain_text_422(client: httpx.AsyncClient, body: Any) -> None:
    status, original = model_error(await invoke(client, TGI, body))
    assert status == 422
    assert original == ("Failed to deserialize the JSON body into the target type: "
                        "data did not match any variant of untagged enum SagemakerRequest")


async def test_invalid_json_is_422(client: httpx.AsyncClient) -> None:
    status, original = model_error(await invoke(client, TGI, b"{not json"))
    assert status == 422 and original.startswith("Failed to parse the request body as JSON")


async def test_stream_reassembles_and_matches_non_stream(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 12, "details": True, "do_sample": True, "seed": 7}
    whole = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()[0]
    resp = await invoke(client, TGI, {"inputs": PROMPT, "parameters": params, "stream": True}, stream=True)
    events = sse_events(payload(resp.content))
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    final = events[-1]
    assert final["generated_text"] == whole["generated_text"]
    assert PROMPT + "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == whole["generated_text"]
    assert final["details"] == {"finish_reason": whole["details"]["finish_reason"], "seed": 7,
                                "generated_tokens": len(events), "input_length": count_tokens(PROMPT)}


async def test_stream_events_carry_their_top_tokens(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 6, "details": True, "top_n_tokens": 3}
    whole = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": params})).json()[0]["details"]
    body = {"inputs": PROMPT, "parameters": params, "stream": True}
    events = sse_events(payload((await invoke(client, TGI, body, stream=True)).content))
    assert [e["top_tokens"] for e in events] == whole["top_tokens"]  # one flat list per position
    plain = {"inputs": PROMPT, "parameters": {"max_new_tokens": 3}, "stream": True}
    assert all("top_tokens" not in e for e in sse_events(payload((await invoke(client, TGI, plain,
                                                                               stream=True)).content)))


async def test_stream_without_details_has_null_details_and_final_eos(client: httpx.AsyncClient) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 200}, "stream": True}
    events = sse_events(payload((await invoke(client, TGI, body, stream=True)).content))
    assert events[-1]["details"] is None
    assert events[-1]["token"]["special"] is True and events[-1]["token"]["text"] == "</s>"


async def test_stream_one_payload_part_per_event(client: httpx.AsyncClient) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 3}, "stream": True}
    parts = [m.payload for m in frames((await invoke(client, TGI, body, stream=True)).content)]
    assert len(parts) == 3 and all(p.startswith(b"data:{") and p.endswith(b"}\n\n") for p in parts)


async def test_stream_validation_error_arrives_in_a_200_stream(client: httpx.AsyncClient) -> None:
    body = {"inputs": PROMPT, "parameters": {"top_p": 1.0}, "stream": True}
    resp = await invoke(client, TGI, body, stream=True)
    assert resp.status_code == 200
    assert sse_events(payload(resp.content)) == [
        {"error": "Input validation error: `top_p` must be > 0.0 and < 1.0", "error_type": "validation"}]


async def test_decoder_input_details_with_stream_is_rejected(client: httpx.AsyncClient) -> None:
    body = {"inputs": PROMPT, "parameters": {"decoder_input_details": True}, "stream": True}
    [event] = sse_events(payload((await invoke(client, TGI, body, stream=True)).content))
    assert event["error"] == ("Input validation error: `decoder_input_details` == true is not supported when "
                              "streaming tokens")


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


async def test_chat_completion(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, TGI, {"messages": MESSAGES, "max_tokens": 5, "temperature": 0})
    body = resp.json()
    assert body["object"] == "chat.completion"
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 5


@pytest.mark.parametrize(("extra", "message"), [
    ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
    ({"temperature": -0.5}, "`temperature` must be strictly positive"),
    ({"max_tokens": 0}, "`max_new_tokens` must be strictly positive"),
    ({"presence_penalty": -2.0}, "`repetition_penalty` must be strictly positive"),
])
async def test_chat_validation(client: httpx.AsyncClient, extra: dict[str, Any], message: str) -> None:
    status, original = model_error(await invoke(client, TGI, {"messages": MESSAGES, **extra}))
    assert (status, orjson.loads(original)["error"]) == (422, f"Input validation error: {message}")


async def test_chat_temperature_zero_is_greedy_and_stream_matches(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "max_tokens": 30, "temperature": 0}
    whole = (await invoke(client, TGI, body)).json()
    again = (await invoke(client, TGI, body)).json()
    assert whole["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_events(payload((await invoke(client, TGI, stream_body, stream=True)).content))
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]
    chunks = events[:-2]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]


async def test_chat_stream_without_include_usage_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "max_tokens": 3, "stream": True}
    events = sse_events(payload((await invoke(client, TGI, body, stream=True)).content))
    assert events[-1] == "[DONE]" and len(events) == 4
    assert all(e["usage"] is None and len(e["choices"]) == 1 for e in events[:-1])


async def test_completion_variant(client: httpx.AsyncClient) -> None:
    body = (await invoke(client, TGI, {"prompt": PROMPT, "max_tokens": 6, "temperature": 0})).json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": count_tokens(PROMPT), "completion_tokens": 6,
                             "total_tokens": count_tokens(PROMPT) + 6}
    generate = (await invoke(client, TGI, {"inputs": PROMPT, "parameters": {"max_new_tokens": 6,
                                                                           "return_full_text": False}})).json()
    assert body["choices"][0]["text"] == generate[0]["generated_text"]
