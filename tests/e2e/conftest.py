from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from service.demo import demo_config_data
from tests.procs import Proc, running_stack


def e2e_config(runtime_url: str) -> dict[str, Any]:
    """The demo config plus a model whose policy drops unsupported parameters."""
    data = demo_config_data(runtime_url)
    data["models"]["llama3-8b-lenient"] = {"targets": [{"endpoint": "llama3-8b-g5"}], "unsupported_params": "drop"}
    return data


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    with running_stack(tmp_path_factory.mktemp("e2e"), e2e_config) as pair:
        yield pair


class Sim:
    """The simulator's control API, as tests use it."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def reset(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()
        self.http.delete("/_sim/faults").raise_for_status()

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        got = self.http.get("/_sim/requests").raise_for_status().json()
        return [r for r in got if endpoint is None or r["endpoint"] == endpoint]

    def fault(self, **spec: Any) -> None:
        self.http.post("/_sim/faults", json=spec).raise_for_status()


@pytest.fixture
def sim(stack: tuple[Proc, Proc]) -> Iterator[Sim]:
    s = Sim(stack[0].url)
    s.reset()
    yield s
    s.reset()
    s.http.close()


@pytest.fixture
def gateway_url(stack: tuple[Proc, Proc]) -> str:
    return stack[1].url


@pytest.fixture
def client(gateway_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0, timeout=30) as c:
        yield c
