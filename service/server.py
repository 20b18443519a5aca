"""uvicorn servers with the shutdown behaviour jumpgate needs, and the listening socket they serve on."""

from __future__ import annotations

import contextlib
import errno
import gc
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn

from service.config.server import ServerConfig

#: uvicorn's own hard limit on the drain comes this long after drain_s: by then the gateway has ended the streams
#: still open with a shutting-down event (runtime.AppState.begin_drain), and this only catches what could not be.
DRAIN_GRACE_S = 5.0


def gateway_options(drain_s: float, server: ServerConfig) -> dict[str, Any]:
    """uvicorn settings every way of serving the gateway uses (one process, workers, the demo)."""
    return {
        # request head / body timeouts, a connection cap and JSON refusals (service/protocol.py)
        "http": "service.protocol:GuardedHttpToolsProtocol",
        "timeout_keep_alive": server.keepalive_timeout_s,
        "timeout_graceful_shutdown": drain_s + DRAIN_GRACE_S,
        # uvicorn's access log is off: the gateway writes one structured line per request instead
        "access_log": False,
        "log_config": None,
    }


class ListenError(Exception):
    """The address cannot be listened on. The message is one line for the user: what and how to change it."""


def listen(host: str, port: int, *, choose: str) -> socket.socket:
    """A socket bound to host:port, as uvicorn binds one (SO_REUSEADDR, IPv6 when the host has a colon), for
    `Server.run(sockets=[...])`. Binding before the server starts turns "port in use" into one line instead of
    uvicorn's log and exit mid-start-up; holding the socket leaves no window for another process to take the
    port. `choose` says how to pick another port (e.g. "--port N, or make serve PORT=N")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(_why(host, port, exc, choose)) from None
    sock.set_inheritable(True)
    return sock


def _why(host: str, port: int, exc: OSError, choose: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host}: choose another port with {choose}"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port} (below 1024 needs privileges): choose another with {choose}"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}: {exc.strerror or exc}; give an address of this machine with --host"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


class DrainingServer(uvicorn.Server):
    """uvicorn's graceful shutdown on SIGTERM / SIGINT (stop accepting, let requests and streams in flight
    finish for up to `timeout_graceful_shutdown`), then exit 0 instead of re-raising the signal as uvicorn
    does, so orchestrators see a clean stop (Kubernetes preStop + terminationGracePeriodSeconds, ECS
    stopTimeout). A second signal still forces the exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class QuietServer(uvicorn.Server):
    """A server its owner stops (`should_exit`), not signals: the demo's embedded simulator. It does not
    announce its (random) address either: the address to use is the gateway's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        return None


class AnnouncingServer(DrainingServer):
    """A DrainingServer that calls `announce` once it listens (prints a banner, logs the address), so what a
    user is told to call already answers. uvicorn logs no "running on" line for sockets it is given."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            settle_heap()
            self.announce()


def settle_heap() -> None:
    """Take what start-up built (modules, classes, the app: ~120k objects) out of the cyclic collector's sight,
    once a serving process is ready. Its full collections then walk only what requests allocate: with hundreds of
    streams open, a full collection over the whole heap stopped every stream for ~0.1 s (tests/bench/PROFILE.md).
    Start-up's objects live as long as the process anyway; reference counting still frees any that go."""
    gc.collect()
    gc.freeze()
