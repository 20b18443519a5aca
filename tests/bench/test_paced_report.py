"""The paced report's verdict on made-up phases: which N passes, which cannot be judged, which N is named."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench.paced import PATHS, Phase, Settings
from tests.bench.paced_report import judge, render

SETTINGS = Settings(series=(100, 200, 300), tokens=256, ttft_ms=50, gap_ms=20, window_s=10, rounds=None, procs=1,
                    profile=None, profile_at=200)


def phase(clients: int, *, gap_p99_ms: float, failed: int = 0, busy: float = 0.3, lag_ms: float = 1.0,
          share: float = 1.0, floor_cpu_s: float = 0.0) -> Phase:
    offered = clients * 10 / SETTINGS.ideal_stream_s * SETTINGS.tokens
    load: dict[str, Any] = {"completed": clients, "failed": failed, "cut": clients, "cut_before_first_token": 0,
                            "tokens": int(offered * share), "window_s": 10.0, "lag_p99_s": lag_ms / 1000,
                            "late_s": 0.0, "error_samples": ["StreamFailed: boom"] if failed else []}
    pct = {"p50": 0.020, "p90": 0.021, "p99": gap_p99_ms / 1000, "mean": 0.020}
    ttft = {"p50": 0.051, "p90": 0.052, "p99": 0.060, "mean": 0.051}
    cpu = {"gateway": 5.0, "floor": floor_cpu_s, "upstream": 1.0, "loadgen": 2.0, "other": 0.5}
    return Phase(clients, load, ttft, pct, cpu, [busy], 10.0, 100.0)


def pair(clients: int, gw_p99: float, **gw: Any) -> dict[str, Phase]:
    """Direct, floor and gateway phases; the floor proxy used 2 s of CPU in its phase, the gateway 5 s in its."""
    return {"direct": phase(clients, gap_p99_ms=21.0), "floor": phase(clients, gap_p99_ms=21.5, floor_cpu_s=2.0),
            "gateway": phase(clients, gap_p99_ms=gw_p99, **gw)}


@pytest.mark.parametrize(("gw", "verdict"), [
    ({"gw_p99": 24.9}, "pass"),
    ({"gw_p99": 27.0}, "fail"),
    ({"gw_p99": 22.0, "failed": 1}, "fail"),
    ({"gw_p99": 22.0, "busy": 0.95}, "not judged: client saturated or starved"),
    ({"gw_p99": 22.0, "lag_ms": 40.0}, "not judged: client saturated or starved"),
])
def test_judge(gw: dict[str, Any], verdict: str) -> None:
    assert judge(pair(100, **gw), SETTINGS) == verdict


def test_a_direct_run_short_of_the_offered_tokens_is_not_judged() -> None:
    phases = {"direct": phase(100, gap_p99_ms=80.0, share=0.9), "gateway": phase(100, gap_p99_ms=30.0)}
    assert judge(phases, SETTINGS).startswith("not judged: the direct run")


def verdict_line(results: dict[int, dict[str, Phase]]) -> str:
    (line,) = [x for x in render(results, 90.0, SETTINGS) if x.startswith("paced largest N:")]
    return line


def test_the_largest_n_is_the_last_of_an_unbroken_run_of_passes() -> None:
    line = verdict_line({100: pair(100, 22.0), 200: pair(200, 24.0), 300: pair(300, 40.0)})
    assert line.startswith("paced largest N: 200 ")
    assert "tested: 100 pass, 200 pass, 300 fail" in line


def test_a_pass_above_a_failure_does_not_count() -> None:
    line = verdict_line({100: pair(100, 40.0), 200: pair(200, 22.0)})
    assert line.startswith("paced largest N: none ")


def test_every_row_and_the_client_line_are_rendered() -> None:
    out = render({100: pair(100, 22.0, busy=0.95)}, 90.0, SETTINGS)
    assert [x.split()[1:3] for x in out if x.startswith("paced N=")] == [["N=100", p] for p in PATHS]
    gateway_row = next(x for x in out if x.startswith("paced N=100  gateway"))
    # 49,708 tokens offered and read (100 clients x 10 s / 5.15 s x 256); 5 s of gateway CPU: 100.6 µs per token;
    # RSS 100 MB in the window against 90 MB idle: 102.4 KB per stream.
    assert " 100 %" in gateway_row and " 100.6 " in gateway_row and gateway_row.endswith(" 102.4"), gateway_row
    # CPU % of gateway/floor/upstream/client/other over the 10 s window: 50/0/10/20/5.
    assert " 50/0/10/20/5 " in gateway_row, gateway_row
    floor_row = next(x for x in out if x.startswith("paced N=100  floor"))
    # The floor proxy's 2 s over the same 49,708 tokens: 40.2 µs per token; no RSS figure (the gateway's only).
    assert " 50/20/10/20/5 " in floor_row and " 40.2 " in floor_row and floor_row.endswith(" -"), floor_row
    assert any(x.startswith("paced client: SATURATED or starved of CPU in N=100 gateway") for x in out)


def test_the_floor_line_splits_the_gateway_cost_into_floor_and_gateway_work() -> None:
    out = render({100: pair(100, 22.0)}, 90.0, SETTINGS)
    (line,) = [x for x in out if x.startswith("paced floor N=100:")]
    assert line.startswith("paced floor N=100: relay floor 40.2 µs/token (a byte-forwarding proxy); gateway 100.6 "
                           "µs/token = floor + 60.4 µs of gateway work;"), line
    assert line.endswith("floor-added inter-token gap p99 +0.50 ms (floor minus direct)"), line
