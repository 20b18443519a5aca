"""Start real server processes on loopback for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def poll(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until `condition()` holds. The deadline only bounds a hang; it never decides a test's verdict."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process serving HTTP on 127.0.0.1:port; its output goes to a log file for post-mortems."""

    def __init__(self, args: Sequence[str], port: int, health: str, log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env, stdout=self._log,
                                      stderr=subprocess.STDOUT)
        self._wait(health)

    def _wait(self, health: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited with {self.popen.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + health, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"process did not become healthy in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def output_with(self, needle: str, timeout: float = 10.0) -> str:
        """The output once it contains `needle` (the gateway writes its logs in batches, off the event loop)."""
        deadline = time.monotonic() + timeout
        while needle not in (text := self.output()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return text

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def start_simulator(tmp: Path, *, latency: str = "zero", config: Path | None = None) -> Proc:
    port = free_port()
    args = ["-m", "service.simulator", "--port", str(port), "--latency", latency]
    if config is not None:
        args += ["--config", str(config)]
    return Proc(args, port, "/ping", tmp / f"simulator-{port}.log")


def start_gateway(tmp: Path, config: Path, *, extra: Sequence[str] = (), env: dict[str, str] | None = None) -> Proc:
    port = free_port()
    args = ["-m", "service", "serve", "--config", str(config), "--port", str(port), *extra]
    return Proc(args, port, "/healthz", tmp / f"gateway-{port}.log", env=env)


@contextmanager
def running_stack(tmp: Path, config_for: Callable[[str], dict[str, Any]], *, extra: Sequence[str] = (),
                  env: dict[str, str] | None = None) -> Iterator[tuple[Proc, Proc]]:
    """The simulator and a gateway whose config `config_for(simulator_url)` builds; both stopped on exit."""
    sim = start_simulator(tmp)
    try:
        config = tmp / "jumpgate.yaml"
        config.write_text(yaml.safe_dump(config_for(sim.url)))
        gw = start_gateway(tmp, config, extra=extra, env=env)
        try:
            yield sim, gw
        finally:
            gw.stop()
    finally:
        sim.stop()


class Sim:
    """The simulator's control API as tests use it: recorded requests and fault switches."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    @classmethod
    @contextmanager
    def clean(cls, url: str) -> Iterator[Sim]:
        """A control client for one test: recordings and faults cleared before and after it."""
        sim = cls(url)
        sim.reset()
        try:
            yield sim
            sim.reset()
        finally:
            sim.http.close()

    def reset(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()
        self.http.delete("/_sim/faults").raise_for_status()

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self.http.get("/_sim/requests").raise_for_status().json()
        return [r for r in got if endpoint is None or r["endpoint"] == endpoint]

    def fault(self, **spec: Any) -> None:
        """Merge a fault into an endpoint's switches (every endpoint when `endpoint` is not given)."""
        self.http.post("/_sim/faults", json={"endpoint": "*", **spec}).raise_for_status()
