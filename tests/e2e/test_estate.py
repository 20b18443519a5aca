"""End to end across regions and accounts, with real processes on loopback: moto in server mode as STS, one
simulator process per region (each checking SigV4 scope and access key per endpoint), the gateway under uvicorn,
the official OpenAI SDK as client.

- A model with targets in two regions: the first region fails, the answer comes from the second (ordinary
  failover); each region's simulator received requests signed for its own region.
- The endpoint behind a role received the assumed role's access key, issued by moto's STS AssumeRole, not the base
  key; the simulator refuses any other key for it.
- An inference component with no copy answers SageMaker's no-capacity error: a sibling answers instead; with no
  sibling, a 503 with Retry-After.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai import OpenAI

from tests.discover.conftest import start_moto
from tests.procs import Proc, Sim, free_port, poll, start_gateway
from tests.sigv4 import verify

pytestmark = pytest.mark.e2e

EAST_KEY, EAST_SECRET = "AKIDEASTSTATIC000001", "east-static-secret"
BASE_KEY, BASE_SECRET = "AKIDBASECHAINKEY0001", "base-chain-secret"  # the gateway's default chain (env)
ROLE = "arn:aws:iam::444455556666:role/jumpgate-invoke"
TGI = {"schema": "tgi", "instance_type": "ml.g5.2xlarge", "chat_template": "llama3", "context_length": 8192}


@dataclass
class Estate:
    moto: Proc
    east: Proc
    west: Proc
    gateway: Proc


def estate_config(east_url: str, west_url: str) -> dict[str, Any]:
    return {
        "aws": {"region": "us-east-1", "credentials": {"access_key_id": EAST_KEY, "secret_access_key": EAST_SECRET}},
        "endpoints": {
            "llama3-east": {"endpoint_name": "llama3-east", **TGI, "runtime_url": east_url},
            "llama3-west": {"endpoint_name": "llama3-west", **TGI, "region": "eu-west-1", "runtime_url": west_url,
                            "credentials": {"role_arn": ROLE, "external_id": "jumpgate-e2e",
                                            "session_name": "jumpgate-e2e", "duration_s": 900}},
            "llama3-ic": {"endpoint_name": "llama3-shared", **TGI, "runtime_url": east_url,
                          "inference_component": "llama3-ic"},
            # scaled to zero by the tests: the gateway waits for a copy up to scale_from_zero_wait_s
            "llama3-ic-wait": {"endpoint_name": "llama3-shared", **TGI, "runtime_url": east_url,
                               "inference_component": "llama3-ic-wait", "scale_from_zero_wait_s": 120},
            "llama3-ic-brief": {"endpoint_name": "llama3-shared", **TGI, "runtime_url": east_url,
                                "inference_component": "llama3-ic-brief", "scale_from_zero_wait_s": 0.2},
            "llama3-serverless": {"endpoint_name": "llama3-serverless", "schema": "tgi", "chat_template": "llama3",
                                  "runtime_url": east_url, "serverless": {"memory_mb": 4096}},
        },
        "models": {
            # Weights make the east endpoint the first candidate (routing is a weighted random order).
            "llama3": {"targets": [{"endpoint": "llama3-east", "weight": 1e9}, {"endpoint": "llama3-west"}]},
            "llama3-ic": {"targets": [{"endpoint": "llama3-ic", "weight": 1e9}, {"endpoint": "llama3-east"}]},
            "llama3-ic-only": {"targets": [{"endpoint": "llama3-ic"}]},
            "llama3-ic-wait": {"targets": [{"endpoint": "llama3-ic-wait"}]},
            "llama3-ic-brief": {"targets": [{"endpoint": "llama3-ic-brief"}]},
            "llama3-serverless": {"targets": [{"endpoint": "llama3-serverless"}]},
        },
    }


def simulator(tmp: Path, port: int, config: Path, region: str) -> Proc:
    args = ["-m", "service.simulator", "--port", str(port), "--latency", "zero", "--config", str(config),
            "--region", region]
    return Proc(args, port, "/ping", tmp / f"simulator-{region}.log")


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    """Poll readiness with a deadline: ready once every credential source (here: the assumed role) is fetched."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(url + "/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the gateway never became ready (credentials not resolved)")


