"""The in-process relay measurement runs its streams to the end (each writes every chunk) and reports a figure."""

from __future__ import annotations

import math

from tests.bench.relay_cpu import measure


async def test_a_tiny_run_relays_every_stream_and_measures() -> None:
    figure = await measure(streams=3, rounds=1)  # raises when a stream wrote less than its 256 chunks
    assert math.isfinite(figure) and figure > 0
