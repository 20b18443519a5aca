"""Everything a simulator instance remembers, kept on ``app.state.sim`` (no module globals)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from service.simulator.estate import Estate, VirtualClock
from service.simulator.faults import FaultBook
from service.simulator.latency import LatencyModel
from service.simulator.model import SimEndpoint

#: Recorded requests kept; older ones drop off so a long benchmark cannot exhaust memory.
MAX_RECORDED = 10_000


@dataclass(slots=True)
class EndpointStats:
    requests: int = 0
    in_flight: int = 0
    queued: int = 0
    peak_concurrency: int = 0
    streams_completed: int = 0
    streams_disconnected: int = 0


class EndpointRuntime:
    """An endpoint plus its concurrency slots and counters."""

    def __init__(self, endpoint: SimEndpoint) -> None:
        self.endpoint = endpoint
        self.stats = EndpointStats()
        self._slots = asyncio.Semaphore(endpoint.slots)

    async def __aenter__(self) -> None:
        stats = self.stats
        stats.queued += 1
        try:
            await self._slots.acquire()
        finally:
            stats.queued -= 1
        stats.in_flight += 1
        stats.peak_concurrency = max(stats.peak_concurrency, stats.in_flight)

    async def __aexit__(self, *exc: object) -> None:
        self.stats.in_flight -= 1
        self._slots.release()


@dataclass(slots=True)
class Recorded:
    endpoint: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    time: float

    def to_json(self) -> dict[str, Any]:
        try:
            body_json = orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            body_json = None
        return {"endpoint": self.endpoint, "path": self.path,
                "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers},
                "body_b64": base64.b64encode(self.body).decode(), "body_json": body_json, "time": self.time}


class Recorder:
    def __init__(self) -> None:
        self.enabled = True
        self._items: deque[Recorded] = deque(maxlen=MAX_RECORDED)

    def record(self, endpoint: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        # Decoding is deferred to GET /_sim/requests: recording stays cheap on the hot path.
        if self.enabled:
            self._items.append(Recorded(endpoint, path, headers, body, time.time()))

    def dump(self) -> list[dict[str, Any]]:
        return [item.to_json() for item in self._items]

    def clear(self) -> None:
        self._items.clear()


class SimState:
    def __init__(self, endpoints: Mapping[str, SimEndpoint], latency: str, seed: int) -> None:
        self._initial = dict(endpoints)
        self._initial_latency = latency
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        """Back to the state at creation: endpoints, faults, recordings, counters, latency settings, PRNG."""
        self.rng = random.Random(self._seed)
        self.endpoints = {name: EndpointRuntime(ep) for name, ep in self._initial.items()}
        self.faults = FaultBook(self.rng)
        self.recorder = Recorder()
        self.latency = LatencyModel(self._initial_latency)
        self._ids = itertools.count(1)
        self.estate = Estate(self._initial, VirtualClock())

    def put_endpoint(self, endpoint: SimEndpoint) -> None:
        self.endpoints[endpoint.name] = EndpointRuntime(endpoint)
        self.estate.put(endpoint)

    def random_seed(self) -> int:
        return self.rng.getrandbits(63)

    def next_id(self) -> int:
        return next(self._ids)

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: asdict(rt.stats) for name, rt in self.endpoints.items()}

    def endpoints_json(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(rt.endpoint) for name, rt in self.endpoints.items()}
