from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from service.config.demo import demo_config_data
from tests.procs import Proc, Sim, running_stack


def e2e_config(runtime_url: str) -> dict[str, Any]:
    """The demo config plus a model whose policy drops unsupported parameters."""
    data = demo_config_data(runtime_url)
    data["models"]["llama3-8b-lenient"] = {"targets": [{"endpoint": "llama3-8b-g5"}], "unsupported_params": "drop"}
    return data


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    with running_stack(tmp_path_factory.mktemp("e2e"), e2e_config) as pair:
        yield pair


@pytest.fixture
def sim(stack: tuple[Proc, Proc]) -> Iterator[Sim]:
    with Sim.clean(stack[0].url) as s:
        yield s


@pytest.fixture
def gateway_url(stack: tuple[Proc, Proc]) -> str:
    return stack[1].url


@pytest.fixture
def client(gateway_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0, timeout=30) as c:
        yield c
