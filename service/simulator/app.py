"""The simulator's ASGI app: SageMaker runtime paths in front of the simulated containers.

Per request: record it, check SigV4 presence, find the endpoint, apply faults, let the container answer,
then either return the body (InvokeEndpoint) or frame it as an event stream
(InvokeEndpointWithResponseStream). What the container streams is decided by the body (``stream: true``),
not by the API used, as on SageMaker: a streamed body via InvokeEndpoint arrives whole, a JSON body via
the streaming API arrives in one PayloadPart.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import replace

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.simulator import containers, control, estate, sagemaker, streaming
from service.simulator.containers import ContainerError, Invocation, Output
from service.simulator.faults import Decision
from service.simulator.latency import MODES
from service.simulator.model import DEMO_ENDPOINTS, SimEndpoint, endpoints_from_config
from service.simulator.state import EndpointRuntime, SimState

EVENTSTREAM = "application/vnd.amazon.eventstream"


def create_simulator_app(endpoints: Mapping[str, SimEndpoint] | None = None, *, latency: str = "zero",
                         seed: int = 0) -> Starlette:
    """A fresh simulator; ``endpoints=None`` serves ``DEMO_ENDPOINTS``. State lives on ``app.state.sim``."""
    if latency not in MODES:
        raise ValueError(f"latency must be one of {MODES}, got {latency!r}")
    routes = [
        Route("/endpoints/{name}/invocations", invoke, methods=["POST"]),
        Route("/endpoints/{name}/invocations-response-stream", invoke_stream, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        *control.routes(),
        *estate.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.sim = SimState(DEMO_ENDPOINTS if endpoints is None else endpoints, latency, seed)
    return app


def run_simulator(host: str, port: int, latency: str, config_path: str | None, region: str | None = None) -> None:
    """Serve until interrupted; with a jumpgate config, simulate exactly the endpoints it names (with `region`,
    only those in that region: one process stands for one region's runtime)."""
    endpoints = endpoints_from_config(config_path) if config_path else None
    if region is not None and endpoints is not None:
        endpoints = {name: ep for name, ep in endpoints.items() if ep.region == region}
    app = create_simulator_app(endpoints, latency=latency)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


async def ping(request: Request) -> Response:
    return Response(b"", 200)


async def invoke(request: Request) -> Response:
    return await _invoke(request, stream_api=False)


async def invoke_stream(request: Request) -> Response:
    return await _invoke(request, stream_api=True)


async def _invoke(request: Request, *, stream_api: bool) -> Response:
    sim: SimState = request.app.state.sim
    name = request.path_params["name"]
    body = await request.body()
    sim.recorder.record(name, request.scope["path"], request.scope["headers"], body)
    headers = request.headers
    denied = sagemaker.check_sigv4(headers.get("authorization"), headers.get("x-amz-date"))
    if denied is not None:
        return denied
    runtime = sim.endpoints.get(name)
    if runtime is None:
        return sagemaker.endpoint_not_found(name)
    refused = sim.estate.check(runtime.endpoint, headers, stream_api)
    if refused is not None:
        return refused
    runtime.stats.requests += 1
    decision = sim.faults.decide(name)
    if decision.hold:
        await sim.faults.released.wait()
    if cold := sim.estate.cold_start_s(runtime.endpoint):
        decision = replace(decision, delay_s=decision.delay_s + cold)
    if decision.reject is not None:
        return _rejected(runtime, decision)
    inv = Invocation(runtime.endpoint, body, headers.get("content-type", "application/json"),
                     headers.get("x-amzn-sagemaker-custom-attributes", ""), stream_api, sim.random_seed, sim.next_id,
                     lambda: sim.faults.take_tool_output(name))
    try:
        output = containers.get(runtime.endpoint.container).handle(inv)
    except ContainerError as exc:
        return sagemaker.model_error(name, exc.status, exc.body)
    if stream_api:
        return _stream(sim, runtime, output, decision)  # type: ignore[return-value]
    return await _whole(sim, runtime, output, decision)


def _rejected(runtime: EndpointRuntime, decision: Decision) -> Response:
    kind = decision.reject
    if kind == "throttle":
        return sagemaker.throttled()
    if kind == "model":
        container = containers.get(runtime.endpoint.container)
        body = container.error_body(decision.error_status, "Simulated container failure")
        return sagemaker.model_error(runtime.endpoint.name, decision.error_status, body)
    return sagemaker.service_fault(str(kind))


async def _whole(sim: SimState, runtime: EndpointRuntime, output: Output, decision: Decision) -> Response:
    """InvokeEndpoint: hold a slot for the whole generation time, then answer with the container body."""
    async with runtime:
        delay = decision.delay_s + sim.latency.total(runtime.endpoint.accelerator, output.prompt_tokens,
                                                     output.tokens)
        if delay:
            await asyncio.sleep(delay)
    body = output.chunks[0] if len(output.chunks) == 1 else b"".join(output.chunks)
    return Response(body, 200, sagemaker.base_headers(), media_type=output.content_type)


def _stream(sim: SimState, runtime: EndpointRuntime, output: Output,
            decision: Decision) -> streaming.EventStreamResponse:
    split_rng = random.Random(sim.rng.getrandbits(64)) if decision.split == "random" else None
    body = streaming.frames(output, runtime, sim.latency, decision, split_rng)
    headers = {**sagemaker.base_headers(), "Content-Type": EVENTSTREAM,
               "X-Amzn-SageMaker-Content-Type": output.content_type}
    watch = sim.latency.enabled or decision.delay_s > 0
    return streaming.EventStreamResponse(body, headers, runtime, watch)


__all__ = ["create_simulator_app", "run_simulator"]
