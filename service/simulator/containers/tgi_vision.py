"""Images for TGI vision-language models (openai-surface.md section 4; TGI ``validation.rs`` ``fetch_image``).

Chat ``image_url`` parts become ``![](url)`` markdown in the prompt; generate takes the markdown in
``inputs``. On a VLM endpoint every ``![](...)`` is decoded: ``data:<mime>;base64,<b64>`` must hold bytes
of a PNG, JPEG, GIF or WebP image (the header is read for its size), http(s) URLs are fetched by TGI,
which on a network-isolated SageMaker endpoint fails ("Could not fetch image"). More than ``max_images``
images is refused (the simulator's stand-in for the model's limit: Llama 3.2 Vision takes one). A
text-only model does not parse the markdown at all: the data URI is prompt text, counted as tokens.
Each image costs ``IMAGE_TOKENS`` prompt tokens.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import Any

from service.simulator.containers.tgi_rules import Invalid
from service.simulator.model import SimEndpoint

IMAGE_TOKENS = 1601  # Mllama: one tile of 1601 patch tokens (order of magnitude; not a measured figure)
MARKDOWN_IMAGE = re.compile(r"!\[\]\([^\)]*\)")


def flatten(content: Any) -> str:
    """A message's content as TGI renders it: text parts as they are, image parts as markdown."""
    if not isinstance(content, list):
        return content or ""
    out = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = part.get("image_url", {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
            out.append(f"![]({url})")
        elif isinstance(part, dict):
            out.append(str(part.get("text", "")))
    return "".join(out)


def check(endpoint: SimEndpoint, prompt: str) -> tuple[str, int]:
    """(prompt without the image markdown, image count) for a VLM; raises Invalid for a bad image."""
    if not endpoint.vision:
        return prompt, 0
    images = MARKDOWN_IMAGE.findall(prompt)
    if len(images) > endpoint.max_images:
        raise Invalid(f"this model accepts at most {endpoint.max_images} image(s) per prompt. Given: {len(images)}")
    for markdown in images:
        _decode(markdown[len("![]("):-1])
    return MARKDOWN_IMAGE.sub("", prompt), len(images)


def _decode(url: str) -> tuple[int, int]:
    if url.startswith(("http://", "https://")):
        raise Invalid(f"Could not fetch image: error sending request for url ({url[:100]})")
    if not url.startswith("data:"):
        raise Invalid(f"invalid image content: {url[:100]}")
    tokens = url[len("data:"):].split(";")
    if len(tokens) != 2 or not tokens[1].startswith("base64,"):
        raise Invalid(f"invalid image content: {url[len('data:'):][:100]}")
    try:
        data = base64.b64decode(tokens[1][len("base64,"):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid(f"base64 encoding is invalid: {exc}") from None
    size = image_size(data)
    if size is None:
        raise Invalid("invalid image: The image format could not be determined")
    return size


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header; None when the bytes are none of these."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return 1, 1  # VP8/VP8L/VP8X headers differ; the size is not needed beyond "decodable"
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None
