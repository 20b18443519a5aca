"""A live stack for the client tests: the simulator and the gateway as real processes on loopback, with the
demo config (one model per payload schema), as tests/e2e does; plus a gateway that has no AWS credentials,
the one real way to make the gateway answer 503 on every call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.config.demo import demo_config_data
from tests.procs import Proc, Sim, running_stack, start_gateway

#: environment for a gateway process whose credential chain finds nothing: no env keys, no files, no
#: instance or container metadata (set empty rather than removed: Proc merges onto os.environ)
NO_AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
    "AWS_CONFIG_FILE": "/nonexistent/jumpgate-test/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/jumpgate-test/credentials",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_EC2_METADATA_DISABLED": "true",
}


#: a model whose endpoint gives up after half a second, for the 504 path
TIMEOUT_MODEL = "llama3-8b-impatient"


def client_test_config(runtime_url: str) -> dict[str, Any]:
    """The demo config plus TIMEOUT_MODEL: the demo TGI endpoint with a short upstream timeout."""
    data = demo_config_data(runtime_url)
    data["endpoints"]["llama3-8b-g5-impatient"] = {**data["endpoints"]["llama3-8b-g5"], "timeout_s": 0.5}
    data["models"][TIMEOUT_MODEL] = {"targets": [{"endpoint": "llama3-8b-g5-impatient"}]}
    return data


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    with running_stack(tmp_path_factory.mktemp("clients"), client_test_config) as pair:
        yield pair


@pytest.fixture(scope="session")
def gateway_url(stack: tuple[Proc, Proc]) -> str:
    return stack[1].url


@pytest.fixture
def sim(stack: tuple[Proc, Proc]) -> Iterator[Sim]:
    with Sim.clean(stack[0].url) as s:
        yield s


@pytest.fixture(scope="session")
def credentialless_gateway(tmp_path_factory: pytest.TempPathFactory, stack: tuple[Proc, Proc]) -> Iterator[Proc]:
    """The demo config without its static simulator credentials, in an environment with none either."""
    tmp = tmp_path_factory.mktemp("nocreds")
    data = demo_config_data(stack[0].url)
    del data["aws"]["credentials"]
    config = tmp / "jumpgate.yaml"
    config.write_text(yaml.safe_dump(data))
    gw = start_gateway(tmp, config, env=NO_AWS_CREDENTIALS)
    yield gw
    gw.stop()


def metric_value(base_url: str, name: str, **labels: str) -> float:
    """One sample of the gateway's /metrics, 0 when the series does not exist yet."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(base_url + "/metrics", timeout=10).raise_for_status().text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "clients" / "examples"
