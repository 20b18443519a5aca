"""The paced-streams part of the benchmark report: one row per N and path, gateway minus direct, the verdict.

Each line starts with a fixed label (``LABELS``), which the smoke test looks for. Definitions:
- tokens offered: what N clients streaming back to back would read in the window if every token came on
  the upstream's schedule (N x window / ideal stream length x tokens); with ``rounds``, N x rounds x tokens.
- gateway CPU per relayed token: the gateway process's CPU time in the window (/proc/<pid>/stat) divided by
  the tokens its clients read in the window. The floor row's figure is the floor proxy's, measured the same
  way: what relaying a token costs on this machine with no work done (tests/bench/floor_proxy.py), so the
  gateway's figure minus it is the gateway's own work.
- RSS per stream: (gateway VmRSS when the window closes - VmRSS idle after the warm-up) / N.
- the client saturated (or was starved of CPU by other processes) when a load-generator process was busy
  >= SATURATED_BUSY of a core in the window or its event loop woke >= SATURATED_LAG_S late at p99: then the
  gaps it measured include its own delay.
"""

from __future__ import annotations

import math

from tests.bench.paced import PATHS, Phase, Settings

LABELS = ("paced setup:", "paced N=", "paced added N=", "paced floor N=", "paced largest N:", "paced client:")
CPU_COLUMNS = ("gateway", "floor", "upstream", "loadgen", "other")
RELAYS = ("floor", "gateway")  # the paths whose relaying process's CPU per token is printed (the path's own name)
ADDED_GAP_P99_LIMIT_MS = 5.0  # issue 18: gateway-added inter-token p99 at most 5 ms
SATURATED_BUSY = 0.9
SATURATED_LAG_S = 0.005
DIRECT_SHORTFALL = 0.95


def offered(phase: Phase, settings: Settings) -> float:
    if settings.rounds:
        return float(phase.clients * settings.rounds * settings.tokens)
    if settings.ideal_stream_s <= 0:
        return math.nan  # unpaced and unbounded: no schedule to compare with
    return phase.clients * float(phase.load["window_s"]) / settings.ideal_stream_s * settings.tokens


def saturated(phase: Phase) -> bool:
    return max(phase.loadgen_busy) >= SATURATED_BUSY or phase.load["lag_p99_s"] >= SATURATED_LAG_S


def added_ms(gw: Phase, direct: Phase, metric: str, p: str) -> float:
    by: dict[str, dict[str, float]] = {"gw": getattr(gw, metric), "direct": getattr(direct, metric)}
    return 1000 * (by["gw"][p] - by["direct"][p])


def render(results: dict[int, dict[str, Phase]], idle_rss_mb: float, settings: Settings) -> list[str]:
    s = settings
    pacing = f"first token after {s.ttft_ms:g} ms, then one every {s.gap_ms:g} ms" if s.ideal_stream_s else "unpaced"
    window = f"{s.rounds} stream(s) per client" if s.rounds else f"a {s.window_s:g} s window"
    out = [f"paced setup: paced TGI upstream (SageMaker event stream, one token per frame), {pacing}, "
           f"{s.tokens} tokens per stream; gateway `jumpgate serve --workers 1`; floor: the direct requests "
           f"through a proxy that only forwards bytes; starts spread over {s.ramp_s:.2f} s, then {window}; "
           f"{s.procs} load process(es) (uvloop, httptools); loopback",
           "paced streams        done/failed/cut  tokens read/offered       TTFT p50/p99 ms  gap p50/p99 ms    "
           "CPU % gw/floor/upstream/client/other  µs/token  RSS KB/stream"]
    for n, phases in results.items():
        out.extend(_row(n, path, phases[path], idle_rss_mb, s) for path in PATHS)
        out.append(_added(n, phases["gateway"], phases["direct"]))
        out.append(_floor(n, phases))
    return [*out, _verdict(results, s), _client(results), ""]


def _row(n: int, path: str, ph: Phase, idle_rss_mb: float, s: Settings) -> str:
    load, tokens = ph.load, ph.load["tokens"]
    want = offered(ph, s)
    share = f"{100 * tokens / want:3.0f} %" if want > 0 else "  n/a"
    cpu = "/".join(f"{100 * ph.cpu_s[name] / ph.wall_s:.0f}" for name in CPU_COLUMNS)
    per_token = f"{us_per_token(ph, path):8.1f}" if path in RELAYS and tokens else f"{'-':>8}"
    rss = f"{(ph.rss_mb - idle_rss_mb) * 1024 / n:13.1f}" if path == "gateway" else f"{'-':>13}"
    notes = [f"{load['cut_before_first_token']} cut before their first token"] if load["cut_before_first_token"] else []
    if load["late_s"] > 0.1:
        notes.append(f"a load process started {load['late_s']:.1f} s late")
    if load["failed"]:
        notes.append(f"errors: {'; '.join(load['error_samples'])}")
    line = (f"paced N={n:<4} {path:<8} {load['completed']:>6}/{load['failed']}/{load['cut']:<6} "
            f"{tokens:>9}/{want:<9.0f} {share}  {_pair(ph.ttft)}  {_pair(ph.gaps, 2)}  {cpu:<36}  {per_token}  {rss}")
    return line + (f"  ({'; '.join(notes)})" if notes else "")


