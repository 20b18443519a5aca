"""The paced-streams scenario (issue 18): N concurrent, realistically paced streams through one gateway worker.

``python -m tests.bench.run --scenarios paced`` starts the paced upstream (tests/bench/paced_upstream.py: a
TGI endpoint behind SageMaker's response stream, first token after 50 ms, then one every 20 ms, 256 tokens)
and ``jumpgate serve --workers 1`` in front of it, and the relay floor (tests/bench/floor_proxy.py: a proxy
that only forwards bytes) beside it. For each N it runs the same load three times in one run (PATHS): direct
(the exact TGI payload the gateway sends, SigV4-signed with botocore, event stream decoded), floor (the same
requests, bytes and signature unchanged, sent through the proxy: what relaying a token costs with no work done)
and through the gateway (OpenAI chat completions, SSE), each in fresh load-generator processes
(tests/bench/paced_load.py). Between the two readings of a window it takes the CPU time of every process from
/proc and the gateway's RSS; nothing here asserts a timing. paced_report.py turns the results into the report.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
from array import array
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import yaml

from service.config.demo import SIMULATOR_CREDENTIALS
from tests.bench import stack as st
from tests.bench.load import SigV4Headers, percentiles
from tests.bench.paced_upstream import token_texts
from tests.procs import ROOT, Proc, free_port, start_gateway

MODEL = "llama3-8b-paced"
ENDPOINT = "llama3-8b-paced"
ENDPOINT_NAME = "paced-tgi-llama3-8b"
PROMPT = "Write a long story about an API gateway that relays tokens."
LOAD_START_S = 1.5  # the load processes import aiohttp and botocore before the first client starts
IDLE_WAIT_S = 60.0  # the upstream must see every stream of the previous phase end within this
PHASE_SLACK_S = 120.0  # on top of ramp + window: how long a load process may take before it is a failure
ROUNDS_BOUND_S = 600.0  # with a fixed number of streams per client the window ends with them, at the latest then
PATHS = ("direct", "floor", "gateway")  # the order of the phases at each N


@dataclass(frozen=True)
class Settings:
    series: tuple[int, ...]
    tokens: int
    ttft_ms: float
    gap_ms: float
    window_s: float
    rounds: int | None  # streams per client; None = until the window closes
    procs: int  # load-generator processes per phase
    profile: str | None  # py-spy the gateway phase at profile_at streams into this file
    profile_at: int

    @property
    def ideal_stream_s(self) -> float:
        """How long one stream takes when every token comes on time."""
        return (self.ttft_ms + max(0, self.tokens - 1) * self.gap_ms) / 1000

    @property
    def ramp_s(self) -> float:
        return self.ideal_stream_s  # stream starts spread over one stream: a steady state from then on


@dataclass
class Phase:
    """One load run (direct or through the gateway) at one N."""

    clients: int
    load: dict[str, Any]  # the load processes' summaries, summed
    ttft: dict[str, float]  # percentiles, seconds
    gaps: dict[str, float]
    cpu_s: dict[str, float]  # process name -> CPU seconds inside the window
    loadgen_busy: list[float]  # each load process: CPU seconds / window seconds
    wall_s: float
    rss_mb: float


def chat_body(tokens: int) -> bytes:
    return orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
                         "stream": True})


def gateway_config(upstream_url: str, max_streams: int) -> dict[str, Any]:
    """One TGI endpoint on the paced upstream, with room for every stream of the series."""
    return {
        "aws": {"region": st.REGION, "runtime_url": upstream_url, "credentials": SIMULATOR_CREDENTIALS},
        "endpoints": {ENDPOINT: {"endpoint_name": ENDPOINT_NAME, "schema": "tgi", "instance_type": "ml.g5.2xlarge",
                                 "context_length": 8192, "max_concurrency": max_streams, "chat_template": "llama3"}},
        "models": {MODEL: {"targets": [{"endpoint": ENDPOINT}]}},
    }


class PacedStack:
    """The paced upstream with, each in front of it, one gateway worker and the floor proxy."""

    def __init__(self, tmp: Path, settings: Settings) -> None:
        self.tmp, self.settings = tmp, settings
        with ExitStack() as undo:  # a process that fails to start stops the ones started before it
            port = free_port()
            self.upstream = Proc(["-m", "tests.bench.paced_upstream", "--port", str(port), "--ttft-ms",
                                  str(settings.ttft_ms), "--gap-ms", str(settings.gap_ms), "--max-tokens",
                                  str(settings.tokens)], port, "/ping", tmp / f"paced-upstream-{port}.log")
            undo.callback(self.upstream.stop)
            floor_port = free_port()  # its health check goes through it: the upstream answers /ping
            self.floor = Proc(["-m", "tests.bench.floor_proxy", "--port", str(floor_port), "--upstream-port",
                               str(port)], floor_port, "/ping", tmp / f"floor-proxy-{floor_port}.log")
            undo.callback(self.floor.stop)
            config = tmp / "jumpgate-paced.yaml"
            config.write_text(yaml.safe_dump(gateway_config(self.upstream.url, max(settings.series))))
            self.gw = start_gateway(tmp, config, extra=["--workers", "1"])
            undo.pop_all()
        self.http = httpx.Client(timeout=30)

    def stop(self) -> None:
        self.http.close()
        self.gw.stop()
        self.floor.stop()
        self.upstream.stop()

    def capture(self) -> st.Upstream:
        """One streamed chat request through the gateway; the upstream call it made, to re-send directly."""
        with self.http.stream("POST", self.gw.url + "/v1/chat/completions", content=chat_body(self.settings.tokens),
                              headers={"content-type": "application/json"}) as resp:
            resp.raise_for_status()
            resp.read()
        rec = self.stats("last")
        headers = {k: v for k, v in rec["headers"].items() if k not in st.NOT_COPIED}
        return st.Upstream(self.upstream.url + rec["path"], base64.b64decode(rec["body_b64"]), headers)

    def check_floor(self, up: st.Upstream) -> None:
        """One direct request, signed for the upstream, sent through the floor proxy: the upstream checks every
        signature (403 when it does not match the request as received), so a 200 shows the proxy changed nothing
        the signature covers. The stream is dropped after its head; the next phase waits for the upstream idle."""
        signed = SigV4Headers(up.url, up.body, **up.sign_spec()).sign()
        with self.http.stream("POST", self.floor.url + urlsplit(up.url).path, content=up.body,
                              headers=signed) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"the upstream refused a direct request relayed by the floor proxy: HTTP "
                                   f"{resp.status_code} {resp.read()[:300]!r}")

    def stats(self, what: str = "stats") -> dict[str, Any]:
        got: dict[str, Any] = self.http.get(f"{self.upstream.url}/_paced/{what}").raise_for_status().json()
        return got

    def wait_idle(self) -> None:
        """Until the upstream has no stream open: the previous phase's cut streams are all torn down."""
        deadline = time.monotonic() + IDLE_WAIT_S
        while (active := self.stats()["active"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if active:
            raise RuntimeError(f"{active} upstream streams still open {IDLE_WAIT_S:g} s after a phase ended")


class PacedBench:
    def __init__(self, stack: PacedStack, settings: Settings) -> None:
        self.stack, self.settings = stack, settings
        up = stack.capture()
        stack.check_floor(up)
        expected = "".join(token_texts(settings.tokens))
        common = {"ramp_s": settings.ramp_s, "window_s": settings.window_s, "expected_text": expected}
        self.specs = {
            "direct": {**common, "url": up.url, "body": up.body.decode(), "kind": "eventstream",
                       "sign": up.sign_spec()},
            "floor": {**common, "url": up.url, "connect": stack.floor.url, "body": up.body.decode(),
                      "kind": "eventstream", "sign": up.sign_spec()},
            "gateway": {**common, "url": stack.gw.url + "/v1/chat/completions",
                        "body": chat_body(settings.tokens).decode(), "kind": "sse",
                        "headers": {"content-type": "application/json"}},
        }

    def run(self) -> tuple[dict[int, dict[str, Phase]], float]:
        """Warm the gateway up, then each N direct, through the floor proxy and through the gateway; returns the
        phases and the gateway's idle RSS."""
        warm = self.settings.series[0]
        self.phase("gateway", min(warm, 50), rounds=1)
        idle_rss = st.rss_mb(self.stack.gw.popen.pid)
        results: dict[int, dict[str, Phase]] = {}
        for n in self.settings.series:
            results[n] = {}
            for path in PATHS:
                profile = self.settings.profile if (path, n) == ("gateway", self.settings.profile_at) else None
                results[n][path] = self.phase(path, n, profile=profile)
        return results, idle_rss

    def phase(self, path: str, clients: int, *, rounds: int | None = None, profile: str | None = None) -> Phase:
        self.stack.wait_idle()
        s = self.settings
        rounds = rounds or s.rounds
        window_s = ROUNDS_BOUND_S if rounds else s.window_s
        start_at = time.monotonic() + LOAD_START_S
        with tempfile.TemporaryDirectory(prefix="paced-samples-") as tmp:
            shards = _shards(clients, s.procs)
            procs = [self._spawn({**self.specs[path], "start_at": start_at, "first_client": first, "clients": count,
                                  "total_clients": clients, "samples": f"{tmp}/{k}", "rounds": rounds,
                                  "window_s": window_s})
                     for k, (first, count) in enumerate(shards)]
            time.sleep(max(0.0, start_at + s.ramp_s - time.monotonic()))
            before = self._cpu(procs)
            spy = _py_spy(self.stack.gw.popen.pid, profile, s.window_s) if profile else None
            for proc in procs:
                self._expect_closed(proc)
            after = self._cpu(procs)
            rss = st.rss_mb(self.stack.gw.popen.pid)
            loads = [self._result(proc, s.ramp_s + window_s) for proc in procs]
            if spy is not None and spy.wait(s.window_s + 60) != 0:
                raise RuntimeError(f"py-spy failed: {spy.stderr.read() if spy.stderr else ''}")
            ttft = _merged(tmp, len(procs), "ttft")
            gaps = _merged(tmp, len(procs), "gaps")
        return self._phase(clients, loads, ttft, gaps, before, after, rss)

    def _phase(self, clients: int, loads: list[dict[str, Any]], ttft: array[float], gaps: array[float],
               before: dict[str, float], after: dict[str, float], rss: float) -> Phase:
        used = {name: after[name] - before[name] for name in before}
        wall = used.pop("wall")
        busy = [used.pop(f"loadgen{k}") / wall for k in range(len(loads))]
        used["loadgen"] = sum(busy) * wall
        used["other"] = used.pop("machine") - sum(used.values())
        total: dict[str, Any] = {}
        for load in loads:
            for key, value in load.items():
                if isinstance(value, list):
                    total[key] = [*total.get(key, []), *value]
                elif key in ("window_s", "lag_p99_s", "late_s"):
                    total[key] = max(total.get(key, 0.0), value)
                else:
                    total[key] = total.get(key, 0) + value
        if total["failed"] and not total["completed"]:
            raise RuntimeError(f"every stream failed: {total['error_samples']}")
        return Phase(clients, total, percentiles(ttft), percentiles(gaps), used, busy, wall, rss)

    def _spawn(self, spec: dict[str, Any]) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "tests.bench.paced_load"], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        return proc

    def _expect_closed(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "closed":
            proc.wait(30)
            raise RuntimeError(f"load generator exited {proc.returncode} before its window closed: {line[:300]}")

    def _result(self, proc: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait(seconds + PHASE_SLACK_S) != 0:
            raise RuntimeError(f"load generator failed (exit {proc.returncode})")
        result: dict[str, Any] = json.loads(out)
        return result

    def _cpu(self, procs: list[subprocess.Popen[str]]) -> dict[str, float]:
        cpu = {"gateway": st.cpu_seconds(self.stack.gw.popen.pid),
               "floor": st.cpu_seconds(self.stack.floor.popen.pid),
               "upstream": st.cpu_seconds(self.stack.upstream.popen.pid)}
        cpu.update({f"loadgen{k}": st.cpu_seconds(proc.pid) for k, proc in enumerate(procs)})
        return {**cpu, "machine": st.machine_busy_seconds(), "wall": time.monotonic()}


def _shards(clients: int, procs: int) -> list[tuple[int, int]]:
    """(first client, clients) per load process: as even as possible, none empty."""
    procs = max(1, min(procs, clients))
    sizes = [clients // procs + (k < clients % procs) for k in range(procs)]
    return [(sum(sizes[:k]), size) for k, size in enumerate(sizes)]


def _merged(tmp: str, procs: int, name: str) -> array[float]:
    values: array[float] = array("d")
    for k in range(procs):
        values.frombytes(Path(f"{tmp}/{k}.{name}").read_bytes())
    return values


def _py_spy(pid: int, out: str, seconds: float) -> subprocess.Popen[str]:
    """Sample the gateway for the window (started when the window opens)."""
    beside = Path(sys.executable).parent / "py-spy"
    exe = str(beside) if beside.exists() else "py-spy"
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate",
                             "250", "--format", "raw", "--output", out, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