def assumed_key(moto_url: str) -> dict[str, Any]:
    data = httpx.get(moto_url + "/moto-api/data.json", timeout=10).raise_for_status().json()
    roles = [r for r in data.get("sts", {}).get("AssumedRole", []) if r["role_arn"] == ROLE]
    assert len(roles) == 1, roles  # one refresher for the role, one AssumeRole so far
    return roles[0]


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    tmp = tmp_path_factory.mktemp("estate")
    moto = start_moto(tmp, "moto.server")
    procs: list[Proc] = [moto]
    try:
        east_port, west_port = free_port(), free_port()
        config = tmp / "jumpgate.yaml"
        config.write_text(yaml.safe_dump(estate_config(f"http://127.0.0.1:{east_port}",
                                                       f"http://127.0.0.1:{west_port}")))
        east = simulator(tmp, east_port, config, "us-east-1")
        procs.append(east)
        west = simulator(tmp, west_port, config, "eu-west-1")
        procs.append(west)
        env = {"AWS_ENDPOINT_URL_STS": moto.url, "AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": BASE_SECRET,
               "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
               "AWS_EC2_METADATA_DISABLED": "true"}
        gateway = start_gateway(tmp, config, env=env)
        procs.append(gateway)
        wait_ready(gateway.url)
        yield Estate(moto, east, west, gateway)
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def sims(estate: Estate) -> Iterator[tuple[Sim, Sim]]:
    with Sim.clean(estate.east.url) as east, Sim.clean(estate.west.url) as west:
        yield east, west


@pytest.fixture
def client(estate: Estate) -> Iterator[OpenAI]:
    with OpenAI(base_url=estate.gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30) as c:
        yield c


def chat(client: OpenAI, model: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=8)
    answer = raw.parse()
    return raw.headers["x-jumpgate-endpoint"], answer.choices[0].message.content or ""


def credential(record: dict[str, Any]) -> tuple[str, str]:
    scope = record["headers"]["authorization"].split("Credential=")[1].split(",")[0].split("/")
    return scope[0], scope[2]  # access key, region


def test_the_role_endpoint_accepts_only_the_key_sts_issued_for_the_role(estate: Estate, sims: tuple[Sim, Sim],
                                                                        client: OpenAI) -> None:
    _, west = sims
    role = assumed_key(estate.moto.url)
    assert role["access_key_id"] not in (BASE_KEY, EAST_KEY) and role["external_id"] == "jumpgate-e2e"
    # The simulator cannot know what STS issues: tell it, so that any other key is refused as AWS would.
    west.http.patch("/_sim/endpoints/llama3-west", json={"access_keys": [role["access_key_id"]]}).raise_for_status()
    for key, secret, status in ((BASE_KEY, BASE_SECRET, 403), (role["access_key_id"], role["secret_access_key"], 200)):
        resp = signed_call(estate.west.url, "llama3-west", "eu-west-1", key, secret, role["session_token"])
        assert resp.status_code == status, resp.text
    assert chat(client, "llama3")[0] == "llama3-east"  # the east region is healthy: it answers first


