"""The contract every adapter passes: declared rules, encodable payloads, and the captured fixtures.

Fixtures are the real bodies in tests/fixtures (see PROVENANCE.md). TGI generate snapshots are bare
objects; the SageMaker route wraps them in a one-element list, so both forms are decoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from service import adapters
from service.adapters.params import CANONICAL_PARAMS, Subject, normalize
from service.canonical import FinishReason, GenerationRequest, Message, SamplingParams
from service.errors import UpstreamModelError
from service.prompts.render import PromptSpec
from service.transport.base import RawResponse

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCHEMAS = adapters.schema_names()


def raw(data: object) -> RawResponse:
    return RawResponse(orjson.dumps(data), "application/json")


def load(rel: str) -> object:
    return json.loads((FIXTURES / rel).read_text())


def chat_request(**kw: object) -> GenerationRequest:
    return GenerationRequest(model="m", api="chat", params=SamplingParams(max_new_tokens=16),
                             messages=(Message("system", "Be brief."), Message("user", "Capital of France?")),
                             **kw)  # type: ignore[arg-type]


def test_registry_has_every_schema_of_the_config_contract() -> None:
    assert set(SCHEMAS) == {"tgi", "lmi", "neuron", "jumpstart", "text2text", "openai"}


def test_unknown_schema_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known schemas: jumpstart, lmi"):
        adapters.get("bedrock")


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_canonical_parameter_is_declared(schema: str) -> None:
    assert set(adapters.get(schema).rules) == set(CANONICAL_PARAMS)


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_encode_gives_json_with_the_prompt(schema: str, api: str) -> None:
    adapter = adapters.get(schema)
    req = chat_request() if api == "chat" else GenerationRequest(
        model="m", api="completions", params=SamplingParams(max_new_tokens=16), prompt="Capital of France?")
    wire = normalize(req.params, adapter.rules, adapter.sampling, Subject("e", schema, "m"), policy="reject",
                     stream=False)
    payload = adapter.encode(req, PromptSpec(chat_template="llama3"), wire)
    body = orjson.loads(payload.body)
    assert "Capital of France?" in json.dumps(body, ensure_ascii=False)
    assert payload.content_type == "application/json"


TGI_GENERATE = [
    "tgi/test_flash_llama/test_flash_llama_all_params.json",
    "tgi/test_flash_llama/test_flash_llama_simple.json",
    "tgi/test_flash_llama/test_flash_llama.json",
    "tgi/test_flash_grammar_llama/test_flash_llama_grammar_json.json",
]


@pytest.mark.parametrize("rel", TGI_GENERATE)
@pytest.mark.parametrize("wrapped", [True, False])
def test_tgi_decodes_generate_fixtures(rel: str, wrapped: bool) -> None:
    data = load(rel)
    decoded = adapters.get("tgi").decode(raw([data] if wrapped else data))
    assert decoded.choices[0].text == data["generated_text"]  # type: ignore[index]
    assert decoded.completion_tokens == data["details"]["generated_tokens"]  # type: ignore[index]
    prefill = data["details"]["prefill"]  # type: ignore[index]
    assert decoded.prompt_tokens == (len(prefill) or None)


def test_tgi_load_fixture_every_element_decodes() -> None:
    for item in load("tgi/test_flash_llama/test_flash_llama_load.json"):  # type: ignore[union-attr]
        assert adapters.get("tgi").decode(raw([item])).choices[0].finish_reason is FinishReason.LENGTH


def test_tgi_finish_reasons_map_to_openai_ones() -> None:
    stop = adapters.get("tgi").decode(raw([load(TGI_GENERATE[0])]))
    assert stop.choices[0].finish_reason is FinishReason.STOP  # stop_sequence
    eos = adapters.get("tgi").decode(raw([load(TGI_GENERATE[3])]))
    assert eos.choices[0].finish_reason is FinishReason.STOP  # eos_token


def test_tgi_2x_prefill_counts_prompt_tokens() -> None:
    data = load("tgi/test_flash_llama/test_flash_llama.json")
    assert adapters.get("tgi").decode(raw([data])).prompt_tokens == len(data["details"]["prefill"])  # type: ignore[index]


@pytest.mark.parametrize(("rel", "prompt", "completion"), [
    ("tgi/test_chat_llama/test_flash_llama_simple.json", 61, 100),
    ("tgi/test_completion_prompts/test_flash_llama_completion_single_prompt.json", 6, 10),
    ("lmi/chat_input_output_schema.md.L81-101.txt", 33, 30),
])
def test_openai_decodes_chat_and_completion_fixtures(rel: str, prompt: int, completion: int) -> None:
    data = load(rel)
    decoded = adapters.get("openai").decode(raw(data))
    first = data["choices"][0]  # type: ignore[index]
    expected = first["message"]["content"] if "message" in first else first["text"]
    assert decoded.choices[0].text == expected
    assert decoded.choices[0].finish_reason is FinishReason.LENGTH
    assert (decoded.prompt_tokens, decoded.completion_tokens) == (prompt, completion)


def test_openai_tool_call_fixture_decodes_without_text() -> None:
    data = load("tgi/test_tools_llama/test_flash_llama_grammar_tools_nostream.json")
    decoded = adapters.get("openai").decode(raw(data))
    assert decoded.choices[0].text == "" and decoded.choices[0].finish_reason is FinishReason.STOP


def test_lmi_decodes_dynamic_batch_list_fixture() -> None:
    decoded = adapters.get("lmi").decode(raw(load("lmi/lmi_input_output_schema.md.L229-233.txt")))
    assert decoded.choices[0].text == "Deep Learning is a really cool field"
    assert decoded.completion_tokens is None  # no details: counted by the gateway


def test_lmi_error_body_fixture_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamModelError, match="finish_reason error"):
        adapters.get("lmi").decode(raw(load("lmi/lmi_input_output_schema.md.L137-145.txt")))


@pytest.mark.parametrize("rel", ["lmi/lmi_input_output_schema.md.L53-61.txt",
                                 "lmi/lmi_input_output_schema.md.L168-178.txt"])
def test_lmi_invalid_doc_examples_fail_cleanly(rel: str) -> None:
    # These doc examples are not valid JSON (placeholders); a clean UpstreamModelError, never a crash.
    with pytest.raises(UpstreamModelError, match="not JSON"):
        adapters.get("lmi").decode(RawResponse((FIXTURES / rel).read_bytes(), "application/json"))


@pytest.mark.parametrize("schema", ["tgi", "jumpstart", "lmi", "neuron"])
def test_sagemaker_text_generation_sample_output(schema: str) -> None:
    sample = load("jumpstart/task.json")["text-generation"]["sample_outputs"]["properties"]  # type: ignore[index]
    decoded = adapters.get(schema).decode(raw(sample))
    assert decoded.choices[0].text.startswith("Hello, I'm a language modeler.")


def test_jumpstart_meta_chat_and_text_generations() -> None:
    js = adapters.get("jumpstart")
    chat = js.decode(raw([{"generation": {"role": "assistant", "content": " Paris."}}]))
    assert chat.choices[0].text == " Paris." and chat.choices[0].finish_reason is None
    assert js.decode(raw([{"generation": " Paris."}])).choices[0].text == " Paris."


def test_text2text_generated_texts_one_choice_each() -> None:
    decoded = adapters.get("text2text").decode(raw({"generated_texts": ["Paris", "Lyon"]}))
    assert [(c.index, c.text) for c in decoded.choices] == [(0, "Paris"), (1, "Lyon")]
    assert adapters.get("text2text").decode(raw({"generated_text": "Paris"})).choices[0].text == "Paris"


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"unexpected": true}', b"[]", b"42"])
def test_unknown_shapes_are_upstream_errors_not_crashes(schema: str, body: bytes) -> None:
    with pytest.raises(UpstreamModelError):
        adapters.get(schema).decode(RawResponse(body, "application/json"))
