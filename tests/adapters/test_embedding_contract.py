"""The contract every embedding adapter passes: declared facts, payloads and answers in the shapes
openai-surface.md sections 5.2-5.4 give for TEI, the JumpStart embedding schemas and LMI (no captured embedding
bodies exist in ../shared/fixtures, so the shapes are written from the reference here)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service import adapters
from service.errors import UpstreamModelError
from service.transport.base import RawResponse

EMBEDDING = sorted(adapters.EMBEDDING_SCHEMAS)
V1, V2 = [0.6, 0.8], [1.0, 0.0]


def raw(data: Any) -> RawResponse:
    return RawResponse(orjson.dumps(data), "application/json")


def test_registry_holds_the_reference_schemas_apart_from_generation() -> None:
    assert set(EMBEDDING) == {"tei", "jumpstart_text_inputs", "jumpstart_list", "jumpstart_x_text", "lmi_embeddings"}
    assert not set(EMBEDDING) & set(adapters.SCHEMAS)
    assert set(adapters.all_schema_names()) == set(EMBEDDING) | set(adapters.SCHEMAS)
    with pytest.raises(KeyError, match="known: jumpstart_list"):
        adapters.get_embedding("tgi")


def test_tei_request_and_its_always_a_list_answer() -> None:
    # 5.2: {inputs, truncate, normalize, dimensions}; the answer is a list of vectors, even for one string
    tei = adapters.get_embedding("tei")
    body = orjson.loads(tei.encode(["a", (101, 102)], 256).body)
    assert body == {"inputs": ["a", [101, 102]], "normalize": True, "truncate": False, "dimensions": 256}
    assert "dimensions" not in orjson.loads(tei.encode(["a"], None).body)
    assert tei.decode(raw([V1]), 1) == [V1] and tei.decode(raw([V1, V2]), 2) == [V1, V2]
    assert tei.token_ids and tei.native_dimensions_since == (1, 8, 0)


def test_jumpstart_text_inputs() -> None:
    # 5.3: {"text_inputs": [...], "mode": "embedding"} -> {"embedding": [[...], ...]}
    js = adapters.get_embedding("jumpstart_text_inputs")
    assert orjson.loads(js.encode(["a", "b"], None).body) == {"text_inputs": ["a", "b"], "mode": "embedding"}
    assert js.decode(raw({"embedding": [V1, V2]}), 2) == [V1, V2]
    assert js.decode(raw({"embedding": V1}), 1) == [V1]  # a flat vector for one input is read too


def test_jumpstart_list() -> None:
    # 5.3: a JSON list of strings -> a list of the embedding vectors
    js = adapters.get_embedding("jumpstart_list")
    assert orjson.loads(js.encode(["a", "b"], None).body) == ["a", "b"]
    assert js.decode(raw([V1, V2]), 2) == [V1, V2]


def test_jumpstart_x_text_one_text_per_call() -> None:
    # 5.3: Content-Type application/x-text, the body is the raw text -> {"embedding": [...]}
    js = adapters.get_embedding("jumpstart_x_text")
    payload = js.encode(["héllo"], None)
    assert payload.body == "héllo".encode() and payload.content_type == "application/x-text"
    assert js.decode(raw({"embedding": V1}), 1) == [V1] and js.max_batch == 1


def test_lmi_embeddings_flat_for_a_string_list_for_a_list() -> None:
    # 5.4: {"inputs": ...}; the Rust/ONNX engines answer a flat vector for one string, vLLM a list of vectors
    lmi = adapters.get_embedding("lmi_embeddings")
    assert orjson.loads(lmi.encode(["a"], None).body) == {"inputs": ["a"]}
    assert lmi.decode(raw(V1), 1) == [V1] and lmi.decode(raw([V1]), 1) == [V1]
    assert lmi.decode(raw([V1, V2]), 2) == [V1, V2]


@pytest.mark.parametrize("schema", EMBEDDING)
@pytest.mark.parametrize(("body", "count"), [
    (b"<html>oops</html>", 1), (b"{}", 1), (b"[]", 1), (b"42", 1), (orjson.dumps([V1]), 2),
    (orjson.dumps([V1, [0.1, 0.2, 0.3]]), 2), (orjson.dumps([["x", "y"]]), 1), (orjson.dumps([[True]]), 1),
    (orjson.dumps({"error": "Input validation error", "error_type": "Validation"}), 1),
])
def test_unknown_or_wrong_shapes_are_upstream_errors(schema: str, body: bytes, count: int) -> None:
    with pytest.raises(UpstreamModelError):
        adapters.get_embedding(schema).decode(RawResponse(body, "application/json"), count)


@pytest.mark.parametrize("schema", EMBEDDING)
def test_declared_facts(schema: str) -> None:
    adapter = adapters.get_embedding(schema)
    assert adapter.name == schema
    assert adapter.max_batch in (None, 1)
    assert adapter.token_ids is (schema == "tei")  # only TEI takes InputType::Ids (5.5)
