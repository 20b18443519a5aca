"""A real Prometheus server (Debian's `prometheus` binary) on loopback, for end-to-end tests of the
scrape config, the recording rules and the dashboard queries."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.procs import ROOT, Proc, free_port

RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class PromProc(Proc):
    """Proc for a binary that is not Python: same health wait, log file and stop as the gateway's."""

    def __init__(self, argv: Sequence[str], port: int, health: str, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(list(argv), cwd=ROOT, env=dict(os.environ), stdout=self._log,
                                      stderr=subprocess.STDOUT)
        self._wait(health)


def start_prometheus(tmp: Path, targets: Sequence[str], *, interval: str = "1s",
                     rules: Sequence[Path] = RULES) -> PromProc:
    """Prometheus scraping `targets` (host:port) every `interval`, evaluating `rules` as often, with its
    data in a fresh directory under `tmp`."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("the prometheus binary is not installed (Debian package `prometheus`)")
    port = free_port()
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rules],
        "scrape_configs": [{"job_name": "jumpgate", "static_configs": [{"targets": list(targets)}]}],
    }
    config_path = tmp / f"prometheus-{port}.yml"
    config_path.write_text(yaml.safe_dump(config))
    data = tmp / f"prometheus-data-{port}"
    argv = [binary, f"--config.file={config_path}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--log.level=warn"]
    return PromProc(argv, port, "/-/ready", tmp / f"prometheus-{port}.log")


class PromAPI:
    """The few calls of Prometheus' HTTP API the tests make."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the present time; raises with Prometheus' message on a bad expression."""
        body = self.http.get("/api/v1/query", params={"query": expr}).json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, expr: str, key: Sequence[str]) -> dict[tuple[str, ...], float]:
        """Instant vector as {label values in `key` order: value}."""
        return {tuple(r["metric"].get(k, "") for k in key): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, ready: Any, timeout: float = 20.0, what: str = "") -> list[dict[str, Any]]:
        """Poll `expr` until `ready(result)` is true; the last result in the error message otherwise."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if ready(result):
                return result
            time.sleep(0.1)
        raise AssertionError(f"{what or expr}: not ready after {timeout}s; last result {result}")

    def close(self) -> None:
        self.http.close()
