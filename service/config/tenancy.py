"""Config sections for tenancy and safety (additions to the DESIGN.md contract; all optional).

```yaml
auth:                                 # omit to run without API keys (local use only: see `jumpgate serve`)
  tenants:
    team-a:
      api_key_sha256: [9f86d08...]    # SHA-256 hex of each key; the keys themselves are never stored
      models: [llama3-8b]             # omit for every model
      requests_per_minute: 600
      tokens_per_minute: 200000       # prompt + completion tokens
      monthly_budget_usd: 250         # attributed cost per calendar month (UTC)
rate_limits:
  backend: local                      # local (per process) | redis (shared by every replica)
  redis_url: redis://127.0.0.1:6379/0
  failure_mode: closed                # when Redis is unreachable: closed (503) | open (serve, unlimited)
input_limits: {max_body_bytes: 4194304, max_messages: 256, max_prompt_chars: 200000, max_json_depth: 32}
logging: {format: json, log_prompts: false}
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TenantConfig(BaseModel):
    model_config = _FROZEN
    api_key_sha256: list[str] = Field(min_length=1)
    models: list[str] | None = None
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    monthly_budget_usd: float | None = Field(None, gt=0)

    @field_validator("api_key_sha256")
    @classmethod
    def _hashes(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _SHA256.match(v)]
        if bad:
            raise ValueError("each entry must be the lowercase hex SHA-256 of a key (64 characters), never the key "
                             "itself: `printf %s \"$KEY\" | sha256sum`")
        return value


class AuthConfig(BaseModel):
    model_config = _FROZEN
    tenants: dict[str, TenantConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_keys(self) -> AuthConfig:
        seen: dict[str, str] = {}
        for name, tenant in self.tenants.items():
            for digest in tenant.api_key_sha256:
                if digest in seen and seen[digest] != name:
                    raise ValueError(f"one API key hash is given to tenants {seen[digest]!r} and {name!r}")
                seen[digest] = name
        return self


class RateLimitConfig(BaseModel):
    model_config = _FROZEN
    backend: Literal["local", "redis"] = "local"
    redis_url: str | None = None
    failure_mode: Literal["closed", "open"] = "closed"

    @model_validator(mode="after")
    def _redis_url(self) -> RateLimitConfig:
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("backend redis needs redis_url, e.g. redis://127.0.0.1:6379/0")
        return self


class InputLimits(BaseModel):
    model_config = _FROZEN
    # SageMaker takes at most 6 MiB per request; templates and JSON escaping need some room.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=6 * 1024 * 1024)
    max_messages: int = Field(256, ge=1)
    max_prompt_chars: int = Field(400_000, ge=1)
    max_json_depth: int = Field(32, ge=4)


class LoggingConfig(BaseModel):
    model_config = _FROZEN
    format: Literal["json", "text"] = "json"
    log_prompts: bool = False  # prompts and completions are the tenants' data: never logged unless asked
