"""LangChain's standard chat-model integration suite (langchain-tests `ChatModelIntegrationTests`, pinned in
pyproject) run against the gateway: `ChatOpenAI` pointed at the e2e stack's gateway process, the simulator (zero
latency) behind it.

- `llama3-8b` (TGI generate: Meta's tool format in the prompt, grammar for JSON), `llama3-8b-messages` (TGI
  Messages API: native tools and response_format), `llama3-8b-dolly` (LMI, instruction template: tools and JSON
  through the prompt), `lmi-tools` (LMI vLLM chat with a tool parser: native tools) and the vision model run the
  whole suite, tools, structured output, JSON mode, tool histories and agent loops included; the vision model
  also its image-input tests.
- `flan-t5-xl` and the Llama 2 models have no tool format: their tool-calling, structured-output, JSON-mode,
  tool-history and agent-loop tests must each fail with the documented 400 (`tools_not_supported` /
  `response_format_not_supported`), which is asserted, test by test, not skipped.

No internet here: the image tests' download from raw.githubusercontent.com goes to a loopback HTTP server serving
a PNG (`tests/images.py`), and so does the URL the model receives (the client's HTTP transport maps that host's
prefix to the loopback server, which the gateway's `images.fetch_allowed_hosts` allows).
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.images import ImageServer

pytestmark = [
    pytest.mark.e2e,
    # LangChain's own notices: pydantic v1 schemas, structured-output hints, its test helpers' deprecations
    pytest.mark.filterwarnings("ignore::UserWarning:langchain_openai.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    # the openai SDK's parsed completions, serialized by LangChain (a client-side notice)
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
]

GITHUB = "https://raw.githubusercontent.com/"


class StandIn(httpx.BaseTransport):
    """The client's transport: GitHub image URLs in request bodies point at the loopback image server."""

    def __init__(self, server: ImageServer) -> None:
        self.inner = httpx.HTTPTransport()
        self.target = f"{server.url}/raw/".encode()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if GITHUB.encode() in body:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            request = httpx.Request(request.method, request.url, headers=headers,
                                    content=body.replace(GITHUB.encode(), self.target))
        return self.inner.handle_request(request)


class _Gateway(ChatModelIntegrationTests):
    model_name: ClassVar[str]
    url: ClassVar[str] = ""
    server: ClassVar[ImageServer | None] = None

    @pytest.fixture(autouse=True)
    def _point_at_the_stack(self, gateway_url: str, image_server: ImageServer,
                            monkeypatch: pytest.MonkeyPatch) -> None:
        type(self).url, type(self).server = gateway_url, image_server
        download = httpx.get

        def local_get(url: str, **kwargs: Any) -> httpx.Response:
            return download(url.replace(GITHUB, f"{image_server.url}/raw/"), **kwargs)

        monkeypatch.setattr(httpx, "get", local_get)  # the tests' own image download

    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        assert self.server is not None
        # a fresh async client per model: LangChain's shared default one would outlive each test's event loop
        # stream_usage: the gateway honours stream_options.include_usage (LangChain asks only OpenAI's own API)
        return {"model": self.model_name, "base_url": f"{self.url}/v1", "api_key": "unused", "stream_usage": True,
                "http_client": httpx.Client(transport=StandIn(self.server)), "http_async_client": httpx.AsyncClient()}

    @property
    def supports_json_mode(self) -> bool:
        return True


class TestLlama3Tgi(_Gateway):
    model_name = "llama3-8b"


class TestLlama3Messages(_Gateway):
    model_name = "llama3-8b-messages"


class TestLlama3Dolly(_Gateway):
    model_name = "llama3-8b-dolly"


class TestLmiToolParser(_Gateway):
    model_name = "lmi-tools"  # LMI vLLM chat (rolling batch) with a tool parser: native tools


class TestLlama32Vision(_Gateway):
    model_name = "llama32-11b-vision"

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True


#: the standard tests that need tools or structured output, and the 400 code a model without them answers
REFUSED = {
    "test_tool_calling": "tools_not_supported", "test_tool_calling_async": "tools_not_supported",
    "test_bind_runnables_as_tools": "tools_not_supported",
    "test_tool_message_histories_string_content": "tools_not_supported",
    "test_tool_message_histories_list_content": "tools_not_supported", "test_tool_choice": "tools_not_supported",
    "test_tool_calling_with_no_arguments": "tools_not_supported",
    "test_tool_message_error_status": "tools_not_supported",
    "test_structured_few_shot_examples": "tools_not_supported", "test_agent_loop": "tools_not_supported",
    "test_unicode_tool_call_integration": "tools_not_supported",
    "test_structured_output": "response_format_not_supported",
    "test_structured_output_async": "response_format_not_supported",
    "test_structured_output_pydantic_2_v1": "tools_not_supported",  # v1 models fall back to function calling
    "test_structured_output_optional_param": "response_format_not_supported",
    "test_json_mode": "response_format_not_supported",
}


class _Refusing(_Gateway):
    """A model with no tool calling and no structured output: each test named in `refused` must end in the
    documented 400 with that code (checked by the `pytest_runtest_call` hook in tests/e2e/conftest.py, so the
    standard tests run unchanged)."""

    refused: ClassVar[dict[str, str]] = REFUSED


class _Llama2(_Refusing):
    """Llama 2's chat formats take consecutive messages of one role merged (issue 15, point 5): the standard
    double-messages test runs unchanged."""


class TestFlanT5(_Refusing):
    model_name = "flan-t5-xl"


class TestLlama2Neuron(_Llama2):
    model_name = "llama2-13b-neuron"


class TestLlama2JumpStart(_Llama2):
    model_name = "llama2-7b-chat"