def signed_call(url: str, endpoint: str, region: str, key: str, secret: str, token: str) -> httpx.Response:
    """A call made directly to a region's simulator, signed with botocore as any AWS client would."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = b'{"inputs": "Hello", "parameters": {"max_new_tokens": 4}}'
    request = AWSRequest(method="POST", url=f"{url}/endpoints/{endpoint}/invocations", data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key, secret, token), "sagemaker", region).add_auth(request)
    return httpx.post(request.url, content=body, headers=dict(request.headers.items()), timeout=10)


def test_a_failing_region_fails_over_to_the_other_region_each_signed_for_its_own(
        estate: Estate, sims: tuple[Sim, Sim], client: OpenAI) -> None:
    east, west = sims
    role = assumed_key(estate.moto.url)
    west.http.patch("/_sim/endpoints/llama3-west", json={"access_keys": [role["access_key_id"]]}).raise_for_status()
    east.fault(endpoint="llama3-east", error_rate=1.0, error_kind="unavailable")
    endpoint, text = chat(client, "llama3")
    assert endpoint == "llama3-west" and text
    (east_call,) = east.requests("llama3-east")  # tried first, failed with 503 ServiceUnavailable
    (west_call,) = west.requests("llama3-west")
    assert credential(east_call) == (EAST_KEY, "us-east-1")
    assert credential(west_call) == (role["access_key_id"], "eu-west-1")
    # Both signatures recomputed with botocore from what each region's simulator received.
    for call, key, secret in ((east_call, EAST_KEY, EAST_SECRET),
                              (west_call, role["access_key_id"], role["secret_access_key"])):
        verify("POST", call["path"], call["headers"], base64.b64decode(call["body_b64"]), key, secret)
    assert west_call["headers"]["x-amz-security-token"] == role["session_token"]
    metrics = httpx.get(estate.gateway.url + "/metrics", timeout=10).text
    assert ('jumpgate_fallbacks_total{from_endpoint="llama3-east",model="llama3",to_endpoint="llama3-west"}'
            in metrics)


def test_a_component_with_no_copy_falls_back_to_its_sibling(estate: Estate, sims: tuple[Sim, Sim],
                                                            client: OpenAI) -> None:
    east, _ = sims
    east.http.post("/_sim/endpoints/llama3-shared/components/llama3-ic", json={"copies": 0}).raise_for_status()
    try:
        endpoint, _ = chat(client, "llama3-ic")
        assert endpoint == "llama3-east"
        (refused,) = east.requests("llama3-shared")
        assert refused["headers"]["x-amzn-sagemaker-inference-component"] == "llama3-ic"
        with pytest.raises(openai.APIStatusError) as info:
            chat(client, "llama3-ic-only")
        err = info.value
        assert err.status_code == 503 and err.response.headers.get("retry-after")
        body = err.response.json()["error"]
        assert body["code"] == "upstream_no_capacity" and "scaled to zero" in body["message"]
        metrics = httpx.get(estate.gateway.url + "/metrics", timeout=10).text
        assert 'jumpgate_upstream_errors_total{endpoint="llama3-ic",error="no_capacity",region="us-east-1"}' in metrics
        east.http.post("/_sim/endpoints/llama3-shared/components/llama3-ic", json={"copies": 1}).raise_for_status()
        assert chat(client, "llama3-ic-only")[0] == "llama3-ic"
    finally:
        east.http.post("/_sim/endpoints/llama3-shared/components/llama3-ic", json={"copies": 1})


def test_a_component_scaled_to_zero_is_waited_for_then_answers(estate: Estate, sims: tuple[Sim, Sim],
                                                               client: OpenAI) -> None:
    east, _ = sims
    component = "/_sim/endpoints/llama3-shared/components/llama3-ic-wait"
    east.http.post(component, json={"copies": 0}).raise_for_status()
    answered: list[tuple[str, str]] = []
    caller = threading.Thread(target=lambda: answered.append(chat(client, "llama3-ic-wait")))
    caller.start()
    try:
        # The gateway holds the request and asks again: wait until the simulator has refused it more often than
        # the ordinary retries would (max_attempts 3), so the request is in its scale-from-zero wait.
        poll(lambda: len(east.requests("llama3-shared")) >= 4)
        assert not answered
        east.http.post(component, json={"copies": 1}).raise_for_status()  # SageMaker started a copy
        caller.join(timeout=60)
        assert answered and answered[0][0] == "llama3-ic-wait" and answered[0][1]
    finally:
        east.http.post(component, json={"copies": 1})
        caller.join(timeout=60)
    waits = metric_line(estate.gateway.url, 'jumpgate_scale_from_zero_waits_total{endpoint="llama3-ic-wait"}')
    assert waits >= 1


def test_past_the_scale_from_zero_wait_the_answer_is_503_with_retry_after(estate: Estate, sims: tuple[Sim, Sim],
                                                                         client: OpenAI) -> None:
    east, _ = sims
    component = "/_sim/endpoints/llama3-shared/components/llama3-ic-brief"
    east.http.post(component, json={"copies": 0}).raise_for_status()
    try:
        with pytest.raises(openai.APIStatusError) as info:
            chat(client, "llama3-ic-brief")
        assert info.value.status_code == 503 and int(info.value.response.headers["retry-after"]) >= 1
        error = info.value.response.json()["error"]
        assert error["code"] == "upstream_no_capacity" and "after 0.2s" in error["message"]
    finally:
        east.http.post(component, json={"copies": 1})


def test_a_stream_to_a_serverless_endpoint_is_served_and_costed_by_memory(estate: Estate, sims: tuple[Sim, Sim],
                                                                         client: OpenAI) -> None:
    east, _ = sims
    with client.chat.completions.with_streaming_response.create(
            model="llama3-serverless", messages=[{"role": "user", "content": "Hello"}], max_tokens=8, stream=True,
            extra_headers={"x-request-id": "serverless-stream-1"}) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) >= 3
    (call,) = east.requests("llama3-serverless")
    assert call["path"].endswith("/invocations")  # serverless cannot stream: invoked, and the answer re-emitted
    record = request_line(estate.gateway, "serverless-stream-1")
    # Hand computation from the published prices (service/data/prices.yaml, read here as plain data):
    # compute = seconds x GB of memory x USD per GB-second; data = bytes / 2^30 x USD per GB.
    table = yaml.safe_load((Path(__file__).parents[2] / "service/data/prices.yaml").read_text())["serverless"]
    compute = record["upstream_ms"] / 1000 * 4096 / 1024 * float(table["compute_usd_per_gb_second"])
    data = record["upstream_bytes"] / 2**30 * float(table["data_usd_per_gb"])
    # upstream_ms is logged rounded to 0.01 ms: a sub-millisecond call can be off by 0.005 ms of compute
    rounding = 0.005 / 1000 * 4096 / 1024 * float(table["compute_usd_per_gb_second"])
    assert record["upstream_bytes"] > 0 and record["cost_usd"] == pytest.approx(compute + data, rel=1e-3,
                                                                                 abs=rounding)


def request_line(gateway: Proc, request_id: str) -> dict[str, Any]:
    text = gateway.output_with(f'"request_id": "{request_id}"')
    for line in text.splitlines():
        if line.startswith("{") and f'"request_id":"{request_id}"' in line.replace(" ", ""):
            record: dict[str, Any] = json.loads(line)
            return record
    raise AssertionError(f"no request line for {request_id}")


def metric_line(url: str, prefix: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

