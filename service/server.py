"""uvicorn servers with the shutdown behaviour jumpgate needs."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator, Sequence

import uvicorn


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
