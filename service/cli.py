"""The `jumpgate` command: argument parsing only; each subcommand calls one function.

Every flag reads an environment variable as well (service/cli_flags.py); `jumpgate COMMAND --help` lists each
flag with its default and its variable. Failures a user can fix (a port in use, a bad config file, a bad
flag) end in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from service.cli_flags import Flag, HelpFormatter, add_flags, host, one_of, port, resolve, switch, url, workers

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.config.model import Config
    from service.simulator.model import SimEndpoint

#: how to choose another port, in the one line that says a port is taken
SERVE_PORT_CHOICE = "--port N (with make: make serve PORT=N)"
SIMULATE_PORT_CHOICE = "--port N (with make: make simulate SIM_PORT=N)"
DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8081"

_SERVE = (
    Flag("--config", "the YAML config to serve; without one, the demo: one model per payload schema in front of "
         "an embedded SageMaker simulator", "JUMPGATE_CONFIG", shown="none, the demo", metavar="FILE"),
    Flag("--host", "address to listen on; one that is not loopback needs `auth:` tenants in the config or "
         "--allow-unauthenticated", "JUMPGATE_HOST", "127.0.0.1", host),
    Flag("--port", "port of the HTTP API", "JUMPGATE_PORT", 8080, port, metavar="N"),
    Flag("--workers", "worker processes sharing the port (with --config); /metrics adds up all of them",
         "JUMPGATE_WORKERS", 1, workers, metavar="N"),
    Flag("--allow-unauthenticated", "serve an address that is not loopback although the config has no API keys",
         "JUMPGATE_ALLOW_UNAUTHENTICATED", False, switch),
)
_SIMULATE = (
    Flag("--host", "address to listen on", "JUMPGATE_SIMULATOR_HOST", "127.0.0.1", host),
    Flag("--port", "port of the simulated SageMaker runtime API", "JUMPGATE_SIMULATOR_PORT", 8081, port,
         metavar="N"),
    Flag("--latency", "realistic: per-accelerator time to first token and per-token decode time; zero: answer at "
         "once", "JUMPGATE_SIMULATOR_LATENCY", "realistic", one_of("realistic", "zero"), metavar="realistic|zero"),
    Flag("--config", "simulate the endpoints this jumpgate config names instead of the demo's",
         "JUMPGATE_SIMULATOR_CONFIG", shown="the demo endpoints", metavar="FILE"),
    Flag("--region", "with --config: only the endpoints in this region (one simulator process per region)",
         "JUMPGATE_SIMULATOR_REGION", shown="every region", metavar="REGION"),
)
_DISCOVER = (
    Flag("--region", "AWS region to list (repeat for several)", "AWS_REGION or AWS_DEFAULT_REGION, read by boto3",
         shown="the AWS session's region", passive=True, repeat=True, metavar="REGION"),
    Flag("--role-arn", "also list the endpoints this role sees, assumed with STS (another account; repeat for "
         "several)", "JUMPGATE_DISCOVER_ROLE_ARNS, comma-separated", shown="none", repeat=True, metavar="ARN"),
    Flag("--profile", "AWS named profile for the credentials", "AWS_PROFILE, read by boto3",
         shown="the standard credential chain", passive=True),
    Flag("--endpoint-url", "SageMaker API URL (a VPC endpoint, or moto in tests)",
         "AWS_ENDPOINT_URL_SAGEMAKER, read by boto3", shown="the region's SageMaker API", passive=True),
)
_DEMO_CONFIG = (
    Flag("--runtime-url", "URL of the SageMaker runtime the config points at: a simulator started with "
         "`jumpgate simulate`", "JUMPGATE_SIMULATOR_URL", DEFAULT_SIMULATOR_URL, url, metavar="URL"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    resolve(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.func(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jumpgate", description="OpenAI-compatible gateway for SageMaker LLMs")
    sub = parser.add_subparsers(required=True, metavar="command")
    commands = (
        ("serve", "run the gateway (the demo with the simulator when no config is given)", _SERVE, _serve),
        ("simulate", "run the SageMaker endpoint simulator alone", _SIMULATE, _simulate),
        ("discover", "list the account's SageMaker endpoints and print a config for them", _DISCOVER, _discover),
        ("demo-config", "print the demo config `jumpgate serve` runs without one, to start from or to run "
         "against `jumpgate simulate`", _DEMO_CONFIG, _demo_config),
    )
    for name, summary, flags, func in commands:
        command = sub.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)
        add_flags(command, flags)
        command.set_defaults(func=func)
    check = sub.add_parser("check-config", help="validate a config file and print what it resolves to",
                           formatter_class=HelpFormatter,
                           description="validate a config file and print what it resolves to; exit 1 listing "
                           "every problem (file, key, why)")
    check.add_argument("file", metavar="FILE", help="the YAML config; its ${VAR} references expand from the "
                       "environment")
    check.set_defaults(func=_check_config)
    return parser


def _fail(command: str, message: object, code: int = 1) -> int:
    print(f"jumpgate {command}: {message}", file=sys.stderr)
    return code


def _serve(args: argparse.Namespace) -> int:
    if args.config:
        return _serve_config(args)
    if not (_loopback(args.host) or args.allow_unauthenticated):
        print(_OPEN_BIND.format(host=args.host), file=sys.stderr)
        return 2
    return _serve_demo(args.host, args.port)


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
    from service.config.model import load_config
    from service.config.problems import ConfigError
    from service.server import ListenError, listen
    from service.telemetry.logs import setup_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if config.auth is None and not (_loopback(args.host) or args.allow_unauthenticated):
        print(_OPEN_BIND.format(host=args.host), file=sys.stderr)
        return 2
    try:
        sock = listen(args.host, args.port, choose=SERVE_PORT_CHOICE)
    except ListenError as exc:
        return _fail("serve", exc)
    setup_logging(config.logging.format)
    # On SIGTERM uvicorn stops accepting, lets requests and streams in flight finish for up to drain_s, then
    # exits 0: set Kubernetes terminationGracePeriodSeconds / ECS stopTimeout a little above it.
    if args.workers > 1:
        sock.close()  # the port is free (just checked): uvicorn's supervisor binds it and shares it with workers
        return _serve_workers(args, config)
    return _serve_one(args, config, sock)


def _serve_one(args: argparse.Namespace, config: Config, sock: socket.socket) -> int:
    import uvicorn

    from service.app import create_app
    from service.config.demo import display_base
    from service.server import AnnouncingServer, gateway_options

    app = create_app(config, config_path=args.config)
    base = display_base(args.host, args.port)
    options = gateway_options(config.resilience.drain_s, config.server)
    server = AnnouncingServer(uvicorn.Config(app, host=args.host, port=args.port, log_level="info", **options),
                              lambda: logging.getLogger("jumpgate").info("listening on %s", base))
    server.run(sockets=[sock])  # not asyncio.run(server.serve()): run() sets up uvloop (uvicorn's loop factory)
    return 0


def _serve_workers(args: argparse.Namespace, config: Config) -> int:
    import uvicorn

    from service.server import gateway_options

    os.environ["JUMPGATE_CONFIG"] = args.config
    _multiprocess_metrics_dir()
    # uvicorn annotates timeouts as int but waits with asyncio.wait_for: fractional seconds work
    uvicorn.run("service.cli:worker_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="info", **gateway_options(config.resilience.drain_s, config.server))
    return 0


def worker_app() -> FastAPI:
    """uvicorn's factory in each `--workers N` process: the app from JUMPGATE_CONFIG, its start-up heap settled."""
    from service.app import app_from_env
    from service.server import settle_heap

    app = app_from_env()
    settle_heap()
    return app


