"""/v1/embeddings in-process (create_app + FakeTransport answering in the containers' shapes): batching and
order, encodings, `dimensions` per endpoint, token ids, bad input, errors, metrics and cost."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from service.app import create_app
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.config.problems import ConfigError
from service.errors import UpstreamModelError, UpstreamUnavailable
from service.telemetry.metrics import Metrics
from service.transport.base import Payload, RawResponse, Target
from service.transport.fake import FakeTransport

DIM = 8


def vector(text: str) -> list[float]:
    """A deterministic unit vector per text (what the fake containers answer)."""
    raw = [((hash(text) >> (4 * i)) % 97 + 1) / 97 for i in range(DIM)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def endpoint(name: str, schema: str, **container: Any) -> dict[str, Any]:
    return {"endpoint_name": name, "schema": schema, "instance_type": "ml.g5.xlarge", "max_concurrency": 4,
            "container": container}


def config() -> Any:
    data = demo_config_data("http://sim.invalid")
    data["endpoints"].update({
        "tei-old": endpoint("tei-old", "tei", kind="tei", version="1.7.0", max_batch_size=8),
        "tei-mrl": endpoint("tei-mrl", "tei", kind="tei", version="1.7.0", matryoshka=True),
        "js-text": endpoint("js-text", "jumpstart_text_inputs", kind="jumpstart-embedding"),
        "js-list": endpoint("js-list", "jumpstart_list"),
        "js-x": endpoint("js-x", "jumpstart_x_text"),
        "lmi-emb": endpoint("lmi-emb", "lmi_embeddings"),
    })
    for name in ("tei-old", "tei-mrl", "js-text", "js-list", "js-x", "lmi-emb"):
        data["models"][name] = {"targets": [{"endpoint": name}]}
    data["models"]["fallback"] = {"targets": [{"endpoint": "tei-old", "weight": 1000},
                                              {"endpoint": "bge-large-tei-g5", "weight": 0.001}]}
    return parse_config(data, source="<test>")


def answer(target: Target, payload: Payload) -> RawResponse:
    """Each container's answer shape (openai-surface.md 5.2-5.4)."""
    name = target.endpoint_name
    if name == "js-x":
        return RawResponse(orjson.dumps({"embedding": vector(payload.body.decode())}), "application/json")
    body = orjson.loads(payload.body)
    texts = body if isinstance(body, list) else body.get("inputs", body.get("text_inputs"))
    vectors = [vector(t if isinstance(t, str) else str(t)) for t in texts]
    if isinstance(body, dict) and body.get("dimensions"):
        vectors = [v[:body["dimensions"]] for v in vectors]
    out: Any = {"embedding": vectors} if name == "js-text" else vectors
    return RawResponse(orjson.dumps(out), "application/json")


@pytest.fixture
async def make_client() -> Any:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Callable[[Target, Payload], Any] = answer,
             metrics: Metrics | None = None) -> tuple[httpx.AsyncClient, FakeTransport]:
        fake = FakeTransport(handler)
        app = create_app(config(), transport=fake, metrics=metrics)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
        clients.append(client)
        return client, fake

    yield make
    for c in clients:
        await c.aclose()


def sent(fake: FakeTransport) -> list[Any]:
    return [orjson.loads(c.payload.body) if c.payload.content_type == "application/json" else c.payload.body
            for c in fake.calls]


