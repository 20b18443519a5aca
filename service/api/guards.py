"""Checks on a request before its body is read: what it claims to be, and where it was addressed.

- POST bodies must be `Content-Type: application/json` (charset parameters allowed) and carry no
  Content-Encoding the gateway does not decode: a browser can send `text/plain` or a form cross-origin without a
  CORS preflight, so accepting anything as JSON would let any web page a developer visits call a gateway on
  their machine.
- Without API keys (`auth` not configured), a request must name a loopback host or one of
  `server.allowed_hosts` in its Host header: DNS rebinding makes a hostile name resolve to 127.0.0.1, but it
  cannot change the Host header the browser sends. Health probes are exempt (kubelets address pods by IP).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response
from service.config.server import ServerConfig
from service.errors import HostNotAllowed, UnsupportedMediaType, echo

#: paths a load balancer or kubelet calls by IP address
PROBES = frozenset({"/healthz", "/readyz"})


def check_json_body(headers: Iterable[tuple[bytes, bytes]]) -> None:
    media = encoding = b""
    for name, value in headers:
        if name == b"content-type":
            media = value
        elif name == b"content-encoding":
            encoding = value
    kind = media.split(b";", 1)[0].strip().lower()
    if kind != b"application/json":
        shown = echo(media.decode("latin-1")) if media else "none"
        raise UnsupportedMediaType(f"the request body must be sent with Content-Type: application/json; got {shown}",
                                   param="content-type")
    if encoding.strip().lower() not in (b"", b"identity"):
        raise UnsupportedMediaType(f"Content-Encoding {echo(encoding.decode('latin-1'))} is not accepted: send the "
                                   "JSON body unencoded", param="content-encoding")


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    name = _hostname(host)
    if not name:
        return False
    extra = set(allowed)
    if "*" in extra or name in extra or name == "localhost" or name.endswith(".localhost"):
        return True
    return _loopback_address(name)


@functools.lru_cache(maxsize=256)  # a pure function of the name; bounded, so hostile Host values cannot grow it
def _loopback_address(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostGuard:
    """Refuses requests for other Host names while the gateway runs without API keys. Reads the config through
    `settings()` on every request, so a reload that adds `auth` or hosts applies at once."""

    def __init__(self, app: ASGIApp, settings: Callable[[], tuple[bool, ServerConfig]]) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PROBES:
            open_access, server = self.settings()
            if open_access:
                host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
                if not host_allowed(host, server.allowed_hosts):
                    err = HostNotAllowed(f"Host {echo(host)} is not served: without API keys this gateway answers "
                                         "only loopback names and server.allowed_hosts", param="host")
                    await error_response(err)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
