"""deploy/ecs: the CloudFormation template passes cfn-lint; its task definition and service are valid inputs
of ECS's RegisterTaskDefinition and CreateService in botocore's own API model; and it agrees with the
Dockerfile, the drain period, least-privilege IAM, and the gateway's real /metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
import yaml
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
from cfnlint.decode import cfn_yaml

from tests.deploy import dockerfile
from tests.procs import ROOT, Proc

TEMPLATE = ROOT / "deploy" / "ecs" / "jumpgate.yaml"
DRAIN_SECONDS = 30
CFN_LINT = shutil.which("cfn-lint") or str(Path(sys.executable).parent / "cfn-lint")
# CloudFormation maps whose keys are data, not property names: kept as they are when converting to the API.
DATA_MAPS = {"Options", "DockerLabels", "SystemControls"}
SAMPLE = {"AWS::Region": "us-east-1", "AWS::AccountId": "111122223333", "AWS::Partition": "aws",
          "AWS::StackName": "llm-gateway", "PrometheusRemoteWriteUrl":
          "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"}

Json = Any


@pytest.fixture(scope="module")
def template() -> dict[str, Json]:
    loaded: dict[str, Json] = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    return loaded


def resource(template: dict[str, Json], logical_id: str) -> dict[str, Json]:
    props: dict[str, Json] = template["Resources"][logical_id]["Properties"]
    return props


def containers(template: dict[str, Json]) -> dict[str, dict[str, Json]]:
    return {c["Name"]: c for c in resource(template, "TaskDefinition")["ContainerDefinitions"]}


def cfn_lint(path: Path) -> list[dict[str, Json]]:
    done = subprocess.run([CFN_LINT, "--format", "json", str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode in (0, 2, 4, 6, 8, 10, 12, 14), done.stderr  # bit flags of finding levels, not a crash
    findings: list[dict[str, Json]] = json.loads(done.stdout or "[]")
    return findings


def test_cfn_lint_finds_nothing() -> None:
    assert cfn_lint(TEMPLATE) == []


def test_cfn_lint_is_really_linting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("StopTimeout: 30", "StopTimeout: thirty")
                      .replace("NetworkMode: awsvpc", "NetworkMode: awsvcp"))
    assert len(cfn_lint(broken)) >= 2


def resolve(value: Json) -> Json:
    """Intrinsic functions → plausible sample values, so the result can be checked against the API model."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return SAMPLE.get(arg, f"sample-{arg}")
        if fn == "Fn::GetAtt":
            return f"arn:aws:iam::111122223333:role/sample-{arg[0]}"
        if fn == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: SAMPLE.get(m.group(1), f"sample-{m.group(1)}"), arg)
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def to_api(value: Json, key: str = "") -> Json:
    """CloudFormation property names (PascalCase) → ECS API member names (camelCase)."""
    if isinstance(value, dict):
        if key in DATA_MAPS:
            return dict(value)
        return {k[0].lower() + k[1:]: to_api(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_api(v, key) for v in value]
    return value


def check_against_model(operation: str, params: dict[str, Json]) -> None:
    model = botocore.session.get_session().get_service_model("ecs").operation_model(operation)
    validate_parameters(params, model.input_shape)


def test_task_definition_is_a_valid_register_task_definition_input(template: dict[str, Json]) -> None:
    params = to_api(resolve(resource(template, "TaskDefinition")))
    check_against_model("RegisterTaskDefinition", params)
    assert {c["name"] for c in params["containerDefinitions"]} == {"config-writer", "jumpgate", "adot-collector"}


def test_service_is_a_valid_create_service_input(template: dict[str, Json]) -> None:
    params = to_api(resolve(resource(template, "Service")))
    params["desiredCount"] = int(template["Parameters"]["DesiredCount"]["Default"])  # a Number parameter
    params["networkConfiguration"]["awsvpcConfiguration"]["subnets"] = ["subnet-1"]
    params["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] = ["sg-1"]
    check_against_model("CreateService", params)


def test_model_validation_catches_mistakes(template: dict[str, Json]) -> None:
    params = to_api(resolve(resource(template, "TaskDefinition")))
    params["containerDefinitions"][1]["stopTimeout"] = "30"
    params["containerDefinitions"][1]["healthCheck"]["intervall"] = 15
    with pytest.raises(ParamValidationError) as caught:
        check_against_model("RegisterTaskDefinition", params)
    assert "stopTimeout" in str(caught.value) and "intervall" in str(caught.value)


def test_gateway_container_matches_the_image_and_the_drain(template: dict[str, Json]) -> None:
    gateway = containers(template)["jumpgate"]
    image = dockerfile.load()
    assert gateway["StopTimeout"] == DRAIN_SECONDS
    assert gateway["HealthCheck"]["Command"] == ["CMD", *dockerfile.healthcheck(image)[1]]
    assert [p["ContainerPort"] for p in gateway["PortMappings"]] == [dockerfile.port(image)]
    assert gateway["User"] == str(dockerfile.user_id(image))
    (balancer,) = resource(template, "Service")["LoadBalancers"]
    assert (balancer["ContainerName"], balancer["ContainerPort"]) == ("jumpgate", dockerfile.port(image))


def test_every_container_logs_with_awslogs(template: dict[str, Json]) -> None:
    for name, c in containers(template).items():
        options = c["LogConfiguration"]["Options"]
        assert c["LogConfiguration"]["LogDriver"] == "awslogs", name
        assert options["awslogs-group"] == {"Ref": "LogGroup"}
        assert options["awslogs-stream-prefix"] == name


def test_task_role_may_invoke_only_the_configured_endpoints(template: dict[str, Json]) -> None:
    statements = [s for p in resource(template, "TaskRole")["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert s["Effect"] == "Allow"
        assert not [a for a in actions if "*" in a], s
        assert s["Resource"] != "*" and "*" not in json.dumps(s["Resource"]), s
    sagemaker = [s for s in statements if any(str(a).startswith("sagemaker:") for a in s["Action"])]
    assert len(sagemaker) == 1
    assert set(sagemaker[0]["Action"]) == {"sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"}
    assert sagemaker[0]["Resource"] == {"Ref": "EndpointArns"}
    assert template["Parameters"]["EndpointArns"]["Type"] == "CommaDelimitedList"


def test_config_writer_produces_the_file_the_gateway_reads(template: dict[str, Json], tmp_path: Path) -> None:
    """Run the init container's command as ECS would (secret in the environment) and check the result."""
    by_name = containers(template)
    writer, gateway = by_name["config-writer"], by_name["jumpgate"]
    config_path = {e["Name"]: e["Value"] for e in gateway["Environment"]}["JUMPGATE_CONFIG"]
    writer_mount = {m["ContainerPath"] for m in writer["MountPoints"]}
    gateway_mount = {m["ContainerPath"] for m in gateway["MountPoints"]}
    assert os.path.dirname(config_path) in writer_mount & gateway_mount
    assert {"ContainerName": "config-writer", "Condition": "SUCCESS"} in gateway["DependsOn"]
    sample = yaml.safe_load((ROOT / "deploy/kubernetes/base/configmap.yaml").read_text())["data"]["jumpgate.yaml"]
    command = writer["Command"][0].replace(os.path.dirname(config_path), str(tmp_path))
    env = {**os.environ, writer["Secrets"][0]["Name"]: sample}
    subprocess.run([sys.executable, *writer["EntryPoint"][1:], command], env=env, check=True, timeout=30)
    written = tmp_path / os.path.basename(config_path)
    assert written.read_text() == sample
    # the sample's API key hash comes from the environment (a Secret in Kubernetes, the task's secrets on ECS)
    check_env = {**os.environ, "JUMPGATE_API_KEY_SHA256": "0" * 64}
    done = subprocess.run([sys.executable, "-m", "service", "check-config", str(written)], cwd=ROOT, env=check_env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def adot_config(template: dict[str, Json]) -> dict[str, Json]:
    collector = containers(template)["adot-collector"]
    raw = {e["Name"]: e["Value"] for e in collector["Environment"]}["AOT_CONFIG_CONTENT"]
    config: dict[str, Json] = yaml.safe_load(resolve(raw))
    return config


def test_adot_pipeline_is_wired(template: dict[str, Json]) -> None:
    config = adot_config(template)
    pipeline = config["service"]["pipelines"]["metrics"]
    assert set(pipeline["receivers"]) <= set(config["receivers"])
    assert set(pipeline["exporters"]) <= set(config["exporters"])
    assert set(pipeline["processors"]) <= set(config["processors"])
    exporter = config["exporters"]["prometheusremotewrite"]
    assert exporter["endpoint"] == SAMPLE["PrometheusRemoteWriteUrl"]
    assert exporter["auth"]["authenticator"] in config["service"]["extensions"]
    statements = [s for p in resource(template, "TaskRole")["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert any(s["Action"] == "aps:RemoteWrite" for s in statements)


def test_adot_scrapes_the_gateway_metrics(template: dict[str, Json], image_server: Proc) -> None:
    (job,) = adot_config(template)["receivers"]["prometheus"]["config"]["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    assert target == f"127.0.0.1:{dockerfile.port(dockerfile.load())}"
    text = httpx.get(image_server.url + job["metrics_path"], timeout=10).text
    assert "# TYPE jumpgate_requests_total counter" in text