def _serve_demo(host: str, port: int) -> int:
    from service.server import ListenError, listen

    try:
        sock = listen(host, port, choose=SERVE_PORT_CHOICE)
    except ListenError as exc:
        return _fail("serve", exc)
    sim_sock = listen("127.0.0.1", 0, choose="")  # any free loopback port: only the gateway talks to it
    return _run_fast(_demo(host, port, sock, sim_sock))


async def _demo(host: str, port: int, sock: socket.socket, sim_sock: socket.socket) -> int:
    """The simulator and the gateway in one event loop: one process, one Ctrl-C."""
    import uvicorn

    from service.app import create_app
    from service.config.demo import DEMO_LOG_FORMAT, demo_config_data, usage_banner
    from service.config.model import parse_config
    from service.server import AnnouncingServer, QuietServer, gateway_options
    from service.simulator.app import create_simulator_app
    from service.telemetry.logs import setup_logging

    sim_port = int(sim_sock.getsockname()[1])
    config = parse_config(demo_config_data(f"http://127.0.0.1:{sim_port}", log_format=DEMO_LOG_FORMAT),
                          source="<demo>")
    setup_logging(config.logging.format)
    sim = QuietServer(uvicorn.Config(create_simulator_app(latency="realistic"), host="127.0.0.1", port=sim_port,
                                     log_level="warning", access_log=False, log_config=None))
    options = gateway_options(config.resilience.drain_s, config.server)
    gw = AnnouncingServer(uvicorn.Config(create_app(config), host=host, port=port, log_level="info", **options),
                          _printer(usage_banner(host, port)))
    sim_task = asyncio.create_task(sim.serve(sockets=[sim_sock]))
    while not sim.started and not sim_task.done():
        await asyncio.sleep(0.01)
    await gw.serve(sockets=[sock])  # the banner prints once it listens; returns after SIGTERM / Ctrl-C and the drain
    sim.should_exit = True
    await sim_task
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import uvicorn

    from service.config.demo import display_base, simulator_banner
    from service.server import AnnouncingServer, ListenError, listen
    from service.simulator.app import create_simulator_app

    endpoints = _simulated_endpoints(args.config, args.region)
    if isinstance(endpoints, str):
        return _fail("simulate", endpoints)
    try:
        sock = listen(args.host, args.port, choose=SIMULATE_PORT_CHOICE)
    except ListenError as exc:
        return _fail("simulate", exc)
    rows = [(e.name, e.container, e.accelerator, e.max_total_tokens, e.slots) for e in endpoints.values()]
    banner = simulator_banner(display_base(args.host, args.port), args.latency, rows, args.config)
    server = AnnouncingServer(uvicorn.Config(create_simulator_app(endpoints, latency=args.latency), host=args.host,
                                             port=args.port, log_level="warning", access_log=False),
                              _printer(banner))
    server.run(sockets=[sock])
    return 0


