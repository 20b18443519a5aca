"""``python -m service.simulator [--host H] [--port P] [--latency zero|realistic] [--config FILE] [--region R]``."""

from __future__ import annotations

import argparse

from service.simulator.app import run_simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.simulator",
                                     description="SageMaker runtime simulator with LLM container behaviours")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--latency", choices=("zero", "realistic"), default="realistic",
                        help="realistic: per-accelerator time to first token and decode time; zero: no sleeps")
    parser.add_argument("--config", default=None, help="a jumpgate YAML config: simulate the endpoints it names")
    parser.add_argument("--region", default=None,
                        help="with --config: only the endpoints in this region (one process per region)")
    args = parser.parse_args(argv)
    run_simulator(args.host, args.port, args.latency, args.config, args.region)


if __name__ == "__main__":
    main()
