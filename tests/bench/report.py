"""The benchmark's printed report: one run, every figure side by side, ratios from the same run.

Each line starts with a fixed label (``LABELS``), which the smoke test looks for.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

# Fixed labels, in print order; a skipped scenario still prints its lines, saying "skipped".
LABELS = (
    "machine:", "command:", "code:", "setup:",
    "direct  c=1 ", "gateway c=1 ", "direct  c=32", "gateway c=32",
    "added latency c=1:",
    "stream direct ", "stream gateway",
    "TTFT overhead:", "relay cost per token:",
    "embeddings direct  c=1 ", "embeddings gateway c=1 ", "embeddings direct  c=32", "embeddings gateway c=32",
    "embeddings overhead c=1:",
    "tracing off plain c=32", "tracing on  plain c=32", "tracing off stream c=1", "tracing on  stream c=1",
    "tracing overhead:",
    "RSS after warm-up:", "RSS after",
    "LiteLLM",
)


@dataclass
class Measured:
    """One load run: the load generator's summary plus the CPU each server process used during it."""

    load: dict[str, Any]
    cpu_s: dict[str, float] = field(default_factory=dict)  # process name -> CPU seconds during the run
    wall_s: float = math.nan  # the window the CPU seconds were taken over (the run plus the generator's start)

    @property
    def rps(self) -> float:
        return float(self.load["rps"])

    def ms(self, metric: str, p: str) -> float:
        return float(self.load[metric][p]) * 1000

    def cpu_pct(self, name: str) -> float:
        return 100 * self.cpu_s.get(name, math.nan) / self.wall_s

    def cpu_us_per_req(self, name: str) -> float:
        return 1e6 * self.cpu_s.get(name, math.nan) / max(1, int(self.load["requests"]))


