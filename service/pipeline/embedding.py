"""Embedding requests: model → plans (routing, batches, payloads) → attempts → vectors in input order.

The same mechanics as text generation (`attempts`: slots, retries under the budget, breaker, fallback, deadline;
`routing.ordered`: weights, throttling, free slots; `results.attributed_cost`), with what is particular to
embeddings:

- inputs are split into batches of the endpoint's batch size (`container.max_batch_size`, 32 by default: TEI's
  --max-client-batch-size) and sent at most `PARALLEL_BATCHES` at a time; the vectors are put back in input order.
  All batches of a request go to one endpoint: a retryable failure moves the whole request to the next one, so
  the vectors never mix two endpoints;
- `dimensions` is sent to containers that cut natively (TEI >= 1.8); an endpoint declared Matryoshka-capable gets
  its vectors cut and re-normalized here; any other endpoint cannot serve it (routing drops it, else a 400);
- token-id inputs go only to schemas that take them;
- a 4xx the container answers (input over its length, `dimensions` over its size) is the input's fault: a 400
  with the container's reason, not a 502;
- usage counts the inputs with the endpoint's tokenizer where configured (SageMaker returns no counts).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from service.adapters.embedding_base import Vector
from service.canonical import Usage
from service.embedding import EmbeddingRequest, Embeddings
from service.errors import (
    DeadlineExceeded,
    GatewayError,
    InvalidParam,
    InvalidRequest,
    UpstreamModelError,
)
from service.pipeline.attempts import TIMEOUT_HINT, Attempts
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Catalog
from service.pipeline.embedding_catalog import EmbeddingEndpoint, EmbeddingModel
from service.pipeline.results import CallResult, attributed_cost
from service.pipeline.routing import none_left, ordered
from service.telemetry.trace import Trace
from service.transport.base import Payload

#: batches of one request in flight at once: enough to overlap calls, few enough to leave slots to others
PARALLEL_BATCHES = 4
#: container statuses that mean "this input cannot be embedded" (TEI: 400 empty, 413/422 validation)
INPUT_STATUSES = (400, 413, 422)


@dataclass(frozen=True, slots=True)
class Batch:
    start: int  # index of its first input
    count: int
    payload: Payload


@dataclass(frozen=True, slots=True)
class EmbeddingPlan:
    endpoint: EmbeddingEndpoint
    weight: float
    batches: tuple[Batch, ...]
    cut: int | None  # dimensions the gateway cuts to (Matryoshka); None: the container did, or none asked


async def embed(attempts: Attempts, catalog: Catalog, req: EmbeddingRequest, trace: Trace,
                rng: random.Random) -> Embeddings:
    deadline = attempts.deadline(req.timeout_s)
    started = attempts.clock()
    model = catalog.embedding_model(req.model)
    trace.model = model.name
    plans = plan_embedding(model, req, attempts.fleet, rng)
    try:
        async with asyncio.timeout_at(attempts.loop_time(deadline)):
            plan, results = await attempts.failover(
                plans, lambda p, last: _calls(attempts, p, last, deadline, trace), trace)
    except TimeoutError:
        _charge_unanswered(plans, req, trace)
        raise DeadlineExceeded(f"the request did not finish within its deadline of {deadline - started:.1f}s; "
                               f"allow more time ({TIMEOUT_HINT})") from None
    except BaseException:
        _charge_unanswered(plans, req, trace)
        raise
    answer = _answer(plan, req, results)
    trace.upstream_seconds, trace.usage, trace.cost_usd = answer.upstream_seconds, answer.usage, answer.cost_usd
    trace.upstream_bytes = answer.upstream_bytes
    return answer


def plan_embedding(model: EmbeddingModel, req: EmbeddingRequest, fleet: Fleet,
                   rng: random.Random) -> list[EmbeddingPlan]:
    """The endpoints that can serve the request, in routing order. Raises the 400 (or 503) when none can."""
    fitting: list[EmbeddingPlan] = []
    refusals: list[GatewayError] = []
    unhealthy: list[float] = []
    for ep, weight in model.targets:
        try:
            plan = _plan(model, ep, weight, req)
        except InvalidRequest as err:
            refusals.append(err)
            continue
        breaker = fleet[ep.id].breaker
        if breaker.available():
            fitting.append(plan)
        else:
            unhealthy.append(breaker.retry_after())
    if not fitting:
        raise none_left(model.name, refusals, unhealthy)
    return ordered(fitting, fleet, rng)


def _plan(model: EmbeddingModel, ep: EmbeddingEndpoint, weight: float, req: EmbeddingRequest) -> EmbeddingPlan:
    where = f"endpoint '{ep.id}' (schema {ep.schema}) of model '{model.name}'"
    if req.token_ids and not ep.adapter.token_ids:
        raise InvalidParam(f"{where} embeds text only: send `input` as strings, not token ids", param="input")
    native = req.dimensions is not None and ep.native_dimensions
    if req.dimensions is not None and not native and not ep.matryoshka:
        raise InvalidParam(
            f"`dimensions` is not supported by {where}: its container does not cut vectors (TEI >= 1.8 does; "
            "declare container.version) and it is not declared Matryoshka-capable (container.matryoshka): "
            "remove `dimensions`", param="dimensions")
    size, inputs = ep.batch_size, req.inputs
    batches = tuple(Batch(start, len(inputs[start:start + size]),
                          ep.adapter.encode(inputs[start:start + size], req.dimensions if native else None))
                    for start in range(0, len(inputs), size))
    return EmbeddingPlan(ep, weight, batches, None if native else req.dimensions)


async def _calls(attempts: Attempts, plan: EmbeddingPlan, last: bool, deadline: float,
                 trace: Trace) -> list[tuple[CallResult, list[Vector]]]:
    """Every batch of the plan on its endpoint, at most PARALLEL_BATCHES at once; results in batch order. When
    one batch fails the others are cancelled (their slots freed) and its error is raised."""
    ep, gate = plan.endpoint, asyncio.Semaphore(PARALLEL_BATCHES)

    async def one(batch: Batch) -> tuple[CallResult, list[Vector]]:
        async with gate:
            try:
                result = await attempts.call(ep, batch.payload, last=last, deadline=deadline, trace=trace)
            except UpstreamModelError as exc:
                if exc.original_status not in INPUT_STATUSES:
                    raise
                raise InvalidRequest(f"endpoint '{ep.id}' refused the input: {exc.message}", param="input",
                                     code="input_rejected") from exc
        return result, ep.adapter.decode(result.raw, batch.count)

    if len(plan.batches) == 1:
        return [await one(plan.batches[0])]  # the common case: no task
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(b)) for b in plan.batches]
    except BaseExceptionGroup as failed:
        raise _first(failed) from None
    return [t.result() for t in tasks]


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure that ended a group of batches (the others were cancelled because of it)."""
    found = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
    first = (found or list(group.exceptions))[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _answer(plan: EmbeddingPlan, req: EmbeddingRequest, results: Sequence[tuple[CallResult, list[Vector]]],
            ) -> Embeddings:
    ep = plan.endpoint
    vectors: list[Vector] = [v for _, batch in results for v in batch]
    if plan.cut is not None:
        vectors = [_cut(v, plan.cut, ep) for v in vectors]
    counter = ep.counter
    tokens = sum(counter.count(i) if isinstance(i, str) else len(i) for i in req.inputs)
    upstream = sum(r.seconds for r, _ in results)
    bytes_in, bytes_out = sum(r.bytes_in for r, _ in results), sum(len(r.raw.body) for r, _ in results)
    return Embeddings(tuple(vectors), Usage(tokens, 0, counter.source), ep.id,
                      attempts=max(r.attempts for r, _ in results), calls=len(results), upstream_seconds=upstream,
                      upstream_bytes=bytes_in + bytes_out, cost_usd=attributed_cost(ep, upstream, bytes_in, bytes_out),
                      dimensions_by=None if req.dimensions is None else "gateway" if plan.cut else "container")


def _cut(vector: Vector, dimensions: int, ep: EmbeddingEndpoint) -> Vector:
    """Matryoshka: the first `dimensions` values, L2-normalized again."""
    if dimensions > len(vector):
        raise InvalidParam(f"`dimensions` {dimensions} is more than the {len(vector)} dimensions of endpoint "
                           f"'{ep.id}': ask for {len(vector)} or fewer", param="dimensions")
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm > 0 else head


def _charge_unanswered(plans: Sequence[EmbeddingPlan], req: EmbeddingRequest, trace: Trace) -> None:
    """A request that held an endpoint and got no answer still consumed its time: it is charged for it."""
    if trace.upstream_seconds <= 0:
        return
    plan = next((p for p in plans if p.endpoint.id == trace.endpoint), None)
    if plan is not None:
        counter = plan.endpoint.counter
        tokens = sum(counter.count(i) if isinstance(i, str) else len(i) for i in req.inputs)
        trace.usage = Usage(tokens, 0, counter.source)
        trace.cost_usd = attributed_cost(plan.endpoint, trace.upstream_seconds)
