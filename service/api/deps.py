"""Typed access to what `create_app` put on the app."""

from __future__ import annotations

from starlette.requests import Request

from service.runtime import AppState


def state_of(request: Request) -> AppState:
    state = request.app.state.jumpgate
    assert isinstance(state, AppState), "create_app puts the AppState on app.state.jumpgate"
    return state
