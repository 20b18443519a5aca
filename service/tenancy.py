"""Who is calling, and whether they may: API keys → tenants, allowed models, rate limits and budgets.

Keys are stored only as SHA-256 digests and compared with `hmac.compare_digest` against every
configured digest (no early exit), so response timing says nothing about how close a guess was.

Limits per tenant, checked at admission and settled when the request ends:
- requests per minute: a token bucket of `rpm` that refills at rpm/60 per second; each request takes 1;
- tokens per minute: a bucket of `tpm`; a request is admitted while the bucket is above zero and its
  actual prompt + completion tokens are taken when it ends (so one large request may overdraw it, and
  the tenant then waits for the refill);
- monthly budget: attributed cost is added up per calendar month (UTC); once it reaches the budget,
  requests get 429 until the month ends.
`LocalLimiter` keeps this in the process; `RedisLimiter` keeps it in Redis with atomic Lua scripts on the
Redis clock, so every replica enforces one shared limit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from service.config.tenancy import AuthConfig, RateLimitConfig
from service.errors import AuthenticationError, NoEndpointAvailable, PermissionDenied, RateLimited, echo

log = logging.getLogger("jumpgate.tenancy")


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    models: frozenset[str] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    monthly_budget_usd: float | None = None


ANONYMOUS = Tenant("anonymous")


class Authenticator:
    def __init__(self, cfg: AuthConfig | None) -> None:
        self.enabled = cfg is not None
        self._digests: list[tuple[bytes, Tenant]] = []
        for name, t in (cfg.tenants.items() if cfg else ()):
            tenant = Tenant(name, frozenset(t.models) if t.models is not None else None, t.requests_per_minute,
                            t.tokens_per_minute, t.monthly_budget_usd)
            self._digests += [(bytes.fromhex(d), tenant) for d in t.api_key_sha256]

    def identify(self, authorization: str | None) -> Tenant:
        if not self.enabled:
            return ANONYMOUS
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationError("missing API key: send the header Authorization: Bearer <your key>")
        digest = hashlib.sha256(key.strip().encode()).digest()
        found = None
        for candidate, tenant in self._digests:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(candidate, digest):
                found = tenant
        if found is None:
            raise AuthenticationError("invalid API key")
        return found

    @staticmethod
    def authorize(tenant: Tenant, model: str) -> None:
        if tenant.models is not None and model not in tenant.models:
            allowed = ", ".join(sorted(tenant.models)) or "(none)"
            raise PermissionDenied(f"tenant '{tenant.name}' may not use model {echo(model)}; allowed: {allowed}",
                                   param="model")

    def visible(self, tenant: Tenant, models: Mapping[str, object]) -> list[str]:
        return sorted(m for m in models if tenant.models is None or m in tenant.models)


def check_scrape_token(authorization: str | None, digests: list[str]) -> None:
    """With API keys on, /metrics on the API port shows tenants and their costs: only a scrape token may read it."""
    if not digests:
        raise PermissionDenied("/metrics is closed on the API port while API keys are on: set metrics.listen (a "
                               "listener of its own) or metrics.scrape_token_sha256 (a bearer token for scrapes)")
    scheme, _, token = (authorization or "").partition(" ")
    given = hashlib.sha256(token.strip().encode()).digest()
    matched = False
    for digest in digests:  # no early exit: timing says nothing about which digest was close
        matched |= hmac.compare_digest(given, bytes.fromhex(digest))
    if scheme.lower() != "bearer" or not matched:
        raise AuthenticationError("scraping /metrics needs Authorization: Bearer <scrape token>")


class Limiter(Protocol):
    async def admit(self, tenant: Tenant) -> None:
        """Raise RateLimited (429, with retry_after) when the tenant is over a limit or its budget."""
        ...

    async def settle(self, tenant: Tenant, tokens: int, cost_usd: float) -> None:
        """Charge a finished request's tokens and attributed cost."""
        ...

    async def aclose(self) -> None: ...


