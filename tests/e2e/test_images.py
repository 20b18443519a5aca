"""Image inputs end to end (official openai SDK -> gateway process -> simulator's Llama 3.2 Vision on TGI): data
URIs sent inline, http(s) URLs fetched by the gateway from allowed hosts only (a loopback image server here) and
inlined, the limits, text-only models, and routing by vision capability."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.conftest import IMAGES
from tests.images import ImageServer
from tests.procs import Sim

pytestmark = pytest.mark.e2e

VISION = "jumpgate-demo-tgi-llama32-11b-vision"
RED = IMAGES["/images/red.png"]


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def ask(url: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "What colour is this?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def sent_image(sim: Sim) -> str:
    [request] = sim.requests(VISION)
    [part] = [p for p in request["body_json"]["messages"][0]["content"] if p["type"] == "image_url"]
    return str(part["image_url"]["url"])


def test_a_data_uri_reaches_the_vision_model(client: OpenAI, sim: Sim) -> None:
    answer = client.chat.completions.create(model="llama32-11b-vision", messages=ask(data_uri(RED)), max_tokens=20)
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.prompt_tokens > 1601  # the image's tokens, counted upstream
    assert sent_image(sim) == data_uri(RED)


def test_an_allowed_url_is_fetched_and_sent_inline(client: OpenAI, sim: Sim, image_server: ImageServer) -> None:
    client.chat.completions.create(model="llama32-11b-vision", messages=ask(f"{image_server.url}/images/red.png"),
                                   max_tokens=20)
    assert sent_image(sim) == data_uri(RED)  # the container never sees the URL


def test_tgi_generate_gets_the_image_as_markdown(client: OpenAI, sim: Sim) -> None:
    client.chat.completions.create(model="llama32-vision-generate", messages=ask(data_uri(RED)), max_tokens=20)
    [request] = sim.requests(VISION)
    assert f"What colour is this?![]({data_uri(RED)})" in request["body_json"]["inputs"]


def refusal(client: OpenAI, model: str, url: str) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=ask(url), max_tokens=20)
    assert isinstance(caught.value.body, dict)
    return caught.value.body


@pytest.mark.parametrize(("url", "code"), [
    ("https://images.example.com/cat.png", "image_url_not_allowed"),
    ("{server}/images/large.png", "image_too_large"),
    ("{server}/redirect", "invalid_image_url"),
    ("{server}/missing.png", "invalid_image_url"),
    ("data:image/png;base64,bm90IGFuIGltYWdl", "invalid_image"),
    ("ftp://example.com/x.png", "invalid_image_url"),
])
def test_unusable_images_are_400s_naming_the_part(client: OpenAI, sim: Sim, image_server: ImageServer, url: str,
                                                  code: str) -> None:
    body = refusal(client, "llama32-11b-vision", url.format(server=image_server.url))
    assert body["code"] == code and body["param"] == "messages[0].content[1].image_url.url", body
    assert sim.requests() == []


def test_an_inline_image_over_the_limit_is_a_400(client: OpenAI, sim: Sim) -> None:
    body = refusal(client, "llama32-11b-vision", data_uri(IMAGES["/images/large.png"]))
    assert body["code"] == "image_too_large" and "1048576" in body["message"]


def test_more_images_than_the_model_takes_is_a_400(client: OpenAI, sim: Sim) -> None:
    two = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(RED)}},
                                        {"type": "image_url", "image_url": {"url": data_uri(RED)}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llama32-11b-vision", messages=two, max_tokens=20)
    assert caught.value.body["code"] == "too_many_images"  # type: ignore[index]
    assert caught.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]


@pytest.mark.parametrize("model", ["llama3-8b", "llama3-8b-messages", "llama2-7b-chat", "flan-t5-xl"])
def test_text_only_models_refuse_images(client: OpenAI, sim: Sim, model: str) -> None:
    body = refusal(client, model, data_uri(RED))
    assert body["code"] == "images_not_supported" and body["param"] == "messages[0].content[1]"
    assert "does not accept images" in body["message"] and sim.requests() == []


def test_images_go_only_to_the_vision_target(client: OpenAI, sim: Sim) -> None:
    for _ in range(6):
        raw = client.chat.completions.with_raw_response.create(model="vision-mixed", messages=ask(data_uri(RED)),
                                                               max_tokens=10)
        assert raw.headers["x-jumpgate-endpoint"] == "llama32-11b-vision-g5"
