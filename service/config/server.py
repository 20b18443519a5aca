"""Config sections for the HTTP server's own defences (additions to the DESIGN.md contract; all optional).

```yaml
server:
  allowed_hosts: [gateway.internal]  # without `auth`: Host names served besides loopback (DNS rebinding)
  header_timeout_s: 10               # a request's line and headers must arrive within this
  body_timeout_s: 30                 # ... and its body within this after the headers
  keepalive_timeout_s: 5             # an idle keep-alive connection is closed after this
  max_connections: 4096              # open connections per worker; more are answered 503 and closed
cors:
  allow_origins: [https://app.example.com]   # off (no CORS headers) unless listed
metrics:
  listen: 0.0.0.0:9464               # serve /metrics on this separate listener only
  scrape_token_sha256: [9f86d08...]  # else, with `auth`, /metrics on the API port needs this bearer token
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_HOST = re.compile(r"^(\*|[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]{2,45}\])$")
_LISTEN = re.compile(r"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]{2,45}\]):(?P<port>\d{1,5})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ServerConfig(BaseModel):
    model_config = _FROZEN
    allowed_hosts: list[str] = []
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    keepalive_timeout_s: float = Field(5.0, gt=0, le=3600)
    max_connections: int = Field(4096, ge=1, le=1_000_000)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        bad = [h for h in value if not _HOST.match(h)]
        if bad:
            raise ValueError(f"not host names: {bad[:3]}; give names such as gateway.internal (no port), or '*'")
        return [h.lower() for h in value]


class CorsConfig(BaseModel):
    model_config = _FROZEN
    allow_origins: list[str] = []

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        bad = [o for o in value if o != "*" and not re.match(r"^https?://[^/\s]+$", o)]
        if bad:
            raise ValueError(f"origins look like https://app.example.com (scheme and host, no path); got {bad[:3]}")
        return value


class MetricsConfig(BaseModel):
    model_config = _FROZEN
    listen: str | None = None
    scrape_token_sha256: list[str] = []

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        match = _LISTEN.match(value) if value is not None else None
        if value is not None and (match is None or not 0 < int(match["port"]) < 65536):
            raise ValueError(f"{value!r} is not HOST:PORT such as 0.0.0.0:9464")
        return value

    @field_validator("scrape_token_sha256")
    @classmethod
    def _hashes(cls, value: list[str]) -> list[str]:
        if any(not _SHA256.match(v) for v in value):
            raise ValueError("each entry must be the lowercase hex SHA-256 of a token: "
                             "`printf %s \"$TOKEN\" | sha256sum`")
        return value

    def address(self) -> tuple[str, int] | None:
        match = _LISTEN.match(self.listen) if self.listen else None
        return (match["host"].strip("[]"), int(match["port"])) if match else None
