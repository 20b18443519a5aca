"""The client's default timeout outlasts the gateway's own request deadline, so a slow request ends with the
gateway's answer (504 and its message) rather than with the client hanging up first."""

from __future__ import annotations

import httpx

from clients.jumpgate_client import AsyncJumpgateClient, JumpgateClient, _core
from service.config.resilience import ResilienceConfig


def test_the_default_read_timeout_is_above_the_gateways_request_deadline() -> None:
    gateway_deadline = ResilienceConfig().request_timeout_s
    assert gateway_deadline == _core.GATEWAY_REQUEST_TIMEOUT_S  # the client's copy of the gateway default
    assert gateway_deadline + 10 <= _core.DEFAULT_TIMEOUT_S
    assert gateway_deadline > _core.CONNECT_TIMEOUT_S  # an unreachable gateway is still reported quickly


def test_both_clients_use_it_unless_told_otherwise() -> None:
    expected = httpx.Timeout(_core.DEFAULT_TIMEOUT_S, connect=_core.CONNECT_TIMEOUT_S)
    with JumpgateClient("http://127.0.0.1:9") as client:
        assert client._http.timeout == expected
    with JumpgateClient("http://127.0.0.1:9", timeout=5) as client:
        assert client._http.timeout == httpx.Timeout(5)
    aclient = AsyncJumpgateClient("http://127.0.0.1:9")
    assert aclient._http.timeout == expected
    assert AsyncJumpgateClient("http://127.0.0.1:9", timeout=None)._http.timeout == httpx.Timeout(None)
