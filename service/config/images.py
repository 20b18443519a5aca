"""Config section for image inputs (an addition to the DESIGN.md contract; optional).

SageMaker containers usually cannot reach the internet (network isolation, no NAT: openai-surface.md 4), so the
gateway inlines images as data URIs before invoking. It fetches http(s) image URLs itself only from hosts listed
here: none by default, so an image URL is refused with a 400 until an operator allows its host.

```yaml
images:
  fetch_allowed_hosts: [images.example.com, "127.0.0.1:8900"]  # host or host:port; none by default
  fetch_timeout_s: 5          # connect and read, for one image
  max_image_bytes: 3145728    # one image, fetched or sent inline (decoded bytes)
  max_images: 8               # per request, before the endpoint's own limit (container.max_images)
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:]{2,45}\](:\d{1,5})?$")


class ImagesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fetch_allowed_hosts: list[str] = []
    fetch_timeout_s: float = Field(5.0, gt=0, le=60)
    max_image_bytes: int = Field(3 * 1024 * 1024, ge=1024, le=6 * 1024 * 1024)
    max_images: int = Field(8, ge=1, le=64)

    @field_validator("fetch_allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        bad = [h for h in value if not _HOST_PORT.match(h)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a host name or host:port (no scheme, no path)")
        return [h.lower() for h in value]
