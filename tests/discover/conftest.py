"""A moto SageMaker server on loopback, dummy AWS credentials, and a helper that deploys endpoints through boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.procs import Proc, free_port

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
#: Dummy credentials and no config files, so nothing from the machine's own AWS setup leaks in.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_EC2_METADATA_DISABLED": "true"}
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
          "AWS_ENDPOINT_URL_SAGEMAKER")


@pytest.fixture(scope="module")  # module, not session: the rest of the suite keeps its own environment
def aws_env() -> Iterator[dict[str, str]]:
    with pytest.MonkeyPatch.context() as mp:
        for name in _UNSET:
            mp.delenv(name, raising=False)
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        yield dict(AWS_ENV)


def start_moto(tmp: Path, module: str) -> Proc:
    """moto's server as a real process on a free loopback port (`module` is moto.server or the launcher)."""
    port = free_port()
    return Proc(["-m", module, "-H", "127.0.0.1", "-p", str(port)], port, "/moto-api/", tmp / f"moto-{port}.log")


def sagemaker(url: str) -> Any:
    # One attempt: moto answers calls it lacks with HTTP 500, which botocore would otherwise retry with backoff.
    return boto3.client("sagemaker", region_name=REGION, endpoint_url=url,
                        config=Config(retries={"mode": "standard", "max_attempts": 1}))


def reset(url: str) -> None:
    httpx.post(url + "/moto-api/reset", timeout=5).raise_for_status()


@dataclass
class Variant:
    image: str
    instance_type: str
    env: Mapping[str, str] = field(default_factory=dict)
    count: int = 1
    weight: float | None = None
    name: str = "AllTraffic"
    model: str = ""  # the SageMaker model's name; default: <endpoint>-<variant>
    containers: bool = False  # give the image as the first of `Containers` rather than `PrimaryContainer`


def deploy(client: Any, endpoint: str, *variants: Variant) -> None:
    """Create a model per variant, an endpoint config and the endpoint, as a deployment script would."""
    production = []
    for v in variants:
        model = v.model or f"{endpoint}-{v.name}".lower()
        container = {"Image": v.image, "Environment": dict(v.env)}
        placement = {"Containers": [container]} if v.containers else {"PrimaryContainer": container}
        client.create_model(ModelName=model, ExecutionRoleArn=ROLE, **placement)
        pv: dict[str, Any] = {"VariantName": v.name, "ModelName": model, "InstanceType": v.instance_type,
                              "InitialInstanceCount": v.count}
        production.append(pv | ({"InitialVariantWeight": v.weight} if v.weight is not None else {}))
    client.create_endpoint_config(EndpointConfigName=f"{endpoint}-config", ProductionVariants=production)
    client.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")
