"""What the simulated runtime knows of real AWS estates: regions, access keys, serverless endpoints and inference
components that scale to zero. Written from AWS's documentation and observed answers (sources per function), not
from the gateway.

- Region and key: every call's SigV4 credential scope must name the endpoint's region and its access key must be
  one the endpoint accepts (`SimEndpoint.region`, `SimEndpoint.access_keys`; unset means unchecked).
- Inference components: an endpoint that hosts components needs the component header; a component with 0 copies
  answers SageMaker's no-capacity ValidationError until it has one. Copies change through the control API, at
  once or after a delay on the simulator's virtual clock (`POST /_sim/clock` advances it), and, like the
  NoCapacityInvocationFailures alarm of AWS's scale-from-zero recipe, a refused call can schedule a scale-out.
- Serverless endpoints refuse the streaming API and pay a cold start after idling.

Every time decision reads `Estate.clock`: real monotonic time plus an offset tests advance, never a sleep.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.simulator import sagemaker
from service.simulator.model import SimEndpoint

#: A serverless endpoint idle this long has scaled its compute to zero: the next call is a cold start. AWS does
#: not publish the figure (developer guide, "Serverless Inference": cold starts after a period without traffic).
SERVERLESS_WARM_S = 300.0

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/")


class VirtualClock:
    """Monotonic time plus an offset that the control API advances (virtual time for scale-ups and idling)."""

    def __init__(self, base: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self._base() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass(slots=True)
class Copies:
    """An inference component's copy count now and the scale-ups planned: (virtual time, copies)."""

    now: int
    planned: list[tuple[float, int]] = field(default_factory=list)
    no_capacity: int = 0  # calls refused for want of a copy

    def at(self, when: float) -> int:
        for due, copies in sorted(self.planned):
            if due <= when:
                self.now = copies
        self.planned = [(due, c) for due, c in self.planned if due > when]
        return self.now


class Estate:
    def __init__(self, endpoints: Mapping[str, SimEndpoint], clock: VirtualClock) -> None:
        self.clock = clock
        self.copies: dict[tuple[str, str], Copies] = {}
        self.last_call: dict[str, float] = {}
        self.cold_starts: dict[str, int] = {}
        for endpoint in endpoints.values():
            self.put(endpoint)

    def put(self, endpoint: SimEndpoint) -> None:
        for component, copies in endpoint.inference_components.items():
            self.copies[(endpoint.name, component)] = Copies(copies)

    def check(self, endpoint: SimEndpoint, headers: Mapping[str, str], stream_api: bool) -> Response | None:
        """The answer SageMaker gives instead of invoking the container, or None to go on."""
        return (_auth(endpoint, headers.get("authorization", ""))
                or (_serverless_stream() if endpoint.serverless and stream_api else None)
                or self._component(endpoint, headers.get("x-amzn-sagemaker-inference-component")))

    def cold_start_s(self, endpoint: SimEndpoint) -> float:
        """Extra time this call spends starting a serverless endpoint's compute (0 when warm)."""
        if not endpoint.serverless:
            return 0.0
        now, last = self.clock(), self.last_call.get(endpoint.name)
        self.last_call[endpoint.name] = now
        if last is not None and now - last < SERVERLESS_WARM_S:
            return 0.0
        self.cold_starts[endpoint.name] = self.cold_starts.get(endpoint.name, 0) + 1
        return endpoint.cold_start_s

    def scale(self, endpoint: str, component: str, copies: int, after_s: float = 0.0) -> None:
        state = self.copies.get((endpoint, component))
        if state is None:
            raise KeyError(f"endpoint {endpoint!r} hosts no inference component {component!r}")
        if after_s <= 0:
            state.now, state.planned = copies, []
        else:
            state.planned.append((self.clock() + after_s, copies))

    def snapshot(self, endpoint: str) -> dict[str, Any]:
        now = self.clock()
        components = {c: {"copies": s.at(now), "planned": [{"in_s": due - now, "copies": n} for due, n in s.planned],
                          "no_capacity": s.no_capacity}
                      for (e, c), s in self.copies.items() if e == endpoint}
        return {"inference_components": components, "cold_starts": self.cold_starts.get(endpoint, 0)}

    def _component(self, endpoint: SimEndpoint, component: str | None) -> Response | None:
        if not endpoint.inference_components:
            return None
        if not component:
            return sagemaker.component_required()
        state = self.copies.get((endpoint.name, component))
        if state is None:
            return sagemaker.component_not_found(component, endpoint.name)
        now = self.clock()
        if state.at(now) > 0:
            return None
        state.no_capacity += 1
        if endpoint.scale_out_after_s is not None and not state.planned:
            state.planned.append((now + endpoint.scale_out_after_s, 1))  # the alarm's step policy: +1 copy
        return sagemaker.no_capacity()


def _auth(endpoint: SimEndpoint, authorization: str) -> Response | None:
    """SigV4 scope and key against the endpoint's region and the keys it accepts (wire-formats.md 1.7)."""
    match = _SCOPE.search(authorization)
    if match is None:
        return None  # malformed scopes are refused earlier (sagemaker.check_sigv4)
    key, region = match[1], match[2]
    if endpoint.region is not None and region != endpoint.region:
        return sagemaker.invalid_signature_region()
    if endpoint.access_keys and key not in endpoint.access_keys:
        return sagemaker.unrecognized_client()
    return None


def _serverless_stream() -> Response:
    return sagemaker.serverless_stream_refused()


# --- control API ----------------------------------------------------------------------------------------------
def _estate(request: Request) -> Estate:
    return request.app.state.sim.estate  # type: ignore[no-any-return]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


async def _scale(request: Request) -> Response:
    """POST /_sim/endpoints/{name}/components/{component} {"copies": n, "after_s": t}: set the copy count now,
    or after t seconds of virtual time."""
    try:
        data = await _json_object(request)
        copies, after_s = data.get("copies"), data.get("after_s", 0)
        if set(data) - {"copies", "after_s"} or not isinstance(copies, int) or not _count(copies) \
                or not _seconds(after_s):
            raise ValueError('expected {"copies": a count >= 0, "after_s": seconds >= 0 (optional)}')
        _estate(request).scale(request.path_params["name"], request.path_params["component"], copies,
                               float(after_s))
    except (ValueError, KeyError) as exc:
        return json_response({"error": str(exc).strip("'\"")}, 400)
    return json_response(_estate(request).snapshot(request.path_params["name"]))


async def _status(request: Request) -> Response:
    return json_response(_estate(request).snapshot(request.path_params["name"]))


async def _clock(request: Request) -> Response:
    """GET: the virtual offset; POST {"advance_s": t}: move virtual time forward (planned scale-ups fall due)."""
    clock = _estate(request).clock
    if request.method == "POST":
        try:
            data = await _json_object(request)
            if set(data) != {"advance_s"} or not _seconds(data["advance_s"]):
                raise ValueError('expected {"advance_s": seconds >= 0}')
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        clock.advance(float(data["advance_s"]))
    return json_response({"offset_s": clock.offset})


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1000


def _seconds(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 86400


def routes() -> list[Route]:
    return [
        Route("/_sim/endpoints/{name}/components/{component}", _scale, methods=["POST"]),
        Route("/_sim/endpoints/{name}/estate", _status, methods=["GET"]),
        Route("/_sim/clock", _clock, methods=["GET", "POST"]),
    ]