@dataclass
class Results:
    plain: dict[str, Measured] = field(default_factory=dict)   # "direct c=1", "gateway c=32", ...
    stream: dict[str, Measured] = field(default_factory=dict)  # "direct", "gateway"
    rss_warm_mb: float | None = None
    rss_after_mb: float | None = None
    rss_requests: int = 0
    litellm: dict[str, Measured] = field(default_factory=dict)  # "c=1", "c=32"
    embeddings: dict[str, Measured] = field(default_factory=dict)  # "direct c=1", "gateway c=32", ...
    embedding_inputs: int = 32  # vectors per request
    litellm_note: str = "not run"
    #: "off plain c=32 #1", "on stream c=1 #2", ...: the same load without and with tracing, two rounds
    traced: dict[str, Measured] = field(default_factory=dict)
    traced_spans: tuple[int, int] = (0, 0)  # (decoded by the OTLP receiver, expected)
    trace_sample_rate: float = 1.0


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - read once
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def code_version(root: str) -> str:
    """The commit measured, and whether service/ had uncommitted changes (the gateway runs the work tree)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h %cs %s") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "service")
    changed = len(dirty.splitlines())
    return f"{commit[:90]}" + (f" + {changed} uncommitted change(s) under service/" if changed else "")


def header(*, command: str, code: str) -> list[str]:
    return [f"machine: {machine()}", f"command: {command}", f"code: {code}"]


def render(res: Results, *, command: str, setup: str, code: str) -> list[str]:
    lines = [*header(command=command, code=code), f"setup: {setup}", ""]
    lines += _plain(res)
    lines += _stream(res)
    lines += _embeddings(res)
    lines += _traced(res)
    lines += _memory(res)
    lines += _litellm(res)
    return lines


def _plain(res: Results) -> list[str]:
    out = ["non-streaming chat (64 tokens)  req/s     p50 ms   p99 ms   gateway CPU %  gateway CPU µs/req  "
           "CPU % simulator/loadgen/other"]
    for name in ("direct  c=1 ", "gateway c=1 ", "direct  c=32", "gateway c=32"):
        m = res.plain.get(" ".join(name.split()))
        if m is None:
            out.append(f"{name} skipped")
            continue
        cpu = f"{m.cpu_pct('gateway'):13.0f}  {m.cpu_us_per_req('gateway'):18.0f}" if "gateway" in name \
            else f"{'-':>13}  {'-':>18}"
        out.append(f"{name}                    {m.rps:8.0f}  {m.ms('latency', 'p50'):7.2f}  "
                   f"{m.ms('latency', 'p99'):7.2f}  {cpu}  {_others(m)}")
    direct, gw = res.plain.get("direct c=1"), res.plain.get("gateway c=1")
    if direct and gw:
        out.append(f"added latency c=1: p50 {gw.ms('latency', 'p50') - direct.ms('latency', 'p50'):.2f} ms, "
                   f"p99 {gw.ms('latency', 'p99') - direct.ms('latency', 'p99'):.2f} ms (gateway minus direct)")
    else:
        out.append("added latency c=1: skipped")
    return [*out, ""]


def _others(m: Measured) -> str:
    return "/".join(f"{m.cpu_pct(name):.0f}" for name in ("simulator", "loadgen", "other"))


def _stream(res: Results) -> list[str]:
    out = ["streaming chat c=1              streams/s TTFT p50 ms  total p50 ms  total p99 ms  tokens  "
           "CPU % gateway/simulator/loadgen/other"]
    for name in ("stream direct ", "stream gateway"):
        m = res.stream.get(name.split()[1])
        if m is None:
            out.append(f"{name} skipped")
            continue
        out.append(f"{name}                  {m.rps:8.0f}  {m.ms('ttft', 'p50'):11.2f}  "
                   f"{m.ms('latency', 'p50'):12.2f}  {m.ms('latency', 'p99'):12.2f}  "
                   f"{m.load['tokens_min']}-{m.load['tokens_max']}  {m.cpu_pct('gateway'):.0f}/{_others(m)}")
    direct, gw = res.stream.get("direct"), res.stream.get("gateway")
    if direct and gw:
        tokens = gw.load["tokens_max"]
        ttft = gw.ms("ttft", "p50") - direct.ms("ttft", "p50")
        relay_us = (gw.ms("latency", "p50") - direct.ms("latency", "p50")) * 1000 / tokens
        after_first = ((gw.ms("latency", "p50") - gw.ms("ttft", "p50"))
                       - (direct.ms("latency", "p50") - direct.ms("ttft", "p50"))) * 1000 / max(1, tokens - 1)
        out.append(f"TTFT overhead: {ttft:.2f} ms (p50, gateway minus direct)")
        out.append(f"relay cost per token: {relay_us:.1f} µs ((gateway - direct stream time, p50) / {tokens}); "
                   f"after the first token only: {after_first:.1f} µs/token")
    else:
        out += ["TTFT overhead: skipped", "relay cost per token: skipped"]
    return [*out, ""]


def _embeddings(res: Results) -> list[str]:
    out = [f"embeddings ({res.embedding_inputs} texts, 1024 dims)  req/s  vectors/s  p50 ms   p99 ms   "
           "gateway CPU µs/req  CPU % simulator/loadgen/other"]
    for name in ("embeddings direct  c=1 ", "embeddings gateway c=1 ", "embeddings direct  c=32",
                 "embeddings gateway c=32"):
        m = res.embeddings.get(" ".join(name.split()[1:]))
        if m is None:
            out.append(f"{name} skipped")
            continue
        gw = f"{m.cpu_us_per_req('gateway'):18.0f}" if "gateway" in name else f"{'-':>18}"
        out.append(f"{name}        {m.rps:7.0f}  {m.rps * res.embedding_inputs:9.0f}  "
                   f"{m.ms('latency', 'p50'):7.2f}  {m.ms('latency', 'p99'):7.2f}  {gw}  {_others(m)}")
    direct, gw = res.embeddings.get("direct c=1"), res.embeddings.get("gateway c=1")
    if direct and gw:
        out.append(f"embeddings overhead c=1: p50 {gw.ms('latency', 'p50') - direct.ms('latency', 'p50'):.2f} ms "
                   f"(gateway minus direct; the gateway also encodes {res.embedding_inputs} base64 vectors)")
    else:
        out.append("embeddings overhead c=1: skipped")
    return [*out, ""]


def _traced(res: Results) -> list[str]:
    out = [f"tracing (sample rate {res.trace_sample_rate:<4g})   req/s     p50 ms   p99 ms   gateway CPU µs/req "
           "(round 1, round 2)"]
    per_req: dict[str, list[float]] = {}
    for label in ("tracing off plain c=32", "tracing on  plain c=32", "tracing off stream c=1",
                  "tracing on  stream c=1"):
        key = " ".join(label.split()[1:])
        rounds = [res.traced[f"{key} #{r}"] for r in (1, 2) if f"{key} #{r}" in res.traced]
        if not rounds:
            out.append(f"{label} skipped")
            continue
        proc = "traced" if key.startswith("on") else "gateway"
        per_req[key] = [m.cpu_us_per_req(proc) for m in rounds]
        m = rounds[-1]
        out.append(f"{label}          {m.rps:8.0f}  {m.ms('latency', 'p50'):7.2f}  {m.ms('latency', 'p99'):7.2f}  "
                   + ", ".join(f"{v:.0f}" for v in per_req[key]))
    if len(per_req) == 4:
        ratio = {kind: sum(per_req[f"on {kind}"]) / sum(per_req[f"off {kind}"])
                 for kind in ("plain c=32", "stream c=1")}
        got, expected = res.traced_spans
        out.append(f"tracing overhead: gateway CPU per request x{ratio['plain c=32']:.2f} non-streaming c=32, "
                   f"x{ratio['stream c=1']:.2f} streaming c=1 (on / off, both rounds); spans decoded by the "
                   f"OTLP receiver {got} of {expected}{'' if res.trace_sample_rate == 1 else ' expected on average'}")
    else:
        out.append("tracing overhead: skipped")
    return [*out, ""]


def _memory(res: Results) -> list[str]:
    if res.rss_warm_mb is None:
        return ["RSS after warm-up: skipped", "RSS after requests: skipped", ""]
    out = [f"RSS after warm-up: {res.rss_warm_mb:.1f} MB (gateway VmRSS, after every other scenario ran)"]
    if res.rss_after_mb is None:
        out.append("RSS after N requests: skipped (--rss-requests 0)")
    else:
        out.append(f"RSS after {res.rss_requests} more requests: {res.rss_after_mb:.1f} MB "
                   f"(growth {res.rss_after_mb - res.rss_warm_mb:+.1f} MB; non-streaming chat, c=32)")
    return [*out, ""]


def _litellm(res: Results) -> list[str]:
    c32, c1 = res.litellm.get("c=32"), res.litellm.get("c=1")
    gw32, gw1 = res.plain.get("gateway c=32"), res.plain.get("gateway c=1")
    if not (c32 and c1 and gw32 and gw1):
        return [f"LiteLLM proxy: {res.litellm_note}"]
    return [
        f"LiteLLM proxy c=32: {c32.rps:.0f} req/s, p50 {c32.ms('latency', 'p50'):.2f} ms, "
        f"p99 {c32.ms('latency', 'p99'):.2f} ms, CPU {c32.cpu_pct('litellm'):.0f} %",
        f"LiteLLM proxy c=1: {c1.rps:.0f} req/s, p50 {c1.ms('latency', 'p50'):.2f} ms, "
        f"p99 {c1.ms('latency', 'p99'):.2f} ms",
        f"LiteLLM ratio: gateway/LiteLLM throughput at c=32 {gw32.rps / c32.rps:.1f}x; "
        f"LiteLLM/gateway p50 at c=1 {c1.ms('latency', 'p50') / gw1.ms('latency', 'p50'):.1f}x",
    ]
