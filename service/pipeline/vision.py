"""Whether an endpoint can take a request's images (openai-surface.md 4), checked during routing so that text-only
targets are dropped like targets lacking a parameter: a vision-language model behind a schema that carries images,
at most `container.max_images` images per prompt, and a request body (images are inline, base64) within the
container's and SageMaker's limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.adapters.features import ImageSupport
from service.canonical import GenerationRequest, ImagePart
from service.errors import UnsupportedFeature

if TYPE_CHECKING:
    from service.pipeline.catalog import Endpoint

#: prompt tokens one image costs, for the context budget before sending: Llama 3.2 Vision encodes a 560x560 tile
#: as 40x40 patches plus one class token; the container reports the exact prompt count in its answer
IMAGE_PROMPT_TOKENS = 1601
#: JSON, the prompt text and the template around the images
_BODY_OVERHEAD = 16 * 1024


def image_places(req: GenerationRequest) -> list[tuple[int, int, ImagePart]]:
    return [(i, j, part) for i, m in enumerate(req.messages or ()) for j, part in enumerate(m.parts)
            if isinstance(part, ImagePart)]


def check_images(req: GenerationRequest, ep: Endpoint, model: str) -> int:
    """The number of images `ep` would be sent; raises UnsupportedFeature when it cannot take them."""
    places = image_places(req)
    i, j, _ = places[0]
    caps = ep.capabilities
    if caps.images is ImageSupport.NONE:
        raise UnsupportedFeature(
            f"model '{model}' does not accept images: endpoint '{ep.id}' (schema {ep.schema}) serves a text-only "
            "model (`container.vision` is not set); send text only, or use a vision model",
            param=f"messages[{i}].content[{j}]", code="images_not_supported")
    if len(places) > caps.max_images:
        i, j, _ = places[caps.max_images]
        raise UnsupportedFeature(
            f"{len(places)} images is over the limit of {caps.max_images} per prompt of endpoint '{ep.id}' of model "
            f"'{model}': send fewer", param=f"messages[{i}].content[{j}]", code="too_many_images")
    size = sum(len(part.url) for _, _, part in places) + _BODY_OVERHEAD + sum(
        len(m.content) for m in req.messages or ())
    if size > caps.payload_limit:
        raise UnsupportedFeature(
            f"the request with its images is about {size} bytes, over the {caps.payload_limit}-byte limit of "
            f"endpoint '{ep.id}' of model '{model}': send smaller or fewer images", param=f"messages[{i}].content[{j}]",
            code="image_too_large")
    return len(places)
