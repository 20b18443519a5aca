"""Config sections for routing and resilience (additions to the DESIGN.md contract; all optional).

```yaml
resilience:
  request_timeout_s: 300        # overall deadline per request; clients may shorten it (x-jumpgate-timeout-s)
  max_attempts: 3               # attempts on one endpoint before the next candidate or an error
  retry_budget_ratio: 0.2       # retries may add at most 20% to the requests an endpoint receives ...
  retry_budget_min_per_s: 5     # ... plus this many per second, so a quiet endpoint can still retry
  drain_s: 30                   # on SIGTERM: finish in-flight requests and streams for at most this long
  breaker:
    consecutive_failures: 5     # open after this many failures in a row ...
    error_ratio: 0.5            # ... or this share of failures among the last `window` calls
    window: 20
    min_calls: 10               # (the ratio needs at least this many calls in the window)
    open_s: 10                  # stay open this long, then let `half_open_probes` requests through
    half_open_probes: 1
shadow_log: {path: /var/log/jumpgate/shadow.jsonl, include_prompts: false}
```
A model may add `shadow: {endpoint: <id>, sample_rate: 0.1}`; an endpoint may add `max_wait_s` (how long a
request waits for one of its `max_concurrency` slots before trying the next candidate).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class BreakerConfig(BaseModel):
    model_config = _FROZEN
    consecutive_failures: int = Field(5, ge=1)
    error_ratio: float = Field(0.5, gt=0, le=1)
    window: int = Field(20, ge=1)
    min_calls: int = Field(10, ge=1)
    open_s: float = Field(10.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class ResilienceConfig(BaseModel):
    model_config = _FROZEN
    request_timeout_s: float = Field(300.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_budget_ratio: float = Field(0.2, ge=0, le=1)
    retry_budget_min_per_s: float = Field(5.0, ge=0)
    drain_s: float = Field(30.0, ge=0)
    breaker: BreakerConfig = BreakerConfig()


class ShadowConfig(BaseModel):
    model_config = _FROZEN
    endpoint: str
    sample_rate: float = Field(1.0, ge=0, le=1)


class ShadowLogConfig(BaseModel):
    model_config = _FROZEN
    path: str
    include_prompts: bool = False  # prompts and completions are personal data: off unless asked for
