"""End to end: the official OpenAI SDK → jumpgate (uvicorn process) → simulator (uvicorn process).

Each test asserts on what the simulator received: payload names and values, SageMaker headers, and
a SigV4 signature recomputed with botocore.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from service.config.demo import DEMO_MODELS, SIMULATOR_CREDENTIALS
from tests.e2e.conftest import Sim
from tests.sigv4 import signed_headers, verify

pytestmark = pytest.mark.e2e

SYSTEM, USER = "You are terse.", "Name a colour."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


def tgi(body: dict[str, Any], headers: dict[str, str]) -> None:
    assert body["inputs"].startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert body["parameters"] == {"max_new_tokens": 20, "temperature": 0.5, "seed": 7, "do_sample": True,
                                  "details": True, "decoder_input_details": True, "return_full_text": False}
    assert body["stream"] is False


def messages_api(body: dict[str, Any], headers: dict[str, str]) -> None:
    assert body["messages"] == MESSAGES
    assert {k: body[k] for k in ("max_tokens", "temperature", "seed", "model")} == {
        "max_tokens": 20, "temperature": 0.5, "seed": 7, "model": "tgi"}


def neuron(body: dict[str, Any], headers: dict[str, str]) -> None:
    assert body["inputs"].startswith(f"<s>[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n{USER} [/INST]")
    assert body["parameters"] == {"max_new_tokens": 20, "temperature": 0.5, "seed": 7, "do_sample": True,
                                  "details": True, "return_full_text": False}


def jumpstart(body: dict[str, Any], headers: dict[str, str]) -> None:
    assert body == {"inputs": [MESSAGES], "parameters": {"max_new_tokens": 20, "temperature": 0.5}}
    assert headers["x-amzn-sagemaker-custom-attributes"] == "accept_eula=true"
    assert "x-amzn-sagemaker-custom-attributes" in signed_headers(headers)


def dolly(body: dict[str, Any], headers: dict[str, str]) -> None:
    assert "### Instruction:\nName a colour." in body["inputs"] and SYSTEM in body["inputs"]
    assert body["inputs"].rstrip().endswith("### Response:")
    assert body["parameters"] == {"max_new_tokens": 20, "temperature": 0.5, "seed": 7, "do_sample": True,
                                  "details": True, "decoder_input_details": True, "return_full_text": False}


def text2text(body: dict[str, Any], headers: dict[str, str]) -> None:
    assert USER in body["text_inputs"]
    assert {k: v for k, v in body.items() if k != "text_inputs"} == {
        "max_length": 20, "temperature": 0.5, "seed": 7, "do_sample": True}


CHECKS: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, str]], None]]] = {
    "llama3-8b": ("jumpgate-demo-tgi-llama3-8b", tgi),
    "llama3-8b-messages": ("jumpgate-demo-tgi-llama3-8b", messages_api),
    "llama2-13b-neuron": ("jumpgate-demo-neuron-llama2-13b", neuron),
    "llama2-7b-chat": ("jumpgate-demo-jumpstart-llama2-7b-chat", jumpstart),
    "llama3-8b-dolly": ("jumpgate-demo-ft-llama3-8b-dolly", dolly),
    "flan-t5-xl": ("jumpgate-demo-flan-t5-xl", text2text),
    "llama32-11b-vision": ("jumpgate-demo-tgi-llama32-11b-vision", messages_api),
}


def only_request(sim: Sim, endpoint: str) -> tuple[dict[str, Any], dict[str, str], bytes, str]:
    got = sim.requests(endpoint)
    assert len(got) == 1, got
    headers = {k.lower(): v for k, v in got[0]["headers"].items()}
    return got[0]["body_json"], headers, base64.b64decode(got[0]["body_b64"]), got[0]["path"]


def test_every_demo_model_is_covered() -> None:
    assert set(CHECKS) == set(DEMO_MODELS)


@pytest.mark.parametrize("model", sorted(CHECKS))
def test_chat_completion_sends_the_schema_payload_signed(model: str, client: OpenAI, sim: Sim) -> None:
    endpoint, check = CHECKS[model]
    resp = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, max_tokens=20, temperature=0.5, seed=7)  # type: ignore[arg-type]
    completion = resp.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage and completion.usage.completion_tokens > 0
    assert resp.headers["x-jumpgate-endpoint"] == DEMO_MODELS[model]
    assert resp.headers["x-jumpgate-token-source"] in ("backend", "estimate")
    body, headers, raw, path = only_request(sim, endpoint)
    check(body, headers)
    assert path == f"/endpoints/{endpoint}/invocations"
    assert headers["content-type"] == "application/json"
    scope = verify("POST", path, headers, raw, SIMULATOR_CREDENTIALS["access_key_id"],
                   SIMULATOR_CREDENTIALS["secret_access_key"])
    assert scope == {"service": "sagemaker", "region": "us-east-1"}
    assert all(h in signed_headers(headers) for h in headers if h.startswith("x-amzn-sagemaker-"))


@pytest.mark.parametrize("model", sorted(CHECKS))
def test_completion_for_every_model(model: str, client: OpenAI, sim: Sim) -> None:
    completion = client.completions.create(model=model, prompt="The sky is", max_tokens=12, temperature=0)
    assert completion.choices[0].text
    assert completion.usage and completion.usage.prompt_tokens > 0
    body = sim.requests(CHECKS[model][0])[0]["body_json"]
    assert "The sky is" in str(body)


def test_tgi_exact_token_counts_come_from_the_backend(client: OpenAI) -> None:
    resp = client.chat.completions.with_raw_response.create(model="llama3-8b", messages=MESSAGES, max_tokens=10)
    assert resp.headers["x-jumpgate-token-source"] == "backend"


def test_greedy_on_tgi_sends_no_temperature_and_no_top_p(client: OpenAI, sim: Sim) -> None:
    client.chat.completions.create(model="llama3-8b", messages=MESSAGES, max_tokens=8, temperature=0, top_p=1.0)
    params = sim.requests("jumpgate-demo-tgi-llama3-8b")[0]["body_json"]["parameters"]
    assert params["do_sample"] is False and "temperature" not in params and "top_p" not in params


def test_greedy_on_neuron_sends_do_sample_false(client: OpenAI, sim: Sim) -> None:
    client.chat.completions.create(model="llama2-13b-neuron", messages=MESSAGES, max_tokens=8, temperature=0)
    params = sim.requests("jumpgate-demo-neuron-llama2-13b")[0]["body_json"]["parameters"]
    assert params["do_sample"] is False and "temperature" not in params


def test_model_default_max_tokens_applies(client: OpenAI, sim: Sim) -> None:
    client.completions.create(model="flan-t5-xl", prompt="Translate to German: hello")
    assert sim.requests("jumpgate-demo-flan-t5-xl")[0]["body_json"]["max_length"] == 128


def test_stop_is_applied_by_the_gateway_on_neuron(client: OpenAI) -> None:
    first = client.completions.create(model="llama2-13b-neuron", prompt="Once", max_tokens=30, temperature=0)
    words = first.choices[0].text.split()
    assert len(words) >= 4, first.choices[0].text
    stop = " " + words[2]
    cut = client.completions.create(model="llama2-13b-neuron", prompt="Once", max_tokens=30, temperature=0,
                                    stop=[stop])
    assert cut.choices[0].text == first.choices[0].text[: first.choices[0].text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_n_fans_out_with_distinct_seeds_on_tgi(client: OpenAI, sim: Sim) -> None:
    completion = client.chat.completions.create(model="llama3-8b", messages=MESSAGES, max_tokens=8, n=3, seed=11,
                                                temperature=0.9)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    seeds = sorted(r["body_json"]["parameters"]["seed"] for r in sim.requests("jumpgate-demo-tgi-llama3-8b"))
    assert seeds == [11, 12, 13]


def test_n_is_native_on_text2text(client: OpenAI, sim: Sim) -> None:
    completion = client.completions.create(model="flan-t5-xl", prompt="Say hi", max_tokens=8, n=2, temperature=0.8)
    assert len(completion.choices) == 2
    got = sim.requests("jumpgate-demo-flan-t5-xl")
    assert len(got) == 1 and got[0]["body_json"]["num_return_sequences"] == 2


def test_native_generate_fills_the_instruction_template(gateway_url: str, sim: Sim) -> None:
    resp = httpx.post(gateway_url + "/v1/generate", json={
        "model": "llama3-8b-dolly", "inputs": "Summarise the text.", "context": "Jumpgate fronts SageMaker.",
        "parameters": {"max_new_tokens": 16, "temperature": 0}})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["endpoint"] == "llama3-8b-dolly-ft" and data["generations"][0]["text"]
    assert data["usage"]["source"] in ("backend", "estimate") and data["cost_usd"] >= 0
    inputs = sim.requests("jumpgate-demo-ft-llama3-8b-dolly")[0]["body_json"]["inputs"]
    assert "### Instruction:\nSummarise the text." in inputs and "### Input:\nJumpgate fronts SageMaker." in inputs


def test_throttled_twice_then_success(client: OpenAI, sim: Sim) -> None:
    sim.fault(endpoint="jumpgate-demo-tgi-llama3-8b", throttle_next=2)
    resp = client.chat.completions.with_raw_response.create(model="llama3-8b", messages=MESSAGES, max_tokens=5)
    assert resp.status_code == 200
    assert resp.headers["x-jumpgate-attempts"] == "3"
    assert len(sim.requests("jumpgate-demo-tgi-llama3-8b")) == 3


def test_model_error_gives_502_with_the_container_message(client: OpenAI, sim: Sim) -> None:
    sim.fault(endpoint="jumpgate-demo-ft-llama3-8b-dolly", error_next=1, error_kind="model", error_status=500)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="llama3-8b-dolly", messages=MESSAGES, max_tokens=5)
    assert err.value.status_code == 502
    body = err.value.response.json()["error"]
    assert body["type"] == "upstream_error" and body["code"] == "model_error"
    assert body["message"] and "arn:" not in body["message"] and "123456789012" not in body["message"]


def test_unsupported_parameter_is_400_naming_it(client: OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="llama3-8b", messages=MESSAGES, extra_body={"num_beams": 4})
    error = err.value.response.json()["error"]
    assert error["param"] == "num_beams" and "llama3-8b-g5" in error["message"]
    assert sim.requests() == []


def test_drop_policy_drops_and_says_so(client: OpenAI, sim: Sim) -> None:
    resp = client.chat.completions.with_raw_response.create(
        model="llama3-8b-lenient", messages=MESSAGES, max_tokens=5, extra_body={"num_beams": 4})
    assert resp.headers["x-jumpgate-dropped-params"] == "num_beams"
    assert "num_beams" not in sim.requests("jumpgate-demo-tgi-llama3-8b")[0]["body_json"]["parameters"]


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-5", messages=MESSAGES)
    assert "llama3-8b" in err.value.response.json()["error"]["message"]


def test_models_lists_every_model_with_endpoints(client: OpenAI) -> None:
    listed = {m.id: m for m in client.models.list()}
    assert set(DEMO_MODELS) <= set(listed)
    neuron_ep = listed["llama2-13b-neuron"].model_extra["endpoints"][0]  # type: ignore[index]
    assert neuron_ep["accelerator"] == "inf2" and neuron_ep["context_length"] == 2048


def test_request_id_is_echoed(gateway_url: str) -> None:
    resp = httpx.post(gateway_url + "/v1/chat/completions", headers={"x-request-id": "abc-123"},
                      json={"model": "nope", "messages": MESSAGES})
    assert resp.status_code == 404 and resp.headers["x-request-id"] == "abc-123"
