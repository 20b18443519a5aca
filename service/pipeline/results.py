"""From what the containers answered to the gateway's answer: finish reasons, usage and attributed cost.

Shared by non-streaming answers, streams and shadow comparisons, so each rule exists once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.canonical import Choice, Decoded, FinishReason, Generation, SamplingParams, Usage
from service.pipeline import logprobs
from service.pipeline.catalog import Endpoint, Upstream
from service.pipeline.plan import Plan
from service.pipeline.stops import cut_at_stop
from service.pipeline.tokens import TokenCounter, resolve_usage
from service.transport.base import RawResponse


@dataclass(frozen=True, slots=True)
class CallResult:
    """One upstream call that succeeded: its answer, how many attempts it took, how long the endpoint was held."""

    raw: RawResponse
    attempts: int
    seconds: float
    bytes_in: int = 0


def attributed_cost(ep: Upstream, upstream_seconds: float, bytes_in: int = 0, bytes_out: int = 0) -> float:
    """The endpoint's price model (telemetry/cost.py): instance-hours per second x seconds held / concurrency
    slots, or serverless compute per GB-second by memory plus data processing per GB."""
    return ep.price.attributed(upstream_seconds, bytes_in, bytes_out)


def resolve_finish(reported: FinishReason | None, text: str, *, stopped: bool, params: SamplingParams,
                   counter: TokenCounter) -> FinishReason:
    """A stop sequence the gateway found wins; then what the container said; when it said nothing, `length`
    if the answer used the whole max_new_tokens budget (counted), else `stop`."""
    if stopped:
        return FinishReason.STOP
    if reported is not None:
        return reported
    full = counter.count(text) >= (params.max_new_tokens or 0)
    return FinishReason.LENGTH if full else FinishReason.STOP


def answer(ep: Endpoint, params: SamplingParams, prompt_text: str, decoded: Sequence[Decoded],
           results: Sequence[CallResult], *, dropped: tuple[str, ...] = (), total_s: float = 0.0,
           top_logprobs: int | None = None) -> Generation:
    """The Generation of a non-streaming request whose calls (one, or several for fanned-out n) all answered.
    `top_logprobs`: token log-probabilities were asked for, with that many alternatives."""
    merged = merge(decoded)
    counter = ep.counter
    choices = tuple(_finish(c, i, params, counter, top_logprobs) for i, c in enumerate(merged.choices))
    usage = resolve_usage(merged, prompt_text, [c.text for c in merged.choices], counter, params.max_new_tokens)
    upstream = sum(r.seconds for r in results)
    cost = attributed_cost(ep, upstream, sum(r.bytes_in for r in results), sum(len(r.raw.body) for r in results))
    return Generation(choices=choices, usage=usage, endpoint=ep.id, attempts=max(r.attempts for r in results),
                      dropped_params=dropped, upstream_seconds=upstream, cost_usd=cost,
                      timings={"total_s": total_s, "upstream_s": upstream})


def unfinished_usage(plan: Plan, generated: str) -> Usage:
    """What a request that ended without its final answer consumed: the prompt, and what was generated (relayed)
    so far, counted with the endpoint's counter (the backend's counts never arrived)."""
    return resolve_usage(Decoded(()), plan.prompt_text, [generated], plan.endpoint.counter,
                         plan.params.max_new_tokens)


def merge(decoded: Sequence[Decoded]) -> Decoded:
    if len(decoded) == 1:
        return decoded[0]
    choices = tuple(c for d in decoded for c in d.choices)
    completions = [d.completion_tokens for d in decoded]
    return Decoded(
        choices=choices,
        prompt_tokens=decoded[0].prompt_tokens,  # OpenAI usage counts the prompt once
        completion_tokens=None if None in completions else sum(c or 0 for c in completions),
    )


def _finish(choice: Choice, index: int, params: SamplingParams, counter: TokenCounter,
            top_logprobs: int | None) -> Choice:
    text, stopped = cut_at_stop(choice.text, params.stop)
    entries = None
    if top_logprobs is not None:
        entries = logprobs.trimmed(choice.logprobs, top_logprobs) or ()  # asked for: always a list
        entries = logprobs.cut_to(entries, len(text)) if stopped else entries
    return Choice(text, resolve_finish(choice.finish_reason, text, stopped=stopped, params=params, counter=counter),
                  index, entries, choice.tool_calls)
