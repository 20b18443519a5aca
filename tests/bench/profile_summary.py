"""``python -m tests.bench.profile_summary FILE``: where the gateway's time goes, from py-spy's collapsed stacks.

FILE is what ``python -m tests.bench.run --profile FILE`` wrote (``py-spy record --format raw``: one line per
distinct stack, ``frame;frame;...;leaf COUNT``, a frame being ``function (path:line)``). Prints the share of
samples by where the running code lives (self time per package or gateway module), per gateway function
(inclusive: a sample counts for every function on its stack) and per leaf function (self time). With
``--relay`` (a streaming profile, e.g. the paced scenario's) it first splits the samples by relay stage.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")

# What the event loop was doing: the first of these found anywhere on the stack.
PHASES: tuple[tuple[str, str], ...] = (
    ("service/", "gateway code on the stack: ASGI middleware and handler, tasks the gateway spawns, and what "
                 "they call (FastAPI, pydantic, botocore, aiohttp requests)"),
    ("uvicorn/", "uvicorn: HTTP parsing of client requests, writing responses, task start"),
    ("aiohttp/", "aiohttp: upstream connection callbacks, response parsing"),
)

# Frames on every stack (the entry point that starts the server): not a place where time goes.
ENTRY = ("service/cli.py", "service/__main__.py", "<frozen runpy>")


# Relay stages of a streaming profile: a sample whose stack opens a stream is "stream open"; otherwise the first
# of these (path fragment, function fragment, stage) that matches a frame, from the leaf up, decides. The stage names
# stay those of the "before" profile so the tables compare: since issue 18's relay work, the upstream read is
# service/transport/streamconn.py and the ASGI response service/api/stream_response.py, counted in the same stages.
OPEN_STAGE = ("Gateway.open_stream", "stream open: route, payload, SigV4, upstream request (once per stream)")
RELAY_STAGES: tuple[tuple[str, str, str], ...] = (
    ("service/protocol.py", "SocketBody", "write to the client socket (SocketBody, or uvicorn send)"),
    ("uvicorn/protocols/http", "", "write to the client socket (SocketBody, or uvicorn send)"),
    ("starlette/", "", "ASGI response glue (starlette StreamingResponse, anyio)"),
    ("anyio/", "", "ASGI response glue (starlette StreamingResponse, anyio)"),
    ("aiohttp/", "", "read from the upstream socket (streamconn + httptools, or aiohttp)"),
    ("service/transport/streamconn", "", "read from the upstream socket (streamconn + httptools, or aiohttp)"),
    ("botocore/eventstream", "", "event-stream frames -> PayloadPart bytes (CRCs, headers)"),
    ("service/transport/eventstream", "", "event-stream frames -> PayloadPart bytes (CRCs, headers)"),
    ("service/adapters/", "", "container lines -> token events (JSON)"),
    ("service/api/sse.py", "frame", "token events -> OpenAI chunk bytes"),
    ("service/api/sse.py", "Shape", "token events -> OpenAI chunk bytes"),
    ("service/api/stream_response", "", "ASGI response glue (starlette StreamingResponse, anyio)"),
    ("service/api/", "", "relay glue (the callbacks between the stages)"),
    ("service/pipeline/", "", "relay glue (the callbacks between the stages)"),
    ("service/transport/", "", "relay glue (the callbacks between the stages)"),
    ("service/telemetry/", "", "logs, metrics, trace"),
    ("logging/", "", "logs, metrics, trace"),
    ("prometheus_client/", "", "logs, metrics, trace"),
)
REST_STAGE = "event loop (asyncio scheduling, epoll) and the rest"


def relay_stage(frames: list[tuple[str, str]]) -> str:
    if any(OPEN_STAGE[0] in func for func, _ in frames):
        return OPEN_STAGE[1]
    for func, path in reversed(frames):
        for fragment, func_fragment, name in RELAY_STAGES:
            if fragment in path and func_fragment in func:
                return name
    return REST_STAGE


def relay_summary(stacks: list[tuple[list[tuple[str, str]], int]], us_per_token: float | None) -> list[str]:
    total = sum(count for _, count in stacks)
    stages: Counter[str] = Counter()
    for frames, count in stacks:
        stages[relay_stage(frames)] += count
    per = f" x {us_per_token:g} µs per token" if us_per_token else ""
    out = [f"by relay stage ({total} samples{per}):"]
    for name, n in stages.most_common():
        us = f"{us_per_token * n / total:6.1f} µs  " if us_per_token else ""
        out.append(f"  {100 * n / total:5.1f}%  {us}{name}")
    return [*out, ""]


def parse(lines: Iterable[str]) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for raw in lines:
        raw = raw.rstrip("\n")
        if not raw or " " not in raw:
            continue
        frames_text, count = raw.rsplit(" ", 1)
        frames = []
        for text in frames_text.split(";"):
            m = FRAME.match(text)
            frames.append((m["func"], m["path"]) if m else (text, ""))
        stacks.append((frames, int(count)))
    return stacks


def package(path: str) -> str:
    """Where a leaf frame's code lives: a gateway module (``service/api/routes.py``) or a top-level package."""
    path = short("", path).strip(" ()")
    if path.startswith("service/"):
        return path
    first = path.split("/", 1)[0]
    return first.removesuffix(".py") if "/" in path else f"{first} (stdlib module)"


def phase(frames: list[tuple[str, str]]) -> str:
    frames = [(func, path) for func, path in frames if not any(entry in path for entry in ENTRY)]
    for fragment, name in PHASES:
        if any(fragment in func or fragment in path for func, path in frames):
            return name
    return "event loop: asyncio scheduling, selector, socket writes outside the above"


def short(func: str, path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def summarize(stacks: list[tuple[list[tuple[str, str]], int]], top: int) -> list[str]:
    total = sum(count for _, count in stacks)
    areas: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        names = {short(f, p) for f, p in frames if p.startswith("service/") or "/service/" in p}
        for name in names:
            if not any(entry in name for entry in ENTRY):
                ours[name] += count
        func, path = frames[-1]
        leaves[short(func, path)] += count
        areas[package(path)] += count
        phases[phase(frames)] += count
    out = [f"{total} samples (on-CPU only)", "", "by phase (the first of PHASES found on the stack):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in phases.most_common()]
    out += ["", f"self time by package or gateway module (top {top}):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in areas.most_common(top)]
    out += ["", f"inclusive share, gateway functions (top {top}):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours.most_common(top)]
    out += ["", f"self time by leaf function (top {top}):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile_summary")
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--relay", action="store_true", help="first split a streaming profile by relay stage")
    parser.add_argument("--us-per-token", type=float, default=None,
                        help="with --relay: the run's gateway CPU per token, to print each stage in µs")
    args = parser.parse_args(argv)
    stacks = parse(Path(args.file).read_text().splitlines())
    print("\n".join([*(relay_summary(stacks, args.us_per_token) if args.relay else []), *summarize(stacks, args.top)]))


if __name__ == "__main__":
    main()
