"""Where Prometheus scrapes: `metrics.listen` serves /metrics on a listener of its own (the Kubernetes
convention: a `metrics` port the API's clients never see), with prometheus-client's own HTTP server."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import start_http_server

from service.telemetry.metrics import Metrics

log = logging.getLogger("jumpgate.metrics")


def serve_metrics(metrics: Metrics, address: tuple[str, int]) -> Callable[[], None]:
    """Start the listener in a thread; returns what stops it. With `--workers N` the first worker to bind the
    port serves it (every worker's samples are added up in multiprocess mode); the others say so and go on."""
    host, port = address
    try:
        server, thread = start_http_server(port, host, registry=metrics.scrape_registry())
    except OSError as exc:
        log.info("metrics listener %s:%d not started here (%s): another worker serves it", host, port, exc.strerror)
        return lambda: None
    log.info("metrics on http://%s:%d/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
