"""The simulator as several regions and accounts see it: SigV4 scope and key checks, inference components scaled
to zero (answers, control API, virtual-clock scale-ups), serverless endpoints (stream API refused, cold starts),
and endpoints read from a jumpgate config with regions, keys and components."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from service.simulator.app import create_simulator_app
from service.simulator.estate import SERVERLESS_WARM_S
from service.simulator.model import SimEndpoint, endpoints_from_config
from tests.simulator.conftest import BASE, control

KEY, OTHER_KEY = "AKIDEASTKEY000000001", "AKIDSOMEONEELSE00001"
NO_CAPACITY = "Inference Component has no capacity to process this request"
ENDPOINTS = {
    "east": SimEndpoint("east", "tgi", region="us-east-1", access_keys=(KEY,)),
    "shared": SimEndpoint("shared", "tgi", region="eu-west-1", inference_components={"ic-a": 0, "ic-b": 1}),
    "cold": SimEndpoint("cold", "lmi", serverless=True, cold_start_s=0.0),
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_simulator_app(ENDPOINTS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def call(client: httpx.AsyncClient, endpoint: str, *, region: str = "us-east-1", key: str = KEY,
               component: str | None = None, stream: bool = False, body: Any = None) -> httpx.Response:
    path = f"/endpoints/{endpoint}/invocations" + ("-response-stream" if stream else "")
    raw = orjson.dumps(body if body is not None else {"inputs": "hi", "parameters": {"max_new_tokens": 4}})
    headers = {"Content-Type": "application/json"}
    if component:
        headers["X-Amzn-SageMaker-Inference-Component"] = component
    request = AWSRequest(method="POST", url=BASE + path, data=raw, headers=headers)
    SigV4Auth(Credentials(key, "secret"), "sagemaker", region).add_auth(request)
    return await client.post(path, content=raw, headers=dict(request.headers.items()))


def error(resp: httpx.Response) -> tuple[int, str, str]:
    return resp.status_code, resp.headers["x-amzn-errortype"].split(":")[0], resp.json()["message"]


async def test_calls_signed_for_the_endpoints_region_with_its_key_are_served(client: httpx.AsyncClient) -> None:
    assert (await call(client, "east")).status_code == 200


async def test_a_call_signed_for_another_region_is_refused_as_aws_does(client: httpx.AsyncClient) -> None:
    resp = await call(client, "east", region="eu-west-1")
    assert error(resp) == (403, "InvalidSignatureException", "Credential should be scoped to a valid region. ")


async def test_a_key_the_endpoint_does_not_accept_is_refused(client: httpx.AsyncClient) -> None:
    resp = await call(client, "east", key=OTHER_KEY)
    assert error(resp) == (403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    stats = await control(client, "GET", "/_sim/stats")
    assert stats["east"]["requests"] == 0  # refused before the container


async def test_the_accepted_keys_can_be_changed_through_the_control_api(client: httpx.AsyncClient) -> None:
    got = await control(client, "PATCH", "/_sim/endpoints/east", {"access_keys": [OTHER_KEY]})
    assert got["access_keys"] == [OTHER_KEY] and got["region"] == "us-east-1"
    assert (await call(client, "east", key=OTHER_KEY)).status_code == 200
    assert (await call(client, "east")).status_code == 403
    assert (await client.patch("/_sim/endpoints/nope", json={})).status_code == 404
    assert (await client.patch("/_sim/endpoints/east", json={"regoin": "x"})).status_code == 400


async def test_a_component_with_no_copy_answers_the_no_capacity_error(client: httpx.AsyncClient) -> None:
    resp = await call(client, "shared", region="eu-west-1", component="ic-a")
    status, code, message = error(resp)
    assert (status, code) == (400, "ValidationError") and message.startswith(NO_CAPACITY)
    assert "UpdateInferenceComponentRuntimeConfig" in message
    assert (await call(client, "shared", region="eu-west-1", component="ic-b")).status_code == 200
    state = await control(client, "GET", "/_sim/endpoints/shared/estate")
    assert state["inference_components"]["ic-a"]["no_capacity"] == 1


async def test_components_need_the_header_and_must_exist(client: httpx.AsyncClient) -> None:
    status, code, message = error(await call(client, "shared", region="eu-west-1"))
    assert (status, code) == (400, "ValidationError") and "Inference Component Name header is required" in message
    status, code, message = error(await call(client, "shared", region="eu-west-1", component="ic-zz"))
    assert (status, code) == (400, "ValidationError") and "ic-zz" in message and "not found" in message


async def test_scaling_up_now_or_after_virtual_time(client: httpx.AsyncClient) -> None:
    got = await control(client, "POST", "/_sim/endpoints/shared/components/ic-a", {"copies": 1, "after_s": 30})
    assert got["inference_components"]["ic-a"]["copies"] == 0
    assert (await call(client, "shared", region="eu-west-1", component="ic-a")).status_code == 400
    await control(client, "POST", "/_sim/clock", {"advance_s": 29})
    assert (await call(client, "shared", region="eu-west-1", component="ic-a")).status_code == 400
    await control(client, "POST", "/_sim/clock", {"advance_s": 1})
    assert (await call(client, "shared", region="eu-west-1", component="ic-a")).status_code == 200
    await control(client, "POST", "/_sim/endpoints/shared/components/ic-a", {"copies": 0})
    assert (await call(client, "shared", region="eu-west-1", component="ic-a")).status_code == 400


async def test_a_refused_call_can_trigger_a_scale_out_like_the_cloudwatch_alarm() -> None:
    endpoint = SimEndpoint("auto", "tgi", inference_components={"ic": 0}, scale_out_after_s=120)
    app = create_simulator_app({"auto": endpoint})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        for _ in range(3):  # refused while the scale-out is in progress; only one copy is planned
            assert (await call(client, "auto", component="ic")).status_code == 400
        planned = (await control(client, "GET", "/_sim/endpoints/auto/estate"))["inference_components"]["ic"]
        assert [p["copies"] for p in planned["planned"]] == [1] and planned["no_capacity"] == 3
        await control(client, "POST", "/_sim/clock", {"advance_s": 120})
        assert (await call(client, "auto", component="ic")).status_code == 200


@pytest.mark.parametrize(("path", "body"), [
    ("/_sim/endpoints/shared/components/ic-a", {"copies": -1}),
    ("/_sim/endpoints/shared/components/ic-a", {"copies": 1, "after_s": "soon"}),
    ("/_sim/endpoints/shared/components/ic-a", {"copies": 1, "extra": 1}),
    ("/_sim/endpoints/shared/components/nope", {"copies": 1}),
    ("/_sim/clock", {"advance_s": -5}),
    ("/_sim/clock", {}),
])
async def test_bad_control_calls_are_400s(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    resp = await client.post(path, json=body)
    assert resp.status_code == 400 and resp.json()["error"]


async def test_serverless_endpoints_refuse_the_stream_api(client: httpx.AsyncClient) -> None:
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 4}, "stream": True}
    status, code, message = error(await call(client, "cold", stream=True, body=body))
    assert (status, code) == (400, "ValidationError") and "serverless" in message
    assert (await call(client, "cold")).status_code == 200


async def test_serverless_cold_starts_follow_idle_virtual_time(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await call(client, "cold")).status_code == 200
    assert (await control(client, "GET", "/_sim/endpoints/cold/estate"))["cold_starts"] == 1
    await control(client, "POST", "/_sim/clock", {"advance_s": SERVERLESS_WARM_S})
    assert (await call(client, "cold")).status_code == 200
    assert (await control(client, "GET", "/_sim/endpoints/cold/estate"))["cold_starts"] == 2


def test_endpoints_from_a_config_carry_region_keys_serverless_and_components(tmp_path: Path) -> None:
    config = {
        "aws": {"region": "us-east-1", "credentials": {"access_key_id": KEY, "secret_access_key": "s"}},
        "endpoints": {
            "a": {"endpoint_name": "east", "schema": "tgi", "instance_type": "ml.g5.2xlarge"},
            "b": {"endpoint_name": "west", "schema": "tgi", "instance_type": "ml.g5.2xlarge", "region": "eu-west-1",
                  "credentials": {"role_arn": "arn:aws:iam::111122223333:role/x"}},
            "c": {"endpoint_name": "ics", "schema": "tgi", "instance_type": "ml.g5.xlarge",
                  "inference_component": "i1"},
            "d": {"endpoint_name": "ics", "schema": "tgi", "instance_type": "ml.g5.xlarge",
                  "inference_component": "i2"},
            "e": {"endpoint_name": "sls", "schema": "lmi", "serverless": {"memory_mb": 2048}},
        },
        "models": {},
    }
    path = tmp_path / "jumpgate.yaml"
    path.write_text(yaml.safe_dump(config))
    got = endpoints_from_config(path)
    assert (got["east"].region, got["east"].access_keys) == ("us-east-1", (KEY,))
    assert (got["west"].region, got["west"].access_keys) == ("eu-west-1", ())  # a role's keys come from STS
    assert dict(got["ics"].inference_components) == {"i1": 1, "i2": 1}
    assert got["sls"].serverless and not got["east"].serverless
