from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from service.config.demo import demo_config_data
from tests.images import ImageServer, png
from tests.procs import Proc, Sim, running_stack

#: what the loopback image server serves (LangChain's image tests fetch the first path's stand-in)
IMAGES = {"/images/red.png": png(), "/raw/": png(32, 16, (20, 90, 200)),
          "/images/large.png": png(640, 640, noise=True)}


LMI_TOOLS_ENDPOINT = "jumpgate-e2e-lmi-tools"


def e2e_config(runtime_url: str, image_host: str = "images.invalid") -> dict[str, Any]:
    """The demo config plus a model whose policy drops unsupported parameters, and the loopback image server
    allowed as an image URL host."""
    data = demo_config_data(runtime_url)
    data["models"]["llama3-8b-lenient"] = {"targets": [{"endpoint": "llama3-8b-g5"}], "unsupported_params": "drop"}
    data["images"] = {"fetch_allowed_hosts": [image_host], "max_image_bytes": 1024 * 1024}
    # the vision endpoint through TGI's generate route too (images as markdown in `inputs`)
    data["endpoints"]["llama32-vision-generate"] = {
        **data["endpoints"]["llama32-11b-vision-g5"], "schema": "tgi", "chat_template": "llama3"}
    data["models"]["llama32-vision-generate"] = {"targets": [{"endpoint": "llama32-vision-generate"}]}
    # models whose targets differ: requests with tools / images may only go to the targets that can take them
    data["models"]["tools-mixed"] = {"targets": [{"endpoint": "flan-t5-xl-g5", "weight": 9},
                                                 {"endpoint": "llama3-8b-dolly-ft"}]}
    data["models"]["vision-mixed"] = {"targets": [{"endpoint": "llama3-8b-g5-messages", "weight": 9},
                                                  {"endpoint": "llama32-11b-vision-g5"}]}
    # LMI vLLM chat with a tool parser (rolling batch): native tools (the simulator endpoint: LMI_TOOLS_ENDPOINT)
    # (a Llama 3.1: `required` with several tools, which rolling batch refuses, goes through Meta's format)
    data["endpoints"]["lmi-tools"] = {"endpoint_name": LMI_TOOLS_ENDPOINT, "schema": "openai",
                                      "instance_type": "ml.g5.2xlarge", "context_length": 8192,
                                      "tool_format": "llama3_json",
                                      "container": {"kind": "lmi", "version": "0.33.0",
                                                    "tool_call_parser": "llama3_json"}}
    data["models"]["lmi-tools"] = {"targets": [{"endpoint": "lmi-tools"}]}
    return data


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    with ImageServer.running(IMAGES) as server:
        yield server


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, image_server: ImageServer) -> Iterator[tuple[Proc, Proc]]:
    with running_stack(tmp_path_factory.mktemp("e2e"), lambda url: e2e_config(url, image_server.host)) as pair:
        # the simulator plays its demo endpoints; the LMI endpoint with a tool parser is added through its API
        httpx.put(f"{pair[0].url}/_sim/endpoints/{LMI_TOOLS_ENDPOINT}",
                  json={"container": "lmi", "version": "0.33.0", "tool_call_parser": "llama3_json"}).raise_for_status()
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A test listed in its class's `refused` mapping (test name -> error code) passes only if it fails with a 400
    of that code naming the field: LangChain's standard tests for a feature a model lacks (test_langchain_standard)."""
    refused = getattr(getattr(item, "cls", None), "refused", None)
    code = refused.get(getattr(item, "originalname", item.name)) if isinstance(refused, dict) else None
    if code is None:
        return (yield)
    try:
        yield
    except openai.BadRequestError as error:
        body = error.body if isinstance(error.body, dict) else {}
        assert error.status_code == 400 and body.get("code") == code, f"expected a 400 {code}, got {error}"
        assert body.get("param") == ("tools" if code == "tools_not_supported" else "response_format"), body
        return None
    raise AssertionError(f"{item.name} was expected to be refused with the documented 400 ({code}), and passed")