def month_key(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m")


def over_rpm(tenant: Tenant, wait_s: float) -> RateLimited:
    return RateLimited(f"tenant '{tenant.name}' is over its limit of {tenant.rpm} requests per minute; "
                       f"retry in {wait_s:.1f}s", code="requests_per_minute", retry_after=max(1.0, wait_s))


def over_tpm(tenant: Tenant, wait_s: float) -> RateLimited:
    return RateLimited(f"tenant '{tenant.name}' is over its limit of {tenant.tpm} tokens per minute; "
                       f"retry in {wait_s:.1f}s", code="tokens_per_minute", retry_after=max(1.0, wait_s))


def over_budget(tenant: Tenant, spent: float) -> RateLimited:
    return RateLimited(f"tenant '{tenant.name}' has spent ${spent:.4f} of its monthly budget of "
                       f"${tenant.monthly_budget_usd:.2f} (month {month_key()} UTC); the budget renews next month",
                       code="budget_exceeded", retry_after=3600.0)


@dataclass
class _Bucket:
    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        return max(0.0, (amount - self.level) * 60.0 / self.capacity)


@dataclass
class LocalLimiter:
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _spent: dict[tuple[str, str], float] = field(default_factory=dict)

    def _bucket(self, tenant: str, kind: str, capacity: int) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.setdefault((tenant, kind), _Bucket(capacity, capacity, now))
        bucket.capacity = capacity
        bucket.refill(now)
        return bucket

    async def admit(self, tenant: Tenant) -> None:
        if tenant.monthly_budget_usd is not None:
            spent = self._spent.get((tenant.name, month_key()), 0.0)
            if spent >= tenant.monthly_budget_usd:
                raise over_budget(tenant, spent)
        if tenant.tpm is not None:
            tpm = self._bucket(tenant.name, "tpm", tenant.tpm)
            if tpm.level <= 0:
                raise over_tpm(tenant, tpm.wait_for(1))
        if tenant.rpm is not None:
            rpm = self._bucket(tenant.name, "rpm", tenant.rpm)
            if rpm.level < 1:
                raise over_rpm(tenant, rpm.wait_for(1))
            rpm.level -= 1

    async def settle(self, tenant: Tenant, tokens: int, cost_usd: float) -> None:
        if tenant.tpm is not None:
            self._bucket(tenant.name, "tpm", tenant.tpm).level -= tokens
        if tenant.monthly_budget_usd is not None:
            key = (tenant.name, month_key())
            self._spent[key] = self._spent.get(key, 0.0) + cost_usd

    async def aclose(self) -> None:
        return None


# KEYS: rpm bucket, tpm bucket, budget counter. ARGV: rpm, tpm, budget ("" = no limit).
# Returns {code, wait_ms, spent}: 0 admitted, 1 over rpm, 2 over tpm, 3 over budget.
_ADMIT = """
local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local function level(key, cap)
  local v = redis.call('HMGET', key, 'level', 'ts')
  local l = tonumber(v[1]) or cap; local ts = tonumber(v[2]) or now
  return math.min(cap, l + (now - ts) * cap / 60.0)
end
if ARGV[3] ~= '' then
  local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
  if spent >= tonumber(ARGV[3]) then return {3, 0, tostring(spent)} end
end
if ARGV[2] ~= '' then
  local cap = tonumber(ARGV[2]); local l = level(KEYS[2], cap)
  if l <= 0 then return {2, math.ceil((1 - l) * 60000 / cap), '0'} end
end
if ARGV[1] ~= '' then
  local cap = tonumber(ARGV[1]); local l = level(KEYS[1], cap)
  if l < 1 then return {1, math.ceil((1 - l) * 60000 / cap), '0'} end
  redis.call('HSET', KEYS[1], 'level', l - 1, 'ts', now); redis.call('EXPIRE', KEYS[1], 120)
end
return {0, 0, '0'}
"""

# KEYS: tpm bucket, budget counter. ARGV: tpm ("" = none), tokens, cost, budget key ttl seconds.
_SETTLE = """
local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
if ARGV[1] ~= '' then
  local cap = tonumber(ARGV[1]); local v = redis.call('HMGET', KEYS[1], 'level', 'ts')
  local l = tonumber(v[1]) or cap; local ts = tonumber(v[2]) or now
  l = math.min(cap, l + (now - ts) * cap / 60.0) - tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'level', l, 'ts', now); redis.call('EXPIRE', KEYS[1], 120)
end
if tonumber(ARGV[3]) > 0 then
  redis.call('INCRBYFLOAT', KEYS[2], ARGV[3]); redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return 0
"""


class RedisLimiter:
    """The same limits, shared by every replica through one Redis. When Redis cannot be reached, the
    configured failure mode decides: `closed` answers 503, `open` serves without limits; both log it and
    count it in `jumpgate_limiter_errors_total`."""

    def __init__(self, cfg: RateLimitConfig, on_error: Callable[[], None] = lambda: None) -> None:
        import redis.asyncio as aioredis

        self.fail_open = cfg.failure_mode == "open"
        self.on_error = on_error
        self.redis = aioredis.from_url(cfg.redis_url or "", socket_timeout=0.5, socket_connect_timeout=0.5)
        self._admit = self.redis.register_script(_ADMIT)
        self._settle = self.redis.register_script(_SETTLE)

    @staticmethod
    def _keys(tenant: Tenant) -> tuple[str, str, str]:
        base = f"jumpgate:{{{tenant.name}}}"  # one hash slot per tenant, for Redis Cluster
        return f"{base}:rpm", f"{base}:tpm", f"{base}:spent:{month_key()}"

    async def admit(self, tenant: Tenant) -> None:
        if tenant.rpm is None and tenant.tpm is None and tenant.monthly_budget_usd is None:
            return
        args = [_arg(tenant.rpm), _arg(tenant.tpm), _arg(tenant.monthly_budget_usd)]
        result = await self._guarded(self._admit(keys=list(self._keys(tenant)), args=args))
        if result is None:
            return
        code, wait_ms, spent = int(result[0]), int(result[1]), float(result[2])
        errors = {1: lambda: over_rpm(tenant, wait_ms / 1000), 2: lambda: over_tpm(tenant, wait_ms / 1000),
                  3: lambda: over_budget(tenant, spent)}
        if code in errors:
            raise errors[code]()

    async def settle(self, tenant: Tenant, tokens: int, cost_usd: float) -> None:
        if tenant.tpm is None and tenant.monthly_budget_usd is None:
            return
        _, tpm_key, spent_key = self._keys(tenant)
        cost = cost_usd if tenant.monthly_budget_usd is not None else 0.0
        # The request was already answered: failing to charge it is logged and counted, never an error for it.
        await self._guarded(self._settle(keys=[tpm_key, spent_key],
                                         args=[_arg(tenant.tpm), tokens, repr(cost), 40 * 86400]), admitting=False)

    async def _guarded(self, call: Awaitable[Any], *, admitting: bool = True) -> list[int | bytes] | None:
        from redis.exceptions import RedisError

        try:
            result: list[int | bytes] = await call  # the Lua scripts return integers and bulk strings
            return result
        except (RedisError, OSError) as exc:
            self.on_error()
            if not admitting:
                log.error("rate limiter: Redis unreachable (%s); a finished request was not charged",
                          type(exc).__name__)
                return None
            if self.fail_open:
                log.warning("rate limiter: Redis unreachable (%s); failure_mode open: serving without limits",
                            type(exc).__name__)
                return None
            log.error("rate limiter: Redis unreachable (%s); failure_mode closed: refusing requests",
                      type(exc).__name__)
            raise NoEndpointAvailable("the rate limiter is unavailable; retry shortly", retry_after=1.0) from None

    async def aclose(self) -> None:
        await self.redis.aclose()


def _arg(value: float | None) -> str:
    return "" if value is None else repr(value)


def build_limiter(cfg: RateLimitConfig, on_error: Callable[[], None]) -> Limiter:
    return RedisLimiter(cfg, on_error) if cfg.backend == "redis" else LocalLimiter()



