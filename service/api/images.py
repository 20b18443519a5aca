"""Image inputs at the edge: every `image_url` becomes a checked inline `data:` URI before the pipeline sees it.

SageMaker containers usually cannot reach the internet, and one that fetched a client's URL would do so from
inside the VPC (openai-surface.md 4). So the gateway fetches http(s) image URLs itself, only from the hosts in
`images.fetch_allowed_hosts` (none by default), without following redirects, within `fetch_timeout_s` and
`max_image_bytes`, and sends the bytes inline. Data URIs and fetched bytes alike must be a PNG, JPEG, GIF or
WebP image (read from the bytes, not from a claimed type) of at most `max_image_bytes`. Each refusal is a 400
naming the part (`messages[i].content[j].image_url.url`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from urllib.parse import urlsplit

from service.canonical import ContentPart, GenerationRequest, ImagePart, Message
from service.config.images import ImagesConfig
from service.errors import InvalidParam, echo

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"))


def sniff(data: bytes) -> str | None:
    """The image type the bytes are, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


async def inline_images(req: GenerationRequest, cfg: ImagesConfig) -> GenerationRequest:
    """The request with every image checked and inline; raises InvalidParam naming the part that is not usable."""
    count = sum(1 for m in req.messages or () for p in m.parts if isinstance(p, ImagePart))
    if count > cfg.max_images:
        raise InvalidParam(f"{count} images is over the limit of {cfg.max_images} per request: send fewer",
                           param="messages", code="too_many_images")
    messages = []
    for i, m in enumerate(req.messages or ()):
        messages.append(await _message(i, m, cfg) if m.parts else m)
    return replace(req, messages=tuple(messages))


async def _message(i: int, m: Message, cfg: ImagesConfig) -> Message:
    parts: list[ContentPart] = []
    for j, part in enumerate(m.parts):
        where = f"messages[{i}].content[{j}].image_url.url"
        parts.append(ImagePart(await _inline(part.url, where, cfg), part.detail) if isinstance(part, ImagePart)
                     else part)
    return replace(m, parts=tuple(parts))


async def _inline(url: str, where: str, cfg: ImagesConfig) -> str:
    if url.startswith("data:"):
        data = _decode_data_uri(url, where, cfg)
    elif url.startswith(("http://", "https://")):
        data = await _fetch(url, where, cfg)
    else:
        raise InvalidParam(f"`{where}` must be a data: URI or an http(s) URL; got {echo(url)}", param=where,
                           code="invalid_image_url")
    mime = sniff(data)
    if mime is None:
        raise InvalidParam(f"`{where}` is not a PNG, JPEG, GIF or WebP image", param=where, code="invalid_image")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}" if not url.startswith("data:") else url


def _too_large(where: str, size: int, cfg: ImagesConfig) -> InvalidParam:
    return InvalidParam(f"the image at `{where}` is {size}+ bytes, over the limit of {cfg.max_image_bytes} bytes: "
                        "send a smaller image", param=where, code="image_too_large")


def _decode_data_uri(url: str, where: str, cfg: ImagesConfig) -> bytes:
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64") or not header.startswith("image/"):
        raise InvalidParam(f"`{where}`: a data URI must be data:image/<type>;base64,<data>; got "
                           f"{echo(url[:40])}", param=where, code="invalid_image")
    if len(payload) * 3 // 4 > cfg.max_image_bytes + 3:
        raise _too_large(where, len(payload) * 3 // 4, cfg)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParam(f"`{where}`: the data URI's base64 is not valid", param=where,
                           code="invalid_image") from None


def _allowed(url: str, cfg: ImagesConfig) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return False
    shown = f"[{host}]" if ":" in host else host
    return shown in cfg.fetch_allowed_hosts or (port is not None and f"{shown}:{port}" in cfg.fetch_allowed_hosts)


async def _fetch(url: str, where: str, cfg: ImagesConfig) -> bytes:
    if not _allowed(url, cfg):
        raise InvalidParam(f"`{where}`: the gateway fetches images only from the hosts in "
                           f"images.fetch_allowed_hosts, and {echo(urlsplit(url).netloc)} is not one of them: send the "
                           "image inline as a data: URI, or ask the operator to allow the host", param=where,
                           code="image_url_not_allowed")
    import aiohttp  # only requests with image URLs need an HTTP client here

    timeout = aiohttp.ClientTimeout(total=cfg.fetch_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, allow_redirects=False) as resp:
            if resp.status != 200:
                note = " (redirects are not followed)" if 300 <= resp.status < 400 else ""
                raise InvalidParam(f"`{where}`: fetching the image answered HTTP {resp.status}{note}", param=where,
                                   code="invalid_image_url")
            chunks, size = [], 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > cfg.max_image_bytes:  # stop reading: the rest is never buffered
                    raise _too_large(where, size, cfg)
                chunks.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InvalidParam(f"`{where}`: the image could not be fetched within {cfg.fetch_timeout_s:g}s "
                           f"({type(exc).__name__})", param=where, code="invalid_image_url") from None
    return b"".join(chunks)
