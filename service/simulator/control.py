"""The control API under ``/_sim/`` that tests and benchmarks use to steer and inspect the simulator."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.simulator.model import SimEndpoint
from service.simulator.state import SimState


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _bad_request(message: str) -> Response:
    return json_response({"error": message}, 400)


def _sim(request: Request) -> SimState:
    return request.app.state.sim  # type: ignore[no-any-return]


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = orjson.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


async def put_endpoint(request: Request) -> Response:
    try:
        endpoint = SimEndpoint.from_json(request.path_params["name"], await _json_object(request))
    except (ValueError, TypeError) as exc:
        return _bad_request(str(exc))
    _sim(request).put_endpoint(endpoint)
    return json_response(_sim(request).endpoints_json()[endpoint.name])


async def patch_endpoint(request: Request) -> Response:
    """Change some fields of an endpoint (e.g. the access keys it accepts), keeping the others."""
    current = _sim(request).endpoints.get(request.path_params["name"])
    if current is None:
        return json_response({"error": f"no endpoint {request.path_params['name']!r}"}, 404)
    try:
        fields = {k: v for k, v in _sim(request).endpoints_json()[current.endpoint.name].items() if k != "name"}
        endpoint = SimEndpoint.from_json(current.endpoint.name, {**fields, **await _json_object(request)})
    except (ValueError, TypeError) as exc:
        return _bad_request(str(exc))
    _sim(request).put_endpoint(endpoint)
    return json_response(_sim(request).endpoints_json()[endpoint.name])


async def list_endpoints(request: Request) -> Response:
    return json_response(_sim(request).endpoints_json())


async def post_faults(request: Request) -> Response:
    try:
        _sim(request).faults.apply(await _json_object(request))
    except ValueError as exc:
        return _bad_request(str(exc))
    return json_response(_sim(request).faults.snapshot())


async def get_faults(request: Request) -> Response:
    return json_response(_sim(request).faults.snapshot())


async def delete_faults(request: Request) -> Response:
    _sim(request).faults.clear()
    return json_response({})


async def get_requests(request: Request) -> Response:
    return json_response(_sim(request).recorder.dump())


async def delete_requests(request: Request) -> Response:
    _sim(request).recorder.clear()
    return json_response([])


async def get_stats(request: Request) -> Response:
    return json_response(_sim(request).stats())


async def reset(request: Request) -> Response:
    _sim(request).reset()
    return json_response({})


def _config_json(sim: SimState) -> dict[str, Any]:
    return {"latency": sim.latency.mode, "time_scale": sim.latency.time_scale, "record": sim.recorder.enabled}


async def config(request: Request) -> Response:
    """GET shows, POST changes ``latency``, ``time_scale`` and ``record`` (recording on/off)."""
    sim = _sim(request)
    if request.method == "POST":
        try:
            data = await _json_object(request)
            unknown = sorted(set(data) - {"latency", "time_scale", "record"})
            if unknown:
                raise ValueError(f"unknown config fields {unknown}")
            sim.latency.configure(data.get("latency"), data.get("time_scale"))
        except (ValueError, TypeError) as exc:
            return _bad_request(str(exc))
        if "record" in data:
            sim.recorder.enabled = bool(data["record"])
    return json_response(_config_json(sim))


def routes() -> list[Route]:
    return [
        Route("/_sim/endpoints", list_endpoints, methods=["GET"]),
        Route("/_sim/endpoints/{name}", put_endpoint, methods=["PUT"]),
        Route("/_sim/endpoints/{name}", patch_endpoint, methods=["PATCH"]),
        Route("/_sim/faults", post_faults, methods=["POST"]),
        Route("/_sim/faults", get_faults, methods=["GET"]),
        Route("/_sim/faults", delete_faults, methods=["DELETE"]),
        Route("/_sim/requests", get_requests, methods=["GET"]),
        Route("/_sim/requests", delete_requests, methods=["DELETE"]),
        Route("/_sim/stats", get_stats, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/config", config, methods=["GET", "POST"]),
    ]