async def test_a_hundred_inputs_go_in_batches_and_come_back_in_order(make_client: Any) -> None:
    client, fake = make_client()
    texts = [f"text number {i}" for i in range(100)]
    resp = await client.post("/v1/embeddings", json={"model": "bge-large", "input": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [d["index"] for d in body["data"]] == list(range(100))
    assert [d["embedding"] for d in body["data"]] == [vector(t) for t in texts]
    batches = sent(fake)
    assert [len(b["inputs"]) for b in batches] == [32, 32, 32, 4]
    assert sorted(t for b in batches for t in b["inputs"]) == sorted(texts)
    assert all(b["normalize"] is True and b["truncate"] is False for b in batches)
    assert resp.headers["x-jumpgate-upstream-calls"] == "4"
    assert resp.headers["x-jumpgate-endpoint"] == "bge-large-tei-g5"
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert resp.headers["x-jumpgate-token-source"] == "estimate"


async def test_base64_is_little_endian_float32(make_client: Any) -> None:
    client, _ = make_client()
    resp = await client.post("/v1/embeddings", json={"model": "bge-large", "input": "hello",
                                                     "encoding_format": "base64"})
    raw = base64.b64decode(resp.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{DIM}f", raw)) == pytest.approx(vector("hello"), rel=1e-6)


async def test_dimensions_native_on_tei_1_8_and_later(make_client: Any) -> None:
    client, fake = make_client()
    resp = await client.post("/v1/embeddings", json={"model": "bge-large", "input": "hi", "dimensions": 4})
    assert sent(fake)[0]["dimensions"] == 4 and len(resp.json()["data"][0]["embedding"]) == 4
    assert resp.headers["x-jumpgate-dimensions"] == "container"


async def test_dimensions_cut_and_renormalized_on_a_matryoshka_endpoint(make_client: Any) -> None:
    client, fake = make_client()
    resp = await client.post("/v1/embeddings", json={"model": "tei-mrl", "input": "hi", "dimensions": 3})
    got = resp.json()["data"][0]["embedding"]
    assert "dimensions" not in sent(fake)[0] and resp.headers["x-jumpgate-dimensions"] == "gateway"
    head = vector("hi")[:3]
    assert got == pytest.approx([x / math.sqrt(sum(y * y for y in head)) for x in head])
    too_many = await client.post("/v1/embeddings", json={"model": "tei-mrl", "input": "hi", "dimensions": 9})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "dimensions"


@pytest.mark.parametrize("model", ["tei-old", "js-text", "lmi-emb"])
async def test_dimensions_elsewhere_is_400(make_client: Any, model: str) -> None:
    client, fake = make_client()
    resp = await client.post("/v1/embeddings", json={"model": model, "input": "hi", "dimensions": 4})
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["param"] == "dimensions" and "matryoshka" in error["message"]
    assert fake.calls == []


async def test_the_batch_size_is_the_endpoints(make_client: Any) -> None:
    client, fake = make_client()
    resp = await client.post("/v1/embeddings", json={"model": "tei-old", "input": [str(i) for i in range(20)]})
    assert resp.status_code == 200 and [len(b["inputs"]) for b in sent(fake)] == [8, 8, 4]


@pytest.mark.parametrize(("model", "calls"), [("js-text", 1), ("js-list", 1), ("js-x", 3), ("lmi-emb", 1)])
async def test_jumpstart_and_lmi_schemas(make_client: Any, model: str, calls: int) -> None:
    client, fake = make_client()
    texts = ["a b", "c", "d e f"]
    resp = await client.post("/v1/embeddings", json={"model": model, "input": texts})
    assert resp.status_code == 200, resp.text
    assert [d["embedding"] for d in resp.json()["data"]] == [vector(t) for t in texts]
    assert len(fake.calls) == calls
    if model == "js-x":
        assert {c.payload.content_type for c in fake.calls} == {"application/x-text"}
    if model == "js-text":
        assert sent(fake)[0] == {"text_inputs": texts, "mode": "embedding"}


async def test_token_ids_go_to_tei_only(make_client: Any) -> None:
    client, fake = make_client()
    ok = await client.post("/v1/embeddings", json={"model": "bge-large", "input": [[101, 7592], [101]]})
    assert ok.status_code == 200 and sent(fake)[0]["inputs"] == [[101, 7592], [101]]
    refused = await client.post("/v1/embeddings", json={"model": "lmi-emb", "input": [101, 7592]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input"
    assert "text only" in refused.json()["error"]["message"]


@pytest.mark.parametrize(("body", "param", "fragment"), [
    ({"input": ""}, "input", "empty string"),
    ({"input": ["a", ""]}, "input", "[1] is an empty string"),
    ({"input": ["x"] * 2049}, "input", "at most 2048"),
    ({"input": []}, "input", "non-empty list"),
    ({"input": [[]]}, "input", "empty list of token ids"),
    ({"input": ["a", [1]]}, "input", "mixes"),
    ({"input": [1.5]}, "input", "[0] must be a string"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format", "'float' or 'base64'"),
    ({"input": "a", "dimensions": 0}, "dimensions", "greater than or equal to 1"),
    ({"input": "a", "bogus": 1}, "bogus", "unknown parameter"),
])
async def test_bad_input_is_400_naming_the_field(make_client: Any, body: dict[str, Any], param: str,
                                                 fragment: str) -> None:
    client, fake = make_client()
    resp = await client.post("/v1/embeddings", json={"model": "bge-large", **body})
    error = resp.json()["error"]
    assert resp.status_code == 400, resp.text
    assert error["param"] == param and fragment in error["message"], error
    assert fake.calls == []


async def test_models_of_the_other_api_are_400_and_unknown_404(make_client: Any) -> None:
    client, _ = make_client()
    resp = await client.post("/v1/embeddings", json={"model": "llama3-8b", "input": "a"})
    assert resp.status_code == 400 and "has no embeddings" in resp.json()["error"]["message"]
    resp = await client.post("/v1/chat/completions", json={"model": "bge-large",
                                                            "messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400 and "/v1/embeddings" in resp.json()["error"]["message"]
    resp = await client.post("/v1/embeddings", json={"model": "x" * 10_000, "input": "a"})
    assert resp.status_code == 404 and len(resp.text) < 2000


async def test_a_container_4xx_is_the_inputs_fault(make_client: Any) -> None:
    def too_long(t: Target, p: Payload) -> Any:
        raise UpstreamModelError("SageMaker endpoint 'x': the model container answered 422: Input validation "
                                 "error: `inputs` must have less than 512 tokens. Given: 700", original_status=422)

    client, _ = make_client(too_long)
    resp = await client.post("/v1/embeddings", json={"model": "bge-large", "input": "word " * 700})
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["param"] == "input" and "less than 512 tokens" in error["message"]


async def test_a_failing_endpoint_falls_back_and_vectors_come_from_one_endpoint(make_client: Any) -> None:
    def flaky(t: Target, p: Payload) -> Any:
        if t.endpoint_name == "tei-old":
            raise UpstreamUnavailable("down")
        return answer(t, p)

    client, fake = make_client(flaky)
    resp = await client.post("/v1/embeddings", json={"model": "fallback", "input": [str(i) for i in range(10)]})
    assert resp.status_code == 200 and resp.headers["x-jumpgate-endpoint"] == "bge-large-tei-g5"
    assert [c.target.endpoint_name for c in fake.calls][-1] == "jumpgate-demo-tei-bge-large"


async def test_metrics_and_cost_use_api_embeddings(make_client: Any) -> None:
    metrics = Metrics()
    client, _ = make_client(metrics=metrics)
    resp = await client.post("/v1/embeddings", json={"model": "bge-large", "input": ["a b c", "d"]})
    assert float(resp.headers["x-jumpgate-cost-usd"]) >= 0
    sample = metrics.registry.get_sample_value
    labels = {"model": "bge-large", "endpoint": "bge-large-tei-g5"}
    assert sample("jumpgate_requests_total", {**labels, "api": "embeddings", "status": "200"}) == 1
    tokens = resp.json()["usage"]["prompt_tokens"]
    assert sample("jumpgate_tokens_total", {**labels, "direction": "prompt", "source": "estimate"}) == tokens
    assert sample("jumpgate_overhead_seconds_count", {"api": "embeddings"}) == 1


async def test_models_list_and_retrieve_show_the_embedding_model(make_client: Any) -> None:
    client, _ = make_client()
    listed = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    assert listed["bge-large"]["kind"] == "embedding" and listed["llama3-8b"]["kind"] == "text_generation"
    one = (await client.get("/v1/models/bge-large")).json()
    assert one["id"] == "bge-large" and one["object"] == "model"
    assert one["endpoints"][0]["batch_size"] == 32 and one["endpoints"][0]["dimensions"] == "container"
    missing = await client.get("/v1/models/" + "m" * 5000)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert len(missing.json()["error"]["message"]) < 1000


def test_a_model_mixing_embedding_and_generation_endpoints_is_a_config_problem() -> None:
    data = demo_config_data("http://sim.invalid")
    data["models"]["mixed"] = {"targets": [{"endpoint": "bge-large-tei-g5"}, {"endpoint": "llama3-8b-g5"}]}
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="x.yaml")
    [problem] = err.value.problems
    assert problem.key == "models.mixed.targets" and "bge-large-tei-g5" in problem.why


async def test_keys_allowed_models_and_token_limits_apply_to_embeddings() -> None:
    data = demo_config_data("http://sim.invalid")
    data["auth"] = {"tenants": {
        "chat-only": {"api_key_sha256": [hashlib.sha256(b"k-chat").hexdigest()], "models": ["llama3-8b"]},
        "rag": {"api_key_sha256": [hashlib.sha256(b"k-rag").hexdigest()], "models": ["bge-large"],
                "tokens_per_minute": 10}}}
    fake = FakeTransport(answer)
    app = create_app(parse_config(data, source="<test>"), transport=fake)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        body = {"model": "bge-large", "input": ["one two three four five six seven eight nine ten eleven"] * 2}
        assert (await client.post("/v1/embeddings", json=body)).status_code == 401
        denied = await client.post("/v1/embeddings", json=body, headers={"authorization": "Bearer k-chat"})
        assert denied.status_code == 403 and fake.calls == []
        first = await client.post("/v1/embeddings", json=body, headers={"authorization": "Bearer k-rag"})
        assert first.status_code == 200 and first.json()["usage"]["total_tokens"] > 10  # overdraws the bucket
        second = await client.post("/v1/embeddings", json=body, headers={"authorization": "Bearer k-rag"})
        assert second.status_code == 429 and second.json()["error"]["code"] == "tokens_per_minute"
        assert len(fake.calls) == 1

