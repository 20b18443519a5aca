"""SageMaker runtime behaviour: auth presence, unknown endpoints, error shapes, headers, faults."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.simulator.conftest import LMI, TGI, control, frames, invoke, payload, sign

GEN = {"inputs": "Hello there", "parameters": {"max_new_tokens": 5}}
CORAL = ":http://internal.amazon.com/coral/com.amazon.sagemaker/"


async def test_ping(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ping")).status_code == 200


async def test_missing_authorization_is_403(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"/endpoints/{TGI}/invocations", json=GEN)
    assert resp.status_code == 403
    assert resp.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert resp.json()["message"]


@pytest.mark.parametrize("auth", [
    "Bearer abc",
    "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
])
async def test_malformed_or_wrong_service_signature_is_403(client: httpx.AsyncClient, auth: str) -> None:
    headers = {"Authorization": auth, "X-Amz-Date": "20240101T000000Z"}
    resp = await client.post(f"/endpoints/{TGI}/invocations", json=GEN, headers=headers)
    assert resp.status_code == 403
    assert resp.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert set(resp.json()) == {"message"}


async def test_missing_amz_date_is_403(client: httpx.AsyncClient) -> None:
    path = f"/endpoints/{TGI}/invocations"
    headers = sign(path, orjson.dumps(GEN))
    del headers["X-Amz-Date"]
    resp = await client.post(path, content=orjson.dumps(GEN), headers=headers)
    assert resp.status_code == 403 and resp.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


async def test_unknown_endpoint_is_validation_error_with_account(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, "nope", GEN)
    assert resp.status_code == 400
    assert resp.headers["x-amzn-ErrorType"] == "ValidationError" + CORAL
    assert resp.json() == {"message": "Endpoint nope of account 123456789012 not found."}


async def test_success_headers(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, TGI, GEN)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert len(resp.headers["x-amzn-requestid"]) == 36


async def test_stream_headers(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, TGI, {**GEN, "stream": True}, stream=True, accept="text/event-stream")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.amazon.eventstream"
    assert resp.headers["x-amzn-sagemaker-content-type"] == "text/event-stream"
    assert resp.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert resp.headers["x-amzn-requestid"]


async def test_json_body_through_stream_api_is_one_payload_part(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, TGI, GEN, stream=True)
    [msg] = frames(resp.content)
    assert orjson.loads(msg.payload)[0]["generated_text"].startswith("Hello there ")


async def test_container_validation_error_is_wrapped_as_model_error(client: httpx.AsyncClient) -> None:
    resp = await invoke(client, TGI, {"inputs": "x", "parameters": {"temperature": 0}})
    assert resp.status_code == 424
    assert resp.headers["x-amzn-ErrorType"] == "ModelError" + CORAL
    body = resp.json()
    original = '{"error":"Input validation error: `temperature` must be strictly positive","error_type":"validation"}'
    assert body == {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
        "LogStreamArn": f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/{TGI}",
        "Message": f"Received client error (422) from primary with message \"{original}\". See "
                   f"https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
                   f"group=/aws/sagemaker/Endpoints/{TGI} in account 123456789012 for more information.",
        "OriginalMessage": original,
        "OriginalStatusCode": 422,
    }


async def test_throttle_next_then_success(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "throttle_next": 2})
    for _ in range(2):
        resp = await invoke(client, TGI, GEN)
        assert resp.status_code == 400
        assert resp.headers["x-amzn-ErrorType"] == "ThrottlingException"
        assert resp.json() == {"message": "Rate exceeded"}
    assert (await invoke(client, TGI, GEN)).status_code == 200
    assert (await invoke(client, LMI, {"inputs": "x"})).status_code == 200
    recorded = await control(client, "GET", "/_sim/requests")
    assert [r["endpoint"] for r in recorded] == [TGI, TGI, TGI, LMI]


async def test_wildcard_fault_applies_to_every_endpoint(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": "*", "throttle_next": 1})
    assert (await invoke(client, LMI, {"inputs": "x"})).status_code == 400
    assert (await invoke(client, TGI, GEN)).status_code == 200


@pytest.mark.parametrize(("kind", "status", "code"), [
    ("unavailable", 503, "ServiceUnavailable"), ("internal", 500, "InternalFailure"),
    ("not_ready", 429, "ModelNotReadyException"),
])
async def test_service_faults(client: httpx.AsyncClient, kind: str, status: int, code: str) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "error_next": 1, "error_kind": kind})
    resp = await invoke(client, TGI, GEN)
    assert resp.status_code == status
    assert resp.headers["x-amzn-ErrorType"].split(":")[0] == code
    assert resp.json()["message"]


@pytest.mark.parametrize(("endpoint", "original"), [
    (TGI, {"error": "Simulated container failure", "error_type": "incomplete_generation"}),
    (LMI, {"code": 500, "error": "Simulated container failure"}),
])
async def test_model_error_fault_uses_container_error_shape(client: httpx.AsyncClient, endpoint: str,
                                                            original: dict[str, object]) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": endpoint, "error_next": 1, "error_kind": "model",
                                                   "error_status": 500})
    resp = await invoke(client, endpoint, {"inputs": "x"})
    assert resp.status_code == 424
    body = resp.json()
    assert body["ErrorCode"] == "SERVER_ERROR_FROM_MODEL" and body["OriginalStatusCode"] == 500
    assert orjson.loads(body["OriginalMessage"]) == original
    assert body["Message"].startswith("Received server error (500) from primary with message ")
    assert (await invoke(client, endpoint, {"inputs": "x"})).status_code == 200


async def test_error_rate_one_always_fails_and_zero_never(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "error_rate": 1.0, "error_kind": "internal"})
    assert [(await invoke(client, TGI, GEN)).status_code for _ in range(3)] == [500, 500, 500]
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "error_rate": 0.0})
    assert (await invoke(client, TGI, GEN)).status_code == 200


@pytest.mark.parametrize("spec", [
    {"throttle_next": 1}, {"endpoint": TGI, "bogus": 1}, {"endpoint": TGI, "error_kind": "explode"},
    {"endpoint": TGI, "throttle_rate": 2}, {"endpoint": TGI, "split": "bytes"},
])
async def test_bad_fault_specs_are_400(client: httpx.AsyncClient, spec: dict[str, object]) -> None:
    resp = await client.post("/_sim/faults", json=spec)
    assert resp.status_code == 400 and resp.json()["error"]


async def test_delete_faults_clears_them(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "throttle_next": 5})
    await control(client, "DELETE", "/_sim/faults")
    assert (await invoke(client, TGI, GEN)).status_code == 200


async def test_stream_payload_helper_rejects_exceptions(client: httpx.AsyncClient) -> None:
    await control(client, "POST", "/_sim/faults", {"endpoint": TGI, "stream_error_after": 0})
    resp = await invoke(client, TGI, {**GEN, "stream": True}, stream=True)
    with pytest.raises(AssertionError):
        payload(resp.content)
