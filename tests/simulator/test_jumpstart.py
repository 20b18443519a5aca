"""JumpStart Meta Llama 2 and text2text (FLAN-T5) containers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.simulator.conftest import LLAMA, T5, invoke

EULA = {"X-Amzn-SageMaker-Custom-Attributes": "accept_eula=true"}
DIALOG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


def original(resp: httpx.Response, status: int = 400) -> str:
    assert resp.status_code == 424, resp.text
    body = resp.json()
    assert body["OriginalStatusCode"] == status
    return orjson.loads(body["OriginalMessage"])["message"]  # type: ignore[no-any-return]


async def test_llama_chat_shape(client: httpx.AsyncClient) -> None:
    body = {"inputs": [DIALOG], "parameters": {"max_new_tokens": 20, "temperature": 0.5}}
    resp = await invoke(client, LLAMA, body, headers=EULA)
    [result] = resp.json()
    assert result["generation"]["role"] == "assistant"
    content = result["generation"]["content"]
    assert content and content == content.strip()
    assert (await invoke(client, LLAMA, body, headers=EULA)).json() == resp.json()


async def test_llama_text_shape(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, LLAMA, {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 5}},
                        headers=EULA)
    [result] = resp.json()
    assert isinstance(result["generation"], str) and len(result["generation"].split()) == 5


@pytest.mark.parametrize("attributes", [None, "accept_eula=false", "accept_eula=true;accept_eula=false"])
async def test_llama_requires_eula(client: httpx.AsyncClient, attributes: str | None) -> None:
    headers = {} if attributes is None else {"X-Amzn-SageMaker-Custom-Attributes": attributes}
    resp = await invoke(client, LLAMA, {"inputs": [DIALOG]}, headers=headers)
    assert "accept_eula=true" in original(resp)


async def test_llama_last_duplicate_attribute_wins(client: httpx.AsyncClient) -> None:
    headers = {"X-Amzn-SageMaker-Custom-Attributes": "accept_eula=false; accept_eula=true"}
    assert (await invoke(client, LLAMA, {"inputs": [DIALOG]}, headers=headers)).status_code == 200


@pytest.mark.parametrize(("parameters", "fragment"), [
    ({"top_k": 5}, "Unsupported parameter(s) ['top_k']"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a positive integer"),
    ({"temperature": 0}, "temperature must be a positive float"),
    ({"top_p": 1.5}, "top_p must be between 0 and 1"),
])
async def test_llama_parameter_rules(client: httpx.AsyncClient, parameters: dict[str, Any], fragment: str) -> None:
    resp = await invoke(client, LLAMA, {"inputs": [DIALOG], "parameters": parameters}, headers=EULA)
    assert fragment in original(resp)


@pytest.mark.parametrize(("inputs", "fragment"), [
    ([DIALOG, DIALOG], "batch size must be 1"),
    ([[{"role": "assistant", "content": "hi"}]], "alternating"),
    ([[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]], "Last message must be from user"),
    ([[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]], "alternating"),
])
async def test_llama_dialog_rules(client: httpx.AsyncClient, inputs: Any, fragment: str) -> None:
    assert fragment in original(await invoke(client, LLAMA, {"inputs": inputs}, headers=EULA))


async def test_llama_has_no_streaming(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, LLAMA, {"inputs": [DIALOG]}, headers=EULA, stream=True)
    assert "streaming" in original(resp)


async def test_t5_json_num_return_sequences(client: httpx.AsyncClient) -> None:
    body = {"text_inputs": "Translate to German: hello", "max_length": 10, "num_return_sequences": 3,
            "num_beams": 3}
    resp = await invoke(client, T5, body)
    texts = resp.json()["generated_texts"]
    assert len(texts) == 3 and len(set(texts)) == 3
    assert all(t == t.strip() and len(t.split()) <= 10 for t in texts)


async def test_t5_x_text(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, T5, b"Summarise: the quick brown fox", content_type="application/x-text")
    json_resp = await invoke(client, T5, {"text_inputs": "Summarise: the quick brown fox"})
    assert resp.json() == {"generated_text": json_resp.json()["generated_texts"][0]}


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"stop": ["x"]}, "Unsupported parameter(s) ['stop']"),
    ({"parameters": {"max_length": 5}}, "Unsupported parameter(s) ['parameters']"),
    ({"num_return_sequences": 2}, "Greedy methods without beam search do not support `num_return_sequences`"),
    ({"num_return_sequences": 3, "num_beams": 2}, "num_beams (2) must be an integer >= num_return_sequences (3)"),
    ({"no_repeat_ngram_size": 1}, "no_repeat_ngram_size must be > 1"),
    ({"temperature": 0}, "temperature must be a positive float"),
    ({"top_k": 0}, "top_k must be a positive integer"),
    ({"top_p": 2}, "top_p must be between 0 and 1"),
    ({"max_length": 0}, "max_length must be a positive integer"),
])
async def test_t5_validation(client: httpx.AsyncClient, extra: dict[str, Any], fragment: str) -> None:
    assert fragment in original(await invoke(client, T5, {"text_inputs": "hi", **extra}))


async def test_t5_sampling_with_seed(client: httpx.AsyncClient) -> None:
    body = {"text_inputs": "Write a word", "do_sample": True, "seed": 4, "num_return_sequences": 2}
    first = (await invoke(client, T5, body)).json()
    assert len(first["generated_texts"]) == 2
    assert first == (await invoke(client, T5, body)).json()
    assert first != (await invoke(client, T5, {**body, "seed": 5})).json()


async def test_t5_has_no_streaming(client: httpx.AsyncClient) -> None:
    assert "streaming" in original(await invoke(client, T5, {"text_inputs": "hi"}, stream=True))


async def test_t5_unsupported_content_type(client: httpx.AsyncClient) -> None:
    assert "not supported" in original(await invoke(client, T5, b"hi", content_type="text/csv"), 415)
