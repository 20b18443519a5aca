"""`jumpgate discover` over two regions and two accounts, against moto in server mode: the second account is reached
through a role (moto's STS AssumeRole); endpoints serving one model (same JumpStart model id, or same image and
model data) become one model with a target per region / account; JumpStart Llama 3 / 3.1 on TGI and LMI, a
NeuronX model and a serverless endpoint are recognized; the output passes check-config."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config as BotoConfig

from service.config.check import run_check_config
from service.config.model import Config, parse_config
from service.discover.scan import run_discover
from service.pipeline.catalog import build_catalog
from service.transport.base import CredentialSpec
from tests.discover.conftest import ROLE as EXECUTION_ROLE
from tests.discover.conftest import reset, start_moto
from tests.procs import ROOT

OTHER_ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/jumpgate-discover"
JS_TAG = "sagemaker-sdk:jumpstart-model-id"


def ecr(region: str, image: str) -> str:
    return f"763104351884.dkr.ecr.{region}.amazonaws.com/{image}"


TGI = "huggingface-pytorch-tgi-inference:2.3.0-tgi2.2.0-gpu-py310-cu121-ubuntu22.04"
LMI = "djl-inference:0.29.0-lmi11.0.0-cu124"
NEURONX = "djl-inference:0.29.0-neuronx-sdk2.19.1"
HF = "huggingface-pytorch-inference:1.13.1-transformers4.26.0-cpu-py39-ubuntu20.04"
LLAMA3_JS = "meta-textgeneration-llama-3-8b-instruct"
TGI_ENV = {"HF_MODEL_ID": "/opt/ml/model", "MAX_TOTAL_TOKENS": "8192", "MAX_CONCURRENT_REQUESTS": "16",
           "SM_NUM_GPUS": "1"}


def client(url: str, region: str, session: Any = None) -> Any:
    return (session or boto3.Session()).client("sagemaker", region_name=region, endpoint_url=url,
                                               config=BotoConfig(retries={"mode": "standard", "max_attempts": 1}))


def deploy(sm: Any, name: str, image: str, *, env: dict[str, str] | None = None, instance_type: str | None = None,
           serverless: dict[str, int] | None = None, tags: dict[str, str] | None = None,
           model_data: str | None = None) -> None:
    container: dict[str, Any] = {"Image": image, "Environment": env or {}}
    if model_data:
        container["ModelDataUrl"] = model_data
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=EXECUTION_ROLE, PrimaryContainer=container)
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": f"{name}-model"}
    variant |= {"ServerlessConfig": serverless} if serverless else {"InstanceType": instance_type,
                                                                   "InitialInstanceCount": 1}
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[variant])
    tag_list = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=tag_list)


@pytest.fixture(scope="module")
def moto_url(aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_moto(tmp_path_factory.mktemp("moto-estate"), "tests.discover.moto_launcher")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL_STS", server.url)  # STS is moto too (botocore's service-specific endpoint)
        reset(server.url)
        _estate(server.url)
        yield server.url
    server.stop()


def _estate(url: str) -> None:
    east, west = client(url, "us-east-1"), client(url, "eu-west-1")
    deploy(east, "llama3-chat", ecr("us-east-1", TGI), env=TGI_ENV, instance_type="ml.g5.2xlarge",
           tags={JS_TAG: LLAMA3_JS, "sagemaker-sdk:jumpstart-model-version": "2.0.4"})
    deploy(west, "llama3-chat-eu", ecr("eu-west-1", TGI), env=TGI_ENV, instance_type="ml.g5.2xlarge",
           tags={JS_TAG: LLAMA3_JS})
    deploy(east, "llama3-neuron", ecr("us-east-1", NEURONX), instance_type="ml.inf2.24xlarge",
           env={"OPTION_N_POSITIONS": "4096", "OPTION_MAX_ROLLING_BATCH_SIZE": "4", "OPTION_ROLLING_BATCH": "auto"},
           tags={JS_TAG: "meta-textgenerationneuron-llama-3-8b-instruct"})
    deploy(east, "flan-serverless", ecr("us-east-1", HF), env={"HF_TASK": "text2text-generation"},
           serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 5})
    deploy(east, "mistral-a", ecr("us-east-1", TGI), instance_type="ml.g5.2xlarge",
           model_data="s3://acme-models-us-east-1/mistral-7b/model.tar.gz")
    assumed = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=ROLE, RoleSessionName="setup")
    creds = assumed["Credentials"]
    other = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["SessionToken"])
    other_west, other_east = client(url, "eu-west-1", other), client(url, "us-east-1", other)
    deploy(other_west, "llama31-lmi", ecr("eu-west-1", LMI), instance_type="ml.g5.12xlarge",
           env={"OPTION_MODEL_ID": "/opt/ml/model", "OPTION_MAX_MODEL_LEN": "8192",
                "OPTION_MAX_ROLLING_BATCH_SIZE": "32"},
           tags={JS_TAG: "meta-textgeneration-llama-3-1-8b-instruct"})
    deploy(other_east, "mistral-b", ecr("us-east-1", TGI), instance_type="ml.g6.2xlarge",
           model_data="s3://acme-models-us-east-1/mistral-7b/model.tar.gz")
    assert [e["EndpointName"] for e in other_east.list_endpoints()["Endpoints"]] == ["mistral-b"]  # other account


@pytest.fixture(scope="module")
def text(moto_url: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = run_discover(["us-east-1", "eu-west-1"], endpoint_url=moto_url, role_arns=[ROLE], out=out, err=err)
    assert code == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def config(text: str) -> Config:
    return parse_config(yaml.safe_load(text), source="<discover>")


def test_the_output_passes_check_config(text: str, tmp_path: Path) -> None:
    path = tmp_path / "estate.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    assert run_check_config(str(path), out=out, err=err) == 0, err.getvalue()
    assert f"credentials: role {ROLE} assumed with STS" in out.getvalue()
    assert text.startswith("# jumpgate config written by `jumpgate discover` for us-east-1; eu-west-1; "
                           f"us-east-1 through role {ROLE}; eu-west-1 through role {ROLE} at ")


def test_every_endpoint_carries_its_region_and_the_role_it_was_found_through(config: Config) -> None:
    where = {ep.endpoint_name: (ep.region, ep.credentials.role_arn if ep.credentials else None)
             for ep in config.endpoints.values()}
    assert where == {"llama3-chat": ("us-east-1", None), "llama3-chat-eu": ("eu-west-1", None),
                     "llama3-neuron": ("us-east-1", None), "flan-serverless": ("us-east-1", None),
                     "mistral-a": ("us-east-1", None), "llama31-lmi": ("eu-west-1", ROLE),
                     "mistral-b": ("us-east-1", ROLE)}
    assert config.aws.region == "us-east-1"


def test_one_jumpstart_model_in_two_regions_is_one_model_with_two_targets(config: Config, text: str) -> None:
    model = config.models["llama3-chat"]
    assert [(t.endpoint, t.weight) for t in model.targets] == [("llama3-chat", 1), ("llama3-chat-eu", 1)]
    for eid in ("llama3-chat", "llama3-chat-eu"):
        ep = config.endpoints[eid]
        assert (ep.schema_, ep.chat_template, ep.custom_attributes) == ("tgi", "llama3", "accept_eula=true")
        assert (ep.context_length, ep.max_concurrency) == (8192, 16)
    assert f"  llama3-chat:  # serves {LLAMA3_JS}: llama3-chat in us-east-1, llama3-chat-eu in eu-west-1" in text
    assert f"# JumpStart model {LLAMA3_JS} (tag {JS_TAG})" in text


def test_same_image_and_model_data_in_two_accounts_is_one_model(config: Config) -> None:
    model = config.models["mistral-a"]
    assert sorted(t.endpoint for t in model.targets) == ["mistral-a", "mistral-b"]
    assert "mistral-b" not in config.models


def test_llama31_on_lmi_neuronx_and_serverless_are_recognized(config: Config) -> None:
    lmi = config.endpoints["llama31-lmi"]
    assert (lmi.schema_, lmi.chat_template, lmi.context_length, lmi.max_concurrency) == ("lmi", "llama3", 8192, 32)
    neuron = config.endpoints["llama3-neuron"]
    assert (neuron.schema_, neuron.chat_template, neuron.context_length) == ("neuron", "llama3", 4096)
    flan = config.endpoints["flan-serverless"]
    assert flan.schema_ == "text2text" and flan.instance_type is None
    assert flan.serverless is not None and flan.serverless.memory_mb == 2048 and flan.max_concurrency == 5


def test_the_merged_model_routes_across_regions_and_accounts(config: Config) -> None:
    catalog = build_catalog(config)
    targets = [(ep.target.region, ep.target.runtime_url, ep.target.credentials)
               for ep, _ in catalog.models["llama3-chat"].targets]
    assert [t[:2] for t in targets] == [("us-east-1", "https://runtime.sagemaker.us-east-1.amazonaws.com"),
                                        ("eu-west-1", "https://runtime.sagemaker.eu-west-1.amazonaws.com")]
    mistral = {ep.id: ep.target.credentials for ep, _ in catalog.models["mistral-a"].targets}
    assert mistral["mistral-b"] == CredentialSpec("role", role_arn=ROLE)
    assert mistral["mistral-a"] is not None and mistral["mistral-a"].kind == "chain"


def test_the_cli_takes_several_regions_and_roles(moto_url: str, aws_env: dict[str, str]) -> None:
    env = {**aws_env, "AWS_ENDPOINT_URL_STS": moto_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "service", "discover", "--endpoint-url", moto_url,
                           "--region", "us-east-1", "--region", "eu-west-1", "--role-arn", ROLE],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert "llama31-lmi" in done.stdout and "mistral-b" in done.stdout
