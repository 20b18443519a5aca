"""LMI (vLLM rolling batch) and LMI NeuronX containers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from service.simulator.textgen import count_tokens
from tests.simulator.conftest import LMI, NEURON, invoke, json_lines, payload

PROMPT = "Summarise: jumpgate fronts SageMaker endpoints."


def lmi_error(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 424, resp.text
    body = resp.json()
    assert body["OriginalStatusCode"] == 424
    return orjson.loads(body["OriginalMessage"])  # type: ignore[no-any-return]


async def test_object_response_default_30_tokens_greedy(client: httpx.AsyncClient) -> None:
    body = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": {"details": True}})).json()
    assert set(body) == {"generated_text", "details"}
    details = body["details"]
    assert details["generated_tokens"] <= 30
    assert details["inputs"] == PROMPT
    assert set(details) == {"finish_reason", "generated_tokens", "inputs", "tokens"}
    assert all(set(t) <= {"id", "text", "log_prob", "special_token"} for t in details["tokens"])
    assert body["generated_text"] == "".join(t["text"] for t in details["tokens"])
    again = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": {"details": True}})).json()
    assert again == body


async def test_no_details_no_full_text_by_default(client: httpx.AsyncClient) -> None:
    body = (await invoke(client, LMI, {"inputs": PROMPT})).json()
    assert set(body) == {"generated_text"} and not body["generated_text"].startswith(PROMPT)
    full = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": {"return_full_text": True}})).json()
    assert full["generated_text"] == PROMPT + body["generated_text"]


async def test_prefill_with_decoder_input_details(client: httpx.AsyncClient) -> None:
    params = {"details": True, "decoder_input_details": True, "max_new_tokens": 3}
    details = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": params})).json()["details"]
    assert len(details["prefill"]) == count_tokens(PROMPT)


async def test_unknown_parameters_are_ignored(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 5, "no_such_knob": 3}
    assert (await invoke(client, LMI, {"inputs": PROMPT, "parameters": params})).status_code == 200


async def test_stop_sequences_are_hidden_and_finish_stop_sequence(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 20, "stop_sequences": ["###"], "details": True}
    body = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": params})).json()
    assert body["details"]["finish_reason"] == "stop_sequence"
    assert body["details"]["generated_tokens"] == 4
    assert "###" not in body["generated_text"]


async def test_n_greater_than_one_puts_others_in_best_of_sequences(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 6, "n": 3, "do_sample": True, "seed": 3}
    body = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": params})).json()
    details = body["details"]
    assert details["inputs"] == PROMPT
    others = details["best_of_sequences"]
    assert len(others) == 2
    texts = {body["generated_text"], *(o["generated_text"] for o in others)}
    assert len(texts) == 3
    assert all(o["generated_tokens"] == 6 for o in others)


@pytest.mark.parametrize(("params", "reason"), [
    ({"temperature": -0.1}, "temperature must be in [0, 2], got -0.1."),
    ({"temperature": 2.5}, "temperature must be in [0, 2], got 2.5."),
    ({"top_p": 0}, "top_p must be in (0, 1], got 0."),
    ({"top_k": -2}, "top_k must be -1 (disable), 0 (disable), or at least 1, got -2."),
    ({"presence_penalty": 3}, "presence_penalty must be in [-2, 2], got 3."),
    ({"frequency_penalty": -3}, "frequency_penalty must be in [-2, 2], got -3."),
    ({"repetition_penalty": 0}, "repetition_penalty must be greater than zero, got 0."),
    ({"max_new_tokens": 0}, "max_tokens must be at least 1, got 0."),
])
async def test_vllm_range_errors(client: httpx.AsyncClient, params: dict[str, Any], reason: str) -> None:
    error = lmi_error(await invoke(client, LMI, {"inputs": PROMPT, "parameters": params}))
    assert error == {"code": 424, "error": f"exception occurred during rolling batch inference: {reason}"}


async def test_top_p_one_and_top_k_minus_one_are_fine(client: httpx.AsyncClient) -> None:
    params = {"top_p": 1.0, "top_k": -1, "temperature": 0.7}
    assert (await invoke(client, LMI, {"inputs": PROMPT, "parameters": params})).status_code == 200


@pytest.mark.parametrize("params", [{"n": 2}, {"num_beams": 2}, {"decoder_input_details": True}])
async def test_non_stream_only_options_fail_when_streaming(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    error = lmi_error(await invoke(client, LMI, {"inputs": PROMPT, "parameters": params, "stream": True}, stream=True))
    assert error["code"] == 424 and "stream" in error["error"]


async def test_missing_inputs(client: httpx.AsyncClient) -> None:
    assert "inputs" in lmi_error(await invoke(client, LMI, {"parameters": {}}))["error"]


async def test_prompt_over_context_is_rejected(client: httpx.AsyncClient) -> None:
    error = lmi_error(await invoke(client, LMI, {"inputs": "w " * 9000}))
    assert error["error"] == "Input prompt (9001 tokens) is too long and exceeds limit of 8192"


async def test_stream_jsonlines_matches_non_stream(client: httpx.AsyncClient) -> None:
    params = {"max_new_tokens": 40, "details": True, "temperature": 0.8, "seed": 11}
    whole = (await invoke(client, LMI, {"inputs": PROMPT, "parameters": params})).json()
    resp = await invoke(client, LMI, {"inputs": PROMPT, "parameters": params, "stream": True}, stream=True)
    assert resp.headers["x-amzn-sagemaker-content-type"] == "application/jsonlines"
    lines = json_lines(payload(resp.content))
    assert all(set(line) == {"token"} for line in lines[:-1])
    assert set(lines[-1]) == {"token", "generated_text", "details"}
    assert lines[-1]["generated_text"] == whole["generated_text"]
    assert "".join(line["token"]["text"] for line in lines) == whole["generated_text"]
    assert lines[-1]["details"] == {"finish_reason": whole["details"]["finish_reason"],
                                    "generated_tokens": whole["details"]["generated_tokens"], "inputs": PROMPT}
    assert [line["token"] for line in lines] == whole["details"]["tokens"]


async def test_stream_eos_token_is_special_and_empty(client: httpx.AsyncClient) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 100}, "stream": True}
    lines = json_lines(payload((await invoke(client, LMI, body, stream=True)).content))
    assert lines[-1]["token"]["special_token"] is True and lines[-1]["token"]["text"] == ""
    assert "details" not in lines[-1]


MESSAGES = [{"role": "user", "content": "Name a colour."}]


async def test_chat_completion_and_jsonlines_chat_stream(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "max_tokens": 50, "temperature": 0}
    whole = (await invoke(client, LMI, body)).json()
    assert whole["object"] == "chat.completion" and whole["id"].startswith("chatcmpl-")
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "eos_token"  # LMI passes its own finish reason through
    assert whole["usage"]["completion_tokens"] == whole["usage"]["total_tokens"] - whole["usage"]["prompt_tokens"]
    resp = await invoke(client, LMI, {**body, "stream": True}, stream=True)
    raw = payload(resp.content)
    assert b"data:" not in raw and b"[DONE]" not in raw
    chunks = json_lines(raw)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == choice["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "eos_token"]


async def test_chat_default_max_tokens_30(client: httpx.AsyncClient) -> None:
    body = (await invoke(client, LMI, {"messages": MESSAGES, "seed": 5})).json()
    assert body["usage"]["completion_tokens"] <= 30


async def test_chat_validation(client: httpx.AsyncClient) -> None:
    error = lmi_error(await invoke(client, LMI, {"messages": MESSAGES, "temperature": 3}))
    assert error["error"].endswith("temperature must be in [0, 2], got 3.")


# ---- NeuronX ----

async def test_neuron_truncates_at_n_positions_with_finish_length(client: httpx.AsyncClient) -> None:
    prompt = "w " * 2040  # 2041 tokens of a 2048 window
    params = {"max_new_tokens": 100, "details": True}
    resp = await invoke(client, NEURON, {"inputs": prompt, "parameters": params})
    assert resp.status_code == 200
    details = resp.json()["details"]
    assert details["finish_reason"] == "length" and details["generated_tokens"] == 2048 - 2041


async def test_neuron_never_rejects_an_over_long_prompt(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, NEURON, {"inputs": "w " * 5000, "parameters": {"details": True}})
    assert resp.status_code == 200
    assert resp.json()["details"] == {**resp.json()["details"], "finish_reason": "length", "generated_tokens": 1}


async def test_neuron_ignores_string_stops_and_sampling_without_do_sample(client: httpx.AsyncClient) -> None:
    base = (await invoke(client, NEURON, {"inputs": PROMPT, "parameters": {"details": True}})).json()
    params = {"details": True, "stop_sequences": ["###"], "temperature": 0.3, "seed": 9}
    same = (await invoke(client, NEURON, {"inputs": PROMPT, "parameters": params})).json()
    assert same == base and base["details"]["finish_reason"] != "stop_sequence"
    sampled = (await invoke(client, NEURON, {"inputs": PROMPT, "parameters": {**params, "do_sample": True}})).json()
    assert sampled["generated_text"] != base["generated_text"]


async def test_neuron_stream_is_lmi_jsonlines(client: httpx.AsyncClient) -> None:
    whole = (await invoke(client, NEURON, {"inputs": PROMPT})).json()
    resp = await invoke(client, NEURON, {"inputs": PROMPT, "stream": True}, stream=True)
    lines = json_lines(payload(resp.content))
    assert lines[-1]["generated_text"] == whole["generated_text"]


async def test_neuron_sampling_checks_only_when_sampling(client: httpx.AsyncClient) -> None:
    assert (await invoke(client, NEURON, {"inputs": PROMPT, "parameters": {"temperature": 0}})).status_code == 200
    error = lmi_error(await invoke(client, NEURON, {"inputs": PROMPT,
                                                    "parameters": {"temperature": 0, "do_sample": True}}))
    assert error["error"].startswith("`temperature` (=0) has to be a strictly positive float")