def _pair(pct: dict[str, float], decimals: int = 1) -> str:
    return f"{1000 * pct['p50']:7.{decimals}f}/{1000 * pct['p99']:<7.{decimals}f}"


def _added(n: int, gw: Phase, direct: Phase) -> str:
    return (f"paced added N={n}: TTFT p50 {added_ms(gw, direct, 'ttft', 'p50'):+.2f} ms, "
            f"p99 {added_ms(gw, direct, 'ttft', 'p99'):+.2f} ms; inter-token gap p50 "
            f"{added_ms(gw, direct, 'gaps', 'p50'):+.2f} ms, p99 {added_ms(gw, direct, 'gaps', 'p99'):+.2f} ms "
            f"(gateway minus direct)")


def us_per_token(phase: Phase, process: str) -> float:
    """CPU µs of `process` (gateway, floor) per token the phase's clients read in the window."""
    return 1e6 * phase.cpu_s[process] / phase.load["tokens"] if phase.load["tokens"] else math.nan


def _floor(n: int, phases: dict[str, Phase]) -> str:
    floor, gw = us_per_token(phases["floor"], "floor"), us_per_token(phases["gateway"], "gateway")
    return (f"paced floor N={n}: relay floor {floor:.1f} µs/token (a byte-forwarding proxy); gateway {gw:.1f} "
            f"µs/token = floor + {gw - floor:.1f} µs of gateway work; floor-added inter-token gap p99 "
            f"{added_ms(phases['floor'], phases['direct'], 'gaps', 'p99'):+.2f} ms (floor minus direct)")


def judge(phases: dict[str, Phase], settings: Settings) -> str:
    """"pass", "fail", or why this N cannot be judged: a client that was saturated or starved, or a direct run
    that fell short of the offered tokens, measured the machine rather than the gateway."""
    gw, direct = phases["gateway"], phases["direct"]
    if gw.load["failed"] or direct.load["failed"]:
        return "fail"
    if saturated(gw) or saturated(direct):
        return "not judged: client saturated or starved"
    if direct.load["tokens"] < DIRECT_SHORTFALL * offered(direct, settings):
        return "not judged: the direct run read under 95 % of the offered tokens"
    return "pass" if added_ms(gw, direct, "gaps", "p99") < ADDED_GAP_P99_LIMIT_MS else "fail"


def _verdict(results: dict[int, dict[str, Phase]], settings: Settings) -> str:
    """The largest N that passed with every smaller N passing too: one good N above a failed one is noise."""
    verdicts = {n: judge(results[n], settings) for n in sorted(results)}
    best = None
    for n, verdict in verdicts.items():
        if verdict != "pass":
            break
        best = n
    criterion = f"gateway-added inter-token p99 < {ADDED_GAP_P99_LIMIT_MS:g} ms and no failed stream"
    each = ", ".join(f"{n} {verdict}" for n, verdict in verdicts.items())
    return f"paced largest N: {best if best is not None else 'none'} (streams per worker with {criterion}, " \
           f"this N and every smaller one; tested: {each})"


def _client(results: dict[int, dict[str, Phase]]) -> str:
    phases = [(n, path, ph) for n, by_path in results.items() for path, ph in by_path.items()]
    busy = max(max(ph.loadgen_busy) for _, _, ph in phases)
    lag = max(ph.load["lag_p99_s"] for _, _, ph in phases)
    hit = [f"N={n} {path}" for n, path, ph in phases if saturated(ph)]
    figures = (f"load process CPU at most {100 * busy:.0f} % of a core, event-loop lag p99 at most "
               f"{1000 * lag:.1f} ms (saturated at >= {100 * SATURATED_BUSY:.0f} % or >= "
               f"{1000 * SATURATED_LAG_S:g} ms)")
    if hit:
        return (f"paced client: SATURATED or starved of CPU in {', '.join(hit)}: those gaps include the client's "
                f"own delay; {figures}")
    return f"paced client: not saturated; {figures}"
