"""Deterministic text generation, the token-count rule, SimEndpoint and config loading."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from service.simulator import textgen
from service.simulator.model import DEMO_ENDPOINTS, SimEndpoint, endpoints_from_config
from service.simulator.textgen import EOS_ID, MAX_TOKENS, MIN_TOKENS, STOP_POSITION, count_tokens, generate


@pytest.mark.parametrize(("text", "count"), [
    ("", 1), ("hello", 2), ("Hello, world!", 5), ("  spaced   out  ", 3), ("café 東京 🚀", 4),
])
def test_count_tokens(text: str, count: int) -> None:
    assert count_tokens(text) == count


def test_same_prompt_and_seed_same_text_different_seed_differs() -> None:
    a = generate("p", seed=1, max_new_tokens=100)
    assert a == generate("p", seed=1, max_new_tokens=100)
    assert a.text != generate("p", seed=2, max_new_tokens=100).text
    assert a.text != generate("q", seed=1, max_new_tokens=100).text


def test_natural_length_then_eos_or_length() -> None:
    for prompt in ("a", "b", "c", "d", "e"):
        free = generate(prompt, seed=0, max_new_tokens=10_000)
        assert free.finish == "eos_token" and free.tokens[-1].id == EOS_ID and free.tokens[-1].special
        assert MIN_TOKENS <= len(free.tokens) - 1 <= MAX_TOKENS
        cut = generate(prompt, seed=0, max_new_tokens=5)
        assert cut.finish == "length" and len(cut.tokens) == 5 and cut.tokens == free.tokens[:5]


def test_tokens_have_leading_space_and_vocabulary_is_multibyte() -> None:
    text = "".join(generate(str(i), seed=0, max_new_tokens=48).text for i in range(20))
    assert len(text.encode()) > len(text)  # multi-byte characters were drawn
    gen = generate("x", seed=0, max_new_tokens=10)
    assert all(t.text.startswith(" ") for t in gen.tokens)


def test_injected_stop_token() -> None:
    gen = generate("x", seed=0, max_new_tokens=30, stop=["<END>"])
    assert gen.finish == "stop_sequence" and len(gen.tokens) == STOP_POSITION + 1
    assert gen.tokens[-1].text == "<END>" and gen.text.endswith("<END>")
    assert gen.text_without_stop == gen.text[: -len("<END>")]
    assert generate("x", seed=0, max_new_tokens=STOP_POSITION, stop=["<END>"]).finish == "length"


def test_natural_stop_inside_text() -> None:
    free = generate("x", seed=0, max_new_tokens=30)
    word = free.tokens[1].text.strip()
    gen = generate("x", seed=0, max_new_tokens=30, stop=[word])
    assert gen.finish == "stop_sequence" and len(gen.tokens) == 2
    assert gen.text_without_stop == free.tokens[0].text + " "


def test_demo_endpoints() -> None:
    assert {n: (e.container, e.accelerator, e.max_total_tokens, e.slots, e.requires_eula)
            for n, e in DEMO_ENDPOINTS.items()} == {
        "jumpgate-demo-tgi-llama3-8b": ("tgi", "gpu", 8192, 32, False),
        "jumpgate-demo-neuron-llama2-13b": ("lmi-neuron", "inf2", 2048, 4, False),
        "jumpgate-demo-jumpstart-llama2-7b-chat": ("meta-llama", "gpu", 4096, 8, True),
        "jumpgate-demo-ft-llama3-8b-dolly": ("lmi", "gpu", 8192, 32, False),
        "jumpgate-demo-flan-t5-xl": ("text2text", "gpu", 2048, 8, False),
        "jumpgate-demo-tei-bge-large": ("tei", "gpu", 512, 32, False),
        "jumpgate-demo-tgi-llama32-11b-vision": ("tgi", "gpu", 8192, 16, False),
    }
    assert DEMO_ENDPOINTS["jumpgate-demo-tgi-llama32-11b-vision"].vision


def test_unknown_container_is_rejected() -> None:
    with pytest.raises(ValueError, match="known: tgi"):
        SimEndpoint("x", "vllm")


def test_endpoints_from_config(tmp_path: Path) -> None:
    config = {
        "aws": {"region": "us-east-1"},
        "endpoints": {
            "a": {"endpoint_name": "shared-tgi", "schema": "tgi", "instance_type": "ml.g5.2xlarge",
                  "context_length": 8192, "max_concurrency": 16},
            "a-messages": {"endpoint_name": "shared-tgi", "schema": "openai", "instance_type": "ml.g5.2xlarge"},
            "b": {"endpoint_name": "neuron-ep", "schema": "neuron", "instance_type": "ml.inf2.24xlarge",
                  "context_length": 2048, "max_concurrency": 4},
            "c": {"endpoint_name": "llama-ep", "schema": "jumpstart", "instance_type": "ml.g5.2xlarge",
                  "custom_attributes": "accept_eula=true"},
            "d": {"endpoint_name": "trn-ep", "schema": "lmi", "instance_type": "ml.trn1.2xlarge"},
            "e": {"endpoint_name": "t5-ep", "schema": "text2text", "instance_type": "ml.g5.xlarge"},
        },
        "models": {},
    }
    path = tmp_path / "jumpgate.yaml"
    path.write_text(yaml.safe_dump(config))
    got = endpoints_from_config(path)
    assert got == {  # region: each endpoint's SigV4 scope is checked against aws.region (service/simulator/estate.py)
        "shared-tgi": SimEndpoint("shared-tgi", "tgi", "gpu", 8192, 16, region="us-east-1"),
        "neuron-ep": SimEndpoint("neuron-ep", "lmi-neuron", "inf2", 2048, 4, region="us-east-1"),
        "llama-ep": SimEndpoint("llama-ep", "meta-llama", "gpu", 4096, 32, requires_eula=True, region="us-east-1"),
        "trn-ep": SimEndpoint("trn-ep", "lmi", "inf2", 4096, 32, region="us-east-1"),
        "t5-ep": SimEndpoint("t5-ep", "text2text", "gpu", 4096, 32, region="us-east-1"),
    }


def test_endpoints_from_config_rejects_unknown_schema(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"x": {"endpoint_name": "x", "schema": "bedrock"}}}))
    with pytest.raises(ValueError, match="bedrock"):
        endpoints_from_config(path)


def _reference_draws(prompt: str, seed: int, max_new_tokens: int, variant: int) -> list[tuple[int, str, float]]:
    """The module's documented rule, spelled with random.Random's public draws."""
    rng = random.Random(f"{seed}|{variant}|{prompt}")
    natural = rng.randint(textgen.MIN_TOKENS, textgen.MAX_TOKENS)
    out = []
    for _ in range(min(natural, max_new_tokens)):
        i = rng.randrange(len(textgen.VOCAB))
        out.append((textgen.FIRST_WORD_ID + i, " " + textgen.VOCAB[i], -round(rng.random() * 3, 4)))
    if max_new_tokens > natural:
        out.append((textgen.EOS_ID, textgen.EOS_TEXT, -round(rng.random(), 4)))
    return out


@pytest.mark.parametrize("max_new_tokens", [1, 9, 30, 200])
def test_generation_without_stops_makes_the_documented_draws(max_new_tokens: int) -> None:
    for seed in range(60):
        gen = textgen.generate(f"prompt é😀 {seed}", seed=seed, max_new_tokens=max_new_tokens, variant=seed % 3)
        assert [(t.id, t.text, t.logprob) for t in gen.tokens] == _reference_draws(
            f"prompt é😀 {seed}", seed, max_new_tokens, seed % 3)


def test_endpoints_from_config_reads_container_facts_and_embedding_schemas(tmp_path: Path) -> None:
    config = {"endpoints": {
        "lmi-chat": {"endpoint_name": "lmi-chat", "schema": "openai", "instance_type": "ml.g5.2xlarge",
                     "container": {"kind": "lmi", "version": "0.33.0", "async_mode": True,
                                   "tool_call_parser": "llama3_json"}},
        "tgi-old": {"endpoint_name": "tgi-old", "schema": "openai", "container": {"version": 3.1, "grammar": False}},
        "vlm": {"endpoint_name": "vlm", "schema": "tgi", "container": {"vision": True, "max_images": 2,
                                                                      "max_top_logprobs": 10}},
        "tei": {"endpoint_name": "tei", "schema": "tei", "context_length": 512, "container": {"max_batch_size": 8}},
        "js1": {"endpoint_name": "js1", "schema": "jumpstart_text_inputs"},
        "js2": {"endpoint_name": "js2", "schema": "jumpstart_list"},
        "js3": {"endpoint_name": "js3", "schema": "jumpstart_x_text"},
        "lmi-emb": {"endpoint_name": "lmi-emb", "schema": "lmi_embeddings"},
    }}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    got = endpoints_from_config(path)
    assert (got["lmi-chat"].container, got["lmi-chat"].async_mode, got["lmi-chat"].tool_call_parser) == (
        "lmi", True, "llama3_json")
    assert got["tgi-old"].container == "tgi" and got["tgi-old"].version == "3.1" and not got["tgi-old"].grammar
    assert got["tgi-old"].at_least("3.1.0") and not got["tgi-old"].at_least("3.2.0")
    assert (got["vlm"].vision, got["vlm"].max_images, got["vlm"].max_top_n_tokens) == (True, 2, 10)
    assert (got["tei"].container, got["tei"].max_batch_size, got["tei"].max_input_tokens) == ("tei", 8, 512)
    assert [got[n].container for n in ("js1", "js2", "js3", "lmi-emb")] == [
        "jumpstart-text-inputs", "jumpstart-list", "jumpstart-x-text", "lmi-embedding"]


def test_defaults_are_the_newest_modelled_versions() -> None:
    assert SimEndpoint("t", "tgi").at_least("3.2.0") and SimEndpoint("t", "tgi").grammar
    lmi = SimEndpoint("l", "lmi")
    assert lmi.version_tuple == (0, 33, 0) and not lmi.async_mode
    with pytest.raises(ValueError, match="not a version"):
        SimEndpoint("x", "tgi", version="three")


def test_container_facts_from_config_include_the_payload_limit(tmp_path: Path) -> None:
    config = {"endpoints": {"v": {"endpoint_name": "vlm", "schema": "openai", "instance_type": "ml.g5.2xlarge",
                                  "container": {"vision": True, "max_images": 2, "payload_limit": 3_000_000}}}}
    path = tmp_path / "jumpgate.yaml"
    path.write_text(yaml.safe_dump(config))
    [endpoint] = endpoints_from_config(path).values()
    assert (endpoint.vision, endpoint.max_images, endpoint.payload_limit) == (True, 2, 3_000_000)
