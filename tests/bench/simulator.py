"""``python -m tests.bench.simulator --port P``: the real simulator, zero latency, every answer 64 tokens long.

The simulator draws each answer's natural length from 8 to 48 tokens (service/simulator/textgen.py), so a
64-token stream cannot be asked for. For benchmarks this process pins the natural length to
``TOKENS`` before serving: with ``max_tokens: 64`` every answer, streamed or not, is exactly 64 tokens
(finish ``length``), so runs are comparable and the relay cost per token divides by a known count.
Nothing else changes: same app, same containers, same wire protocol.
"""

from __future__ import annotations

import argparse

from service.simulator import textgen
from service.simulator.app import run_simulator

TOKENS = 64


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="natural length of every answer")
    args = parser.parse_args(argv)
    textgen.MIN_TOKENS = textgen.MAX_TOKENS = args.tokens
    run_simulator(args.host, args.port, "zero", None)


if __name__ == "__main__":
    main()
