"""The load generator: fixed concurrency, bounded by time and by request count, in its own process.

``python -m tests.bench.load`` reads one JSON spec on stdin and prints one JSON result on stdout. It runs
in a separate process from the servers and from the orchestrator so that it never shares an event loop
(or a GIL) with the gateway it measures. One aiohttp session, one keep-alive connection per worker,
uvloop when installed. Loopback only: the spec's URL must point at 127.0.0.1 or localhost.

Kinds of request (``spec["kind"]``):
- ``plain``: POST, read the whole body, require 200.
- ``sse``: the gateway's OpenAI SSE stream; first token = first ``data:`` chunk with non-empty
  ``delta.content``; tokens counted as such chunks.
- ``eventstream``: SageMaker's response stream (AWS event-stream frames around TGI ``data:`` lines);
  first token = first PayloadPart carrying a ``"token"``; tokens counted as TGI token events.

Direct-to-SageMaker requests are SigV4-signed with botocore (``spec["sign"]``). X-Amz-Date has a one-second
resolution, so the signature of a given URL and body is recomputed once per second: within that second
it is byte for byte what signing each request would produce, without charging ~130 µs of signing per
request to the load generator, which shares the machine's cores with the servers.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
MAX_ERRORS_KEPT = 3


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("latencies_s", "ttft_s", "tokens"):
            del data[name]
        data["rps"] = self.requests / self.elapsed_s if self.elapsed_s else 0.0
        data["latency"] = percentiles(self.latencies_s)
        data["ttft"] = percentiles(self.ttft_s)
        data["tokens_min"] = min(self.tokens, default=0)
        data["tokens_max"] = max(self.tokens, default=0)
        return data


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 (nearest rank) and mean, in seconds; empty input gives NaN."""
    if not values:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "mean": sum(ordered) / len(ordered)}


class SigV4Headers:
    """Headers for a direct SageMaker runtime call, signed with botocore's SigV4 (service ``sagemaker``)."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str], access_key: str, secret: str,
                 region: str) -> None:
        self._url, self._body, self._headers = url, body, headers
        self._auth = SigV4Auth(Credentials(access_key, secret), "sagemaker", region)
        self._second = -1
        self._signed: dict[str, str] = {}

    def get(self) -> dict[str, str]:
        second = int(time.time())
        if second != self._second:
            self._signed, self._second = self.sign(), second
        return self._signed

    def sign(self) -> dict[str, str]:
        request = AWSRequest(method="POST", url=self._url, data=self._body,
                             headers={**self._headers, "Host": urlsplit(self._url).netloc})
        self._auth.add_auth(request)
        return dict(request.headers.items())


class Budget:
    """Shared stop condition of all workers: a deadline and a request count."""

    def __init__(self, duration_s: float, max_requests: int) -> None:
        self.deadline = time.perf_counter() + duration_s
        self.left = max_requests

    def take(self) -> bool:
        if self.left <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.left -= 1
        return True


async def _read_plain(resp: aiohttp.ClientResponse, t0: float, result: Result) -> None:
    await resp.read()


async def _read_sse(resp: aiohttp.ClientResponse, t0: float, result: Result) -> None:
    tokens, pending = 0, b""
    async for chunk in resp.content.iter_any():
        now = time.perf_counter()
        pending += chunk
        *frames, pending = pending.split(b"\n\n")
        for frame in frames:
            if not frame.startswith(b"data: {"):
                continue
            choices = orjson.loads(frame[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                if tokens == 0:
                    result.ttft_s.append(now - t0)
                tokens += 1
    result.tokens.append(tokens)


async def _read_eventstream(resp: aiohttp.ClientResponse, t0: float, result: Result) -> None:
    buffer, tokens = EventStreamBuffer(), 0
    async for chunk in resp.content.iter_any():
        now = time.perf_counter()
        buffer.add_data(chunk)
        for message in buffer:
            count = message.payload.count(b'"token":')
            if count and tokens == 0:
                result.ttft_s.append(now - t0)
            tokens += count
    result.tokens.append(tokens)


READERS = {"plain": _read_plain, "sse": _read_sse, "eventstream": _read_eventstream}


async def _worker(session: aiohttp.ClientSession, spec: dict[str, Any], budget: Budget, result: Result,
                  signer: SigV4Headers | None) -> None:
    url, body, reader = spec["url"], spec["body"].encode(), READERS[spec["kind"]]
    fixed = spec.get("headers", {})
    while budget.take():
        headers = signer.get() if signer else fixed
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
                await reader(resp, t0, result)
        except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
            result.errors += 1
            if len(result.error_samples) < MAX_ERRORS_KEPT:
                result.error_samples.append(f"{type(exc).__name__}: {exc}")
            continue
        result.latencies_s.append(time.perf_counter() - t0)
        result.requests += 1


async def run(spec: dict[str, Any]) -> Result:
    host = urlsplit(spec["url"]).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the load generator only targets loopback addresses, not {host!r}")
    signer = None
    if spec.get("sign"):
        s = spec["sign"]
        signer = SigV4Headers(spec["url"], spec["body"].encode(), s["headers"], s["access_key"], s["secret"],
                              s["region"])
    concurrency = int(spec["concurrency"])
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 60)))
    result = Result()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     skip_auto_headers=SKIP_AUTO_HEADERS) as session:
        budget = Budget(float(spec["duration_s"]), int(spec.get("max_requests", 10**9)))
        started = time.perf_counter()
        await asyncio.gather(*(_worker(session, spec, budget, result, signer) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result


def main() -> None:
    spec = json.load(sys.stdin)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # uvloop comes with uvicorn[standard]; plain asyncio still works, only slower
        runner = asyncio.run
    result = runner(run(spec))
    json.dump(result.summary() | ({"raw_latencies_s": result.latencies_s} if spec.get("raw") else {}), sys.stdout)


if __name__ == "__main__":
    main()
