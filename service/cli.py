"""The `jumpgate` command: argument parsing only; each subcommand calls one function."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Coroutine, Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.func(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jumpgate", description="OpenAI-compatible gateway for SageMaker LLMs")
    sub = parser.add_subparsers(required=True, metavar="command")

    serve = sub.add_parser("serve", help="run the gateway (the demo with the simulator when no config is given)")
    serve.add_argument("--config", default=os.environ.get("JUMPGATE_CONFIG"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="serve a non-loopback address even though the config has no API keys")
    serve.set_defaults(func=_serve)

    simulate = sub.add_parser("simulate", help="run the SageMaker endpoint simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8081)
    simulate.add_argument("--latency", choices=("realistic", "zero"), default="realistic")
    simulate.add_argument("--config", default=None, help="simulate the endpoints of this jumpgate config")
    simulate.add_argument("--region", default=None, help="with --config: only that region's endpoints")
    simulate.set_defaults(func=_simulate)

    check = sub.add_parser("check-config", help="validate a config file and print what it resolves to")
    check.add_argument("file")
    check.set_defaults(func=_check_config)

    discover = sub.add_parser("discover", help="list the account's SageMaker endpoints and print a config for them")
    discover.add_argument("--region", action="append", default=None,
                          help="a region to scan (repeat for several); default: the session's (AWS_REGION, profile)")
    discover.add_argument("--role-arn", action="append", default=[],
                          help="also scan through this role, assumed with STS (another account; repeat for several)")
    discover.add_argument("--profile", default=None, help="AWS named profile")
    discover.add_argument("--endpoint-url", default=None, help="SageMaker API URL (VPC endpoint, moto)")
    discover.set_defaults(func=_discover)
    return parser


def _serve(args: argparse.Namespace) -> int:
    if args.config:
        return _serve_config(args)
    if not (_loopback(args.host) or args.allow_unauthenticated):
        print(_OPEN_BIND.format(host=args.host), file=sys.stderr)
        return 2
    return _run_fast(_serve_demo(args.host, args.port))


_OPEN_BIND = ("refusing to serve {host} without API keys: anyone who can reach it could spend your endpoints. "
              "Add `auth:` tenants to the config, bind 127.0.0.1, or pass --allow-unauthenticated.")


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_config(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.config.model import ConfigError, load_config
    from service.server import DrainingServer
    from service.telemetry.logs import setup_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if config.auth is None and not (_loopback(args.host) or args.allow_unauthenticated):
        print(_OPEN_BIND.format(host=args.host), file=sys.stderr)
        return 2
    setup_logging(config.logging.format)
    # On SIGTERM uvicorn stops accepting, lets requests and streams in flight finish for up to drain_s, then
    # exits 0: set Kubernetes terminationGracePeriodSeconds / ECS stopTimeout a little above it.
    drain = config.resilience.drain_s
    if args.workers > 1:
        os.environ["JUMPGATE_CONFIG"] = args.config
        _multiprocess_metrics_dir()
        uvicorn.run("service.app:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level="info", timeout_graceful_shutdown=drain,
                    access_log=False, log_config=None)
        return 0
    app = create_app(config, config_path=args.config)
    # uvicorn's access log is off: the gateway writes one structured line per request instead.
    server = DrainingServer(uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                                           timeout_graceful_shutdown=drain, access_log=False, log_config=None))
    server.run()  # not asyncio.run(server.serve()): run() sets up uvloop (uvicorn's loop factory)
    return 0


async def _serve_demo(host: str, port: int) -> int:
    """The simulator and the gateway in one event loop: one process, one Ctrl-C."""
    import uvicorn

    from service.app import create_app
    from service.config.demo import demo_config_data, usage_banner
    from service.config.model import parse_config
    from service.server import DrainingServer, QuietServer
    from service.simulator.app import create_simulator_app

    sim_port = _free_port()
    config = parse_config(demo_config_data(f"http://127.0.0.1:{sim_port}"), source="<demo>")
    sim = QuietServer(uvicorn.Config(create_simulator_app(latency="realistic"), host="127.0.0.1",
                                     port=sim_port, log_level="warning"))
    gw = DrainingServer(uvicorn.Config(create_app(config), host=host, port=port, log_level="info",
                                       timeout_graceful_shutdown=config.resilience.drain_s))
    sim_task = asyncio.create_task(sim.serve())
    while not sim.started:
        await asyncio.sleep(0.01)
    print(usage_banner(host, port), flush=True)
    await gw.serve()  # returns after SIGTERM / Ctrl-C and the drain
    sim.should_exit = True
    await sim_task
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from service.simulator.app import run_simulator

    run_simulator(args.host, args.port, args.latency, args.config, args.region)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from service.config.check import run_check_config

    return run_check_config(args.file)


def _discover(args: argparse.Namespace) -> int:
    from service.discover.scan import run_discover

    return run_discover(args.region, args.profile, args.endpoint_url, role_arns=args.role_arn)


def _multiprocess_metrics_dir() -> None:
    """Workers share their metric samples through files in one fresh directory (prometheus-client's
    multiprocess mode), so a scrape answered by any worker counts every worker's requests."""
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="jumpgate-metrics-")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):  # samples of an earlier run must not be added to this one's
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def _run_fast(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run on uvloop when it is installed (uvicorn[standard] brings it): it is the faster loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
