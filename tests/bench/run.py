"""``python -m tests.bench.run``: gateway overhead and throughput against the zero-latency simulator.

Starts the simulator (zero latency, 64-token answers) and ``jumpgate serve --config FILE --workers 1``
on loopback, then drives each scenario (non-streaming and streaming chat; embeddings: one TEI batch of 32
texts per request, base64 vectors, at 1 and 32 concurrent clients; memory; LiteLLM) with the load
generator (tests/bench/load.py, its own process) and
prints one report: direct-to-simulator and through-gateway figures side by side, from the same run.
The direct requests carry the exact TGI payload the gateway sent (read back from the simulator) and are
SigV4-signed like the gateway's. Nothing here asserts a timing; the smoke test checks the report's shape.

    python -m tests.bench.run                     # everything, 10 s per scenario, RSS over 100,000 requests
    python -m tests.bench.run --quick             # 2 s per scenario, no RSS run, no LiteLLM
    python -m tests.bench.run --scenarios plain --profile /tmp/gw.txt   # py-spy the gateway at c=32
    python -m tests.bench.run --scenarios plain --profile /tmp/gw1.txt --profile-at 1   # ... at c=1
    python -m tests.bench.run --scenarios paced   # paced streams, N = 100..500 (issue 18; tests/bench/paced.py)
    python -m tests.bench.run --scenarios paced --paced-streams 200 --profile /tmp/paced.txt   # py-spy at N=200
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench import paced, paced_report
from tests.bench import stack as st
from tests.bench.report import Measured, Results, code_version, header, render
from tests.otlp import Receiver, otlp_receiver
from tests.procs import ROOT

SCENARIOS = ("plain", "stream", "embeddings", "traced", "memory", "litellm", "paced")
QUICK_SKIPS = ("litellm", "paced")
RSS_REQUESTS = 100_000
RSS_MAX_S = 900.0  # the RSS run is bounded by time too
JSON = {"content-type": "application/json"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _resolve(args)
    command = "python -m tests.bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    code = code_version(str(ROOT))  # before the run: the gateway process runs the work tree as it is now
    print(f"jumpgate benchmark, {started}", flush=True)
    lines = _zero_latency(args, command, code) if args.chosen - {"paced"} else header(command=command, code=code)
    if "paced" in args.chosen:
        lines += ["", *_paced(args)]
    print("\n".join(lines), flush=True)
    return 0


def _zero_latency(args: argparse.Namespace, command: str, code: str) -> list[str]:
    setup = (f"simulator zero latency, 64-token answers; gateway `jumpgate serve --workers 1`, model {st.MODEL} "
             f"(tgi); aiohttp load generator in its own process; {args.duration:g} s per scenario; loopback")
    with tempfile.TemporaryDirectory(prefix="jumpgate-bench-") as tmp:
        stack = st.Stack(Path(tmp))
        try:
            res = Bench(stack, args).run()
        except BaseException:
            print(f"gateway log tail:\n{stack.gw.output()[-3000:]}", file=sys.stderr)
            raise
        finally:
            stack.stop()
    return render(res, command=command, setup=setup, code=code)


def _paced(args: argparse.Namespace) -> list[str]:
    settings = paced.Settings(
        series=args.paced_series, tokens=args.paced_tokens, ttft_ms=args.paced_ttft_ms, gap_ms=args.paced_gap_ms,
        window_s=args.paced_window, rounds=args.paced_rounds, procs=args.paced_procs,
        profile=args.profile if "plain" not in args.chosen else None, profile_at=args.paced_profile_at)
    with tempfile.TemporaryDirectory(prefix="jumpgate-paced-") as tmp:
        stack = paced.PacedStack(Path(tmp), settings)
        try:
            results, idle_rss = paced.PacedBench(stack, settings).run()
        except BaseException:
            print(f"gateway log tail:\n{stack.gw.output()[-3000:]}", file=sys.stderr)
            raise
        finally:
            stack.stop()
    return paced_report.render(results, idle_rss, settings)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=None, help="seconds per scenario (default 10, --quick 2)")
    p.add_argument("--scenarios", default=None,
                   help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all; --quick: all but litellm)")
    p.add_argument("--rss-requests", type=int, default=None,
                   help=f"requests between the two RSS readings (default {RSS_REQUESTS:,}, --quick 0 = skip)")
    p.add_argument("--quick", action="store_true", help="2 s per scenario, no RSS run, no LiteLLM")
    p.add_argument("--litellm", default=None, help="path of LiteLLM's `litellm` script (default: beside this "
                   "Python, else on PATH); pip install 'litellm[proxy]', ideally in its own venv")
    p.add_argument("--profile", default=None, metavar="FILE",
                   help="py-spy the gateway during one gateway run (--profile-at; with --scenarios paced and no "
                        "plain: the paced run at --paced-profile-at streams); collapsed stacks go to FILE")
    p.add_argument("--profile-at", type=int, default=32, choices=(1, 32), metavar="C",
                   help="concurrency of the non-streaming gateway run that --profile samples (1 or 32; default 32)")
    p.add_argument("--trace-sample-rate", type=float, default=1.0, metavar="R",
                   help="tracing.sample_rate of the traced gateway (--scenarios traced; default 1.0: every request)")
    paced_args = p.add_argument_group("paced streams (--scenarios paced; not in --quick)")
    paced_args.add_argument("--paced-streams", default="100,200,300,400,500", metavar="N,N,...",
                            help="concurrent streams per run, in order (default 100,200,300,400,500)")
    paced_args.add_argument("--paced-tokens", type=int, default=256, help="tokens per stream (default 256)")
    paced_args.add_argument("--paced-ttft-ms", type=float, default=50.0, help="upstream time to first token (50)")
    paced_args.add_argument("--paced-gap-ms", type=float, default=20.0, help="upstream time between tokens (20)")
    paced_args.add_argument("--paced-window", type=float, default=10.0, metavar="S",
                            help="seconds measured after the ramp, per N and path (default 10)")
    paced_args.add_argument("--paced-rounds", type=int, default=None, metavar="R",
                            help="each client runs exactly R streams (the window ends with them) instead")
    paced_args.add_argument("--paced-procs", type=int, default=1, help="load-generator processes per run (1)")
    paced_args.add_argument("--paced-profile-at", type=int, default=200, metavar="N",
                            help="streams of the gateway run that --profile samples (default 200)")
    return p


def _resolve(args: argparse.Namespace) -> None:
    args.duration = args.duration if args.duration is not None else (2.0 if args.quick else 10.0)
    if args.rss_requests is None:
        args.rss_requests = 0 if args.quick else RSS_REQUESTS
    if args.scenarios is None:
        args.scenarios = ",".join(s for s in SCENARIOS if not (args.quick and s in QUICK_SKIPS))
    chosen = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = chosen - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    args.chosen = chosen
    try:
        args.paced_series = tuple(int(n) for n in args.paced_streams.split(","))
    except ValueError:
        raise SystemExit(f"--paced-streams takes comma-separated integers, not {args.paced_streams[:40]!r}") from None
    limits = (all(1 <= n <= 5000 for n in args.paced_series) and 1 <= args.paced_tokens <= 4096
              and args.paced_ttft_ms >= 0 and args.paced_gap_ms >= 0 and args.paced_window > 0
              and (args.paced_rounds is None or args.paced_rounds >= 1) and 1 <= args.paced_procs <= 16)
    if not limits:
        raise SystemExit("paced options: streams 1..5000, tokens 1..4096, pacing >= 0 ms, window > 0 s, "
                         "rounds >= 1, procs 1..16")


class Bench:
    def __init__(self, stack: st.Stack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.watch = {"gateway": stack.gw.popen.pid, "simulator": stack.sim.popen.pid}
        self.res = Results()

    def run(self) -> Results:
        s = self.stack
        plain_up, stream_up = s.capture(stream=False), s.capture(stream=True)
        embed_up = s.capture(path="/v1/embeddings", body=st.embedding_body())
        s.check_direct(plain_up)
        s.stop_recording()
        self.specs = {
            "direct": {"url": plain_up.url, "body": plain_up.body.decode(), "kind": "plain",
                       "sign": plain_up.sign_spec()},
            "gateway": {"url": s.gw.url + "/v1/chat/completions", "body": st.chat_body(stream=False).decode(),
                        "kind": "plain", "headers": JSON},
            "stream direct": {"url": stream_up.url, "body": stream_up.body.decode(), "kind": "eventstream",
                              "sign": stream_up.sign_spec()},
            "stream gateway": {"url": s.gw.url + "/v1/chat/completions", "body": st.chat_body(stream=True).decode(),
                               "kind": "sse", "headers": JSON},
            "embeddings direct": {"url": embed_up.url, "body": embed_up.body.decode(), "kind": "plain",
                                  "sign": embed_up.sign_spec()},
            "embeddings gateway": {"url": s.gw.url + "/v1/embeddings", "body": st.embedding_body().decode(),
                                   "kind": "plain", "headers": JSON},
        }
        self._warm_up()
        if "plain" in self.args.chosen:
            self._plain()
        if "stream" in self.args.chosen:
            for name in ("direct", "gateway"):
                self.res.stream[name] = self.drive(self.specs[f"stream {name}"], 1, self.args.duration)
        if "embeddings" in self.args.chosen:
            for conc in (1, 32):
                for name in ("direct", "gateway"):
                    self.res.embeddings[f"{name} c={conc}"] = self.drive(self.specs[f"embeddings {name}"], conc,
                                                                         self.args.duration)
        if "traced" in self.args.chosen:
            self._traced()
        if "memory" in self.args.chosen:
            self._memory()
        if "litellm" in self.args.chosen:
            self._litellm()
        return self.res

    def _warm_up(self) -> None:
        seconds = max(0.5, self.args.duration / 5)
        for name in self.specs:
            if name.startswith("embeddings") and "embeddings" not in self.args.chosen:
                continue
            self.drive(self.specs[name], 1 if name.startswith("stream") else 32, seconds)

    def _plain(self) -> None:
        for conc in (1, 32):
            for name in ("direct", "gateway"):
                profile = self.args.profile if (name, conc) == ("gateway", self.args.profile_at) else None
                self.res.plain[f"{name} c={conc}"] = self.drive(self.specs[name], conc, self.args.duration, profile)

    def _traced(self) -> None:
        """Tracing off vs on: a second gateway (same config plus a `tracing` section, every request sampled,
        spans exported over OTLP http/protobuf to a receiver that decodes them) against this one, the same
        load alternated between the two, twice, so drift on a shared machine shows as a spread."""
        with otlp_receiver() as receiver:
            traced = self.stack.start_traced(receiver.url, self.args.trace_sample_rate)
            self.watch["traced"] = traced.popen.pid
            try:
                on = {name: {**self.specs[name], "url": traced.url + "/v1/chat/completions"}
                      for name in ("gateway", "stream gateway")}
                # warm-up; its spans are exported too, so it counts in what the receiver must decode
                self.res.traced["on warm-up"] = self.drive(on["gateway"], 32, max(0.5, self.args.duration / 5))
                for round_ in (1, 2):
                    for (conc, name) in ((32, "gateway"), (1, "stream gateway")):
                        kind = "plain c=32" if conc == 32 else "stream c=1"
                        self.res.traced[f"off {kind} #{round_}"] = self.drive(self.specs[name], conc,
                                                                               self.args.duration / 2)
                        self.res.traced[f"on {kind} #{round_}"] = self.drive(on[name], conc, self.args.duration / 2)
                self.res.traced_spans = _spans_exported(receiver, self.res.traced, self.args.trace_sample_rate)
                self.res.trace_sample_rate = self.args.trace_sample_rate
            finally:
                traced.stop()
                del self.watch["traced"]

    def _memory(self) -> None:
        pid = self.watch["gateway"]
        self.res.rss_warm_mb = st.rss_mb(pid)
        if self.args.rss_requests > 0:
            self.drive(self.specs["gateway"], 32, RSS_MAX_S, max_requests=self.args.rss_requests)
            self.res.rss_requests = self.args.rss_requests
            self.res.rss_after_mb = st.rss_mb(pid)

    def _litellm(self) -> None:
        exe = st.find_litellm(self.args.litellm)
        if exe is None:
            self.res.litellm_note = "not installed (pip install 'litellm[proxy]'; pass --litellm PATH)"
            return
        proc = self.stack.start_litellm(exe)
        self.watch["litellm"] = proc.popen.pid
        spec = {**self.specs["gateway"], "url": proc.url + "/v1/chat/completions",
                "headers": {**JSON, "authorization": f"Bearer {self.stack.litellm_key}"}}
        self.drive(spec, 32, max(1.0, self.args.duration / 5))  # warm-up
        for conc in (32, 1):
            self.res.litellm[f"c={conc}"] = self.drive(spec, conc, self.args.duration)

    def drive(self, spec: dict[str, Any], concurrency: int, duration: float, profile: str | None = None,
              max_requests: int = 10**9) -> Measured:
        """One load run in a fresh load-generator process; fails loudly on any error response."""
        full = {**spec, "concurrency": concurrency, "duration_s": duration, "max_requests": max_requests}
        before = self._cpu()
        proc = subprocess.Popen([sys.executable, "-m", "tests.bench.load"], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(full))
        proc.stdin.close()
        if profile:
            _py_spy(self.watch["gateway"], profile, duration)
        out = proc.stdout.read() if proc.stdout else ""
        if proc.wait(duration + 120) != 0:
            raise RuntimeError(f"load generator failed (exit {proc.returncode}) on {spec['url']}")
        load = json.loads(out)
        if load["errors"] or not load["requests"]:
            raise RuntimeError(f"{load['errors']} errors, {load['requests']} answers from {spec['url']}: "
                               f"{load['error_samples']}")
        used = {name: value - before[name] for name, value in self._cpu().items()}
        # Whatever else ran on the machine meanwhile (other sessions, py-spy): a noisy run shows here.
        wall = used.pop("wall")
        used["other"] = used.pop("machine") - sum(used.values())
        return Measured(load, used, wall)

    def _cpu(self) -> dict[str, float]:
        cpu = {name: st.cpu_seconds(pid) for name, pid in self.watch.items()}
        return {**cpu, "loadgen": st.children_cpu_seconds(), "machine": st.machine_busy_seconds(),
                "wall": time.perf_counter()}


def _spans_exported(receiver: Receiver, runs: dict[str, Measured], sample_rate: float) -> tuple[int, int]:
    """(spans the receiver decoded, spans expected: a SERVER and a CLIENT span per traced request), once the
    batch exporter (a 5 s schedule) has sent what it holds, or after a bounded wait."""
    expected = 2 * sum(int(m.load["requests"]) for name, m in runs.items() if name.startswith("on "))
    if sample_rate < 1.0:  # a ratio sampler: how many is chance; wait for the exporter's schedule, then count
        time.sleep(6)
        return len(receiver.snapshot()), round(expected * sample_rate)
    deadline = time.monotonic() + 30
    while len(receiver.snapshot()) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return len(receiver.snapshot()), expected


def _py_spy(pid: int, out: str, duration: float) -> None:
    """Sample the gateway for the middle of the run (the load generator needs ~0.5 s to start)."""
    time.sleep(1.0)
    seconds = max(1, int(duration - 2))
    beside = Path(sys.executable).parent / "py-spy"
    exe = str(beside) if beside.exists() else "py-spy"
    subprocess.run([exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
                    "--format", "raw", "--output", out, "--nonblocking"], check=True, capture_output=True)


if __name__ == "__main__":
    raise SystemExit(main())