def _printer(text: str) -> Callable[[], None]:
    return lambda: print(text, flush=True)


def _simulated_endpoints(config_path: str | None, region: str | None = None) -> Mapping[str, SimEndpoint] | str:
    """The demo endpoints, those a jumpgate config names (in `region` only, when given: one process stands for
    one region's runtime), or a one-line reason why the config cannot be used."""
    import yaml

    from service.simulator.model import DEMO_ENDPOINTS, endpoints_from_config

    if not config_path:
        return DEMO_ENDPOINTS
    try:
        endpoints = endpoints_from_config(config_path)
    # The file is the user's: whatever is wrong with it is said in one line (AttributeError / TypeError: a
    # section that is not a mapping).
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        return f"cannot simulate the endpoints of {config_path}: {str(exc).splitlines()[0][:300]}"
    if region is not None:
        endpoints = {name: ep for name, ep in endpoints.items() if ep.region == region}
    return endpoints or f"{config_path} names no endpoints to simulate" + (f" in {region}" if region else "")


def _check_config(args: argparse.Namespace) -> int:
    from service.config.check import run_check_config

    return run_check_config(args.file)


def _discover(args: argparse.Namespace) -> int:
    from service.discover.scan import run_discover

    return run_discover(args.region, args.profile, args.endpoint_url, role_arns=args.role_arn or ())


def _demo_config(args: argparse.Namespace) -> int:
    from service.config.demo import demo_config_yaml

    sys.stdout.write(demo_config_yaml(args.runtime_url))
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
