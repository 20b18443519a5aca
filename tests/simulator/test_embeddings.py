"""Embedding containers over the real wire: TEI per version, the JumpStart schemas, LMI embeddings."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from service.simulator.app import create_simulator_app
from service.simulator.model import DEMO_ENDPOINTS, SimEndpoint
from tests.simulator.conftest import BASE, invoke, payload

TEI = "jumpgate-demo-tei-bge-large"


@pytest.fixture
async def emb() -> AsyncIterator[httpx.AsyncClient]:
    endpoints = {**DEMO_ENDPOINTS}
    for ep in (SimEndpoint("tei-1.7", "tei", version="1.7.0", embedding_dim=8, max_input_tokens=16),
               SimEndpoint("tei-1.8", "tei", version="1.8.2", embedding_dim=8, max_input_tokens=16),
               SimEndpoint("js-text", "jumpstart-text-inputs", embedding_dim=16),
               SimEndpoint("js-list", "jumpstart-list", embedding_dim=16),
               SimEndpoint("js-x-text", "jumpstart-x-text", embedding_dim=16),
               SimEndpoint("lmi-emb", "lmi-embedding", embedding_dim=16),
               SimEndpoint("lmi-vllm-emb", "lmi-embedding", version="0.36.0", async_mode=True, embedding_dim=16)):
        endpoints[ep.name] = ep
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_simulator_app(endpoints)),
                                 base_url=BASE) as c:
        yield c


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def original(resp: httpx.Response, status: int) -> Any:
    assert resp.status_code == 424, resp.text
    assert resp.json()["OriginalStatusCode"] == status
    return orjson.loads(resp.json()["OriginalMessage"])


async def test_tei_always_answers_a_list_of_normalized_deterministic_vectors(emb: httpx.AsyncClient) -> None:
    [one] = (await invoke(emb, TEI, {"inputs": "hello"})).json()
    assert len(one) == 1024 and abs(norm(one) - 1) < 1e-6
    batch = (await invoke(emb, TEI, {"inputs": ["hello", "world"]})).json()
    assert batch[0] == one and batch[1] != one
    raw = (await invoke(emb, TEI, {"inputs": "hello", "normalize": False})).json()[0]
    assert abs(norm(raw) - 1) > 0.1
    ids = (await invoke(emb, TEI, {"inputs": [[101, 7592, 102], [101, 102]]})).json()
    assert len(ids) == 2 and len(ids[0]) == 1024


async def test_tei_errors(emb: httpx.AsyncClient) -> None:
    assert original(await invoke(emb, TEI, {"inputs": []}), 400) == {"error": "`inputs` cannot be empty",
                                                                       "error_type": "Empty"}
    assert original(await invoke(emb, TEI, {"inputs": ""}), 400)["error_type"] == "Empty"
    over = original(await invoke(emb, TEI, {"inputs": ["x"] * 33}), 422)
    assert over == {"error": "batch size 33 > maximum allowed batch size 32", "error_type": "Validation"}
    resp = await invoke(emb, TEI, {"inputs": "x"}, content_type="text/plain")
    assert resp.json()["OriginalStatusCode"] == 415
    resp = await invoke(emb, TEI, {"inputs": {"nested": 1}})
    assert resp.json()["OriginalMessage"].startswith("Failed to deserialize the JSON body")


async def test_tei_truncation_default_changed_in_1_9(emb: httpx.AsyncClient) -> None:
    long = "word " * 40
    error = original(await invoke(emb, "tei-1.8", {"inputs": long}), 422)
    assert error["error"] == "Input validation error: `inputs` must have less than 16 tokens. Given: 41"
    assert (await invoke(emb, "tei-1.8", {"inputs": long, "truncate": True})).status_code == 200
    assert (await invoke(emb, TEI, {"inputs": "word " * 600})).status_code == 200  # 1.9.4: auto-truncate
    cut = (await invoke(emb, "tei-1.8", {"inputs": long, "truncate": True})).json()[0]
    assert cut == (await invoke(emb, "tei-1.8", {"inputs": "word " * 15})).json()[0]


async def test_tei_dimensions_from_1_8(emb: httpx.AsyncClient) -> None:
    full = (await invoke(emb, "tei-1.8", {"inputs": "hi", "normalize": False})).json()[0]
    [short] = (await invoke(emb, "tei-1.8", {"inputs": "hi", "dimensions": 4})).json()
    assert len(short) == 4 and abs(norm(short) - 1) < 1e-6
    assert [round(x / norm(full[:4]), 6) for x in full[:4]] == [round(x, 6) for x in short]
    error = original(await invoke(emb, "tei-1.8", {"inputs": "hi", "dimensions": 9}), 422)
    assert error["error"].endswith("`dimensions` should be smaller than the maximum embedding dimension.")
    assert len((await invoke(emb, "tei-1.7", {"inputs": "hi", "dimensions": 4})).json()[0]) == 8  # ignored


async def test_jumpstart_schemas(emb: httpx.AsyncClient) -> None:
    body = (await invoke(emb, "js-text", {"text_inputs": ["a b", "c"], "mode": "embedding"})).json()
    assert set(body) == {"embedding"} and len(body["embedding"]) == 2 and len(body["embedding"][0]) == 16
    listed = (await invoke(emb, "js-list", ["a b", "c"])).json()
    assert listed == body["embedding"]
    single = (await invoke(emb, "js-x-text", b"a b", content_type="application/x-text")).json()
    assert single == {"embedding": listed[0]}
    assert original(await invoke(emb, "js-text", {"inputs": ["a"]}), 400)["code"] == 400
    assert original(await invoke(emb, "js-list", {"text_inputs": ["a"]}), 400)["code"] == 400
    assert (await invoke(emb, "js-x-text", {"x": 1})).json()["OriginalStatusCode"] == 415


async def test_lmi_embeddings_shapes_per_engine(emb: httpx.AsyncClient) -> None:
    flat = (await invoke(emb, "lmi-emb", {"inputs": "a b"})).json()
    assert isinstance(flat[0], float) and len(flat) == 16
    assert (await invoke(emb, "lmi-emb", {"inputs": ["a b"]})).json() == [flat]
    assert (await invoke(emb, "lmi-vllm-emb", {"inputs": "a b"})).json() == [flat]
    assert original(await invoke(emb, "lmi-emb", {"text": "a"}), 400) == {
        "code": 400, "type": "TranslateException", "message": 'Missing "inputs" in json.'}


async def test_embedding_through_the_streaming_api_arrives_whole(emb: httpx.AsyncClient) -> None:
    resp = await invoke(emb, TEI, {"inputs": "hello"}, stream=True)
    assert len(orjson.loads(payload(resp.content))[0]) == 1024
