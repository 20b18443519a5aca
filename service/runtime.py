"""Everything a running gateway holds, as one typed object (`AppState`), and the one way config becomes state.

Two lifetimes: the services live as long as the process (transport and its pool, metrics, the fleet's live
endpoint state inside the gateway, the limiter, the shadow runner); the `Settings` are what one config file
resolves to, swapped whole by `AppState.apply` at start-up and on every SIGHUP reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.config.model import Config, load_config
from service.config.problems import ConfigError
from service.config.tenancy import InputLimits
from service.pipeline.attempts import Attempts
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Catalog, build_catalog
from service.pipeline.gateway import Gateway
from service.pipeline.shadow import ShadowRunner
from service.telemetry.metrics import EndpointSeries, Metrics, RouteSeries
from service.telemetry.tracing import build_tracing
from service.tenancy import Authenticator, Limiter, build_limiter
from service.transport.base import Transport

log = logging.getLogger("jumpgate")


@dataclass(frozen=True, slots=True)
class Settings:
    """What one config resolves to."""

    config: Config
    catalog: Catalog
    auth: Authenticator
    source: str
    loaded_at: float
    reloads: int

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "loaded_at": self.loaded_at, "reloads": self.reloads}


def load_settings(config: Config, source: str, reloads: int = 0) -> Settings:
    """Resolve a validated config (catalog, API keys). Raises ConfigError when it cannot be served."""
    return Settings(config, build_catalog(config), Authenticator(config.auth), source, time.time(), reloads)


class AppState:
    def __init__(self, settings: Settings, *, transport: Transport, metrics: Metrics, limiter: Limiter,
                 credentials_ready: Callable[[], bool], config_path: str | None,
                 config_hooks: Sequence[Callable[[Config], None]] = ()) -> None:
        config = settings.config
        self.transport = transport
        self.metrics = metrics
        self.limiter = limiter
        self.credentials_ready = credentials_ready
        self.config_path = config_path
        self.config_hooks = tuple(config_hooks)  # told of every config applied (the credential refresher)
        # Tracing is set up once per process (a reload does not change it): a provider owns an export thread.
        self.tracing = build_tracing(config.tracing)
        attempts = Attempts(transport, Fleet(config.resilience), metrics, config.resilience, tracing=self.tracing)
        self.shadow = ShadowRunner(attempts, metrics, config.shadow_log)
        self.gateway = Gateway(settings.catalog, attempts, shadow=self.shadow)
        self.settings = settings
        self._drain_timer: asyncio.TimerHandle | None = None
        self.apply(settings)

    # --- what the api reads ---------------------------------------------------------------------------
    @property
    def auth(self) -> Authenticator:
        return self.settings.auth

    @property
    def input_limits(self) -> InputLimits:
        return self.settings.config.input_limits

    @property
    def log_prompts(self) -> bool:
        return self.settings.config.logging.log_prompts

    @property
    def fleet(self) -> Fleet:
        return self.gateway.attempts.fleet

    def begin_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGTERM: uvicorn stops accepting and waits for requests in flight; streams still open at drain_s are
        cut with a shutting-down error event (uvicorn's own hard limit is set a little later, server.DRAIN_GRACE_S)."""
        if self._drain_timer is None:
            drain_s = self.settings.config.resilience.drain_s
            log.info("draining: requests in flight may finish for %gs", drain_s)
            self._drain_timer = loop.call_later(drain_s, self.gateway.attempts.cut_streams)

    # --- config ---------------------------------------------------------------------------------------
    def apply(self, settings: Settings) -> None:
        """Serve `settings` from now on; requests in flight finish on what they hold."""
        config = settings.config
        for hook in self.config_hooks:
            hook(config)
        describe_metrics(self.metrics, settings.catalog)
        self.gateway.reload(settings.catalog, config.resilience)
        self.shadow.configure(config.shadow_log)
        self.settings = settings

    def reload(self) -> bool:
        """SIGHUP: load the config file again and switch to it. A file that does not validate is refused and
        the running config kept."""
        path = self.config_path
        if path is None:
            return False
        try:
            settings = load_settings(load_config(path), path, self.settings.reloads + 1)
        except ConfigError as exc:
            log.error("config reload refused, still serving the previous config; problems:\n%s", exc)
            self.metrics.config_reloads.labels("refused").inc()
            return False
        except Exception:
            log.exception("config reload failed, still serving the previous config")
            self.metrics.config_reloads.labels("refused").inc()
            return False
        self.apply(settings)
        self.metrics.config_reloads.labels("applied").inc()
        log.info("config reloaded from %s: %d models, %d endpoints", path, len(settings.catalog.models),
                 len(settings.catalog.endpoints))
        return True


def build_state(config: Config, *, transport: Transport, metrics: Metrics, credentials_ready: Callable[[], bool],
                config_path: str | None, config_hooks: Sequence[Callable[[Config], None]] = ()) -> AppState:
    limiter = build_limiter(config.rate_limits, metrics.limiter_errors.inc)
    return AppState(load_settings(config, config_path or "<embedded>"), transport=transport, metrics=metrics,
                    limiter=limiter, credentials_ready=credentials_ready, config_path=config_path,
                    config_hooks=config_hooks)


def describe_metrics(metrics: Metrics, catalog: Catalog) -> None:
    """Price gauges and every configured series at zero, from the catalog (telemetry knows no catalog)."""
    metrics.describe(
        [EndpointSeries(ep.id, ep.instance_type, ep.accelerator, ep.endpoint_price_per_hour)
         for ep in catalog.endpoints.values()],
        [RouteSeries(model.name, ep.id, "backend" if ep.adapter.reports_counts else ep.counter.source.value)
         for model in catalog.models.values() for ep, _ in model.targets],
    )
