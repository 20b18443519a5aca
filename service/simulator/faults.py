"""Fault switches set through ``POST /_sim/faults``.

A spec names an endpoint (or ``"*"`` for all) and is merged into that endpoint's switches. For each request
the endpoint's own switches are read first, then ``"*"``'s, then the defaults. Counters (``throttle_next``,
``error_next``) are consumed one per request; rates draw from the simulator's seeded PRNG, so a run with
the same seed and request order injects the same faults. Switches stay until ``DELETE /_sim/faults``.

Fields: ``throttle_next`` / ``throttle_rate`` → ThrottlingException; ``error_next`` / ``error_rate`` → an
error of ``error_kind`` (``model``: the container answers ``error_status`` in its own error shape, which
SageMaker wraps as ModelError; ``unavailable`` / ``internal`` / ``not_ready``: SageMaker's own 503 / 500 /
429); ``delay_s`` → extra time holding a slot; ``stream_error_after`` N → on the streaming API, after N
logical stream lines, either an exception frame (``ModelStreamError`` / ``InternalStreamFailure``) or the
container's own in-stream error line (``container``); ``split`` → PayloadPart boundaries (``line`` or
``random``); ``hold: true`` → requests wait before answering until the hold is lifted (``hold: false`` or
``DELETE /_sim/faults``), so a test can see what happens while a call is in flight without racing a clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ERROR_KINDS = ("model", "unavailable", "internal", "not_ready")
STREAM_ERROR_KINDS = ("ModelStreamError", "InternalStreamFailure", "container")
SPLITS = ("line", "random")
TOOL_OUTPUT_KINDS = ("malformed", "invalid_json", "wrong_name", "bad_arguments")


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _rate(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1


def _seconds(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


def _status(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599


def _one_of(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in options


_FIELDS: dict[str, Callable[[Any], bool]] = {
    "throttle_next": _count, "throttle_rate": _rate, "error_next": _count, "error_rate": _rate,
    "error_kind": _one_of(ERROR_KINDS), "error_status": _status, "delay_s": _seconds,
    "stream_error_after": lambda v: v is None or _count(v), "stream_error_kind": _one_of(STREAM_ERROR_KINDS),
    "split": _one_of(SPLITS), "hold": lambda v: isinstance(v, bool),
}
_MODEL_OUTPUT_FIELDS: dict[str, Callable[[Any], bool]] = {
    "tool_output": _one_of(TOOL_OUTPUT_KINDS), "tool_output_next": _count, "tool_output_rate": _rate,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one request. ``reject`` is None or a kind: ``throttle`` or one of ERROR_KINDS."""

    reject: str | None = None
    error_status: int = 500
    delay_s: float = 0.0
    stream_error_after: int | None = None
    stream_error_kind: str = "ModelStreamError"
    split: str = "line"
    hold: bool = False


NO_FAULT = Decision()


class FaultBook:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._specs: dict[str, dict[str, Any]] = {}
        self.released = asyncio.Event()  # set while no hold is in force
        self.released.set()

    def apply(self, spec: dict[str, Any]) -> None:
        """Merge a spec; raises ValueError naming the bad field so the control API can answer 400."""
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise ValueError("'endpoint' (an endpoint name or \"*\") is required")
        fields = {k: v for k, v in spec.items() if k != "endpoint"}
        for key, value in fields.items():
            check = _FIELDS.get(key) or _MODEL_OUTPUT_FIELDS.get(key)
            if check is None:
                raise ValueError(f"unknown fault field {key!r}; known: {sorted([*_FIELDS, *_MODEL_OUTPUT_FIELDS])}")
            if not check(value):
                raise ValueError(f"invalid value for {key!r}: {value!r}")
        self._specs.setdefault(endpoint, {}).update(fields)
        self._sync_hold()

    def clear(self) -> None:
        self._specs.clear()
        self._sync_hold()

    def _sync_hold(self) -> None:
        if any(spec.get("hold") for spec in self._specs.values()):
            self.released.clear()
        else:
            self.released.set()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: dict(spec) for name, spec in self._specs.items()}

    def decide(self, endpoint: str) -> Decision:
        if not self._specs:
            return NO_FAULT  # the benchmark path: no lookups, no PRNG draws
        layers = [s for s in (self._specs.get(endpoint), self._specs.get("*")) if s]
        if not layers:
            return NO_FAULT

        def get(key: str, default: Any) -> Any:
            return next((layer[key] for layer in layers if key in layer), default)

        reject = None
        if self._take(layers, "throttle_next") or self._draw(get("throttle_rate", 0.0)):
            reject = "throttle"
        elif self._take(layers, "error_next") or self._draw(get("error_rate", 0.0)):
            reject = get("error_kind", "model")
        return Decision(reject, get("error_status", 500), get("delay_s", 0.0), get("stream_error_after", None),
                        get("stream_error_kind", "ModelStreamError"), get("split", "line"), get("hold", False))

    def take_tool_output(self, endpoint: str) -> str | None:
        """The fault for one tool-call or JSON answer (consuming ``tool_output_next``), or None.

        Model output faults, for the gateway's emulated tool calling and JSON: ``tool_output`` (``malformed`` |
        ``invalid_json`` | ``wrong_name`` | ``bad_arguments``) bends the next answer that is a tool call or JSON
        produced from a prompt (Meta tool prompts, JSON instructions; grammar-constrained output is never bent).
        With ``tool_output_next`` N only the next N such answers are bent, with ``tool_output_rate`` a share of
        them; with neither, every one until the switches are cleared. Requests that produce no tool call or JSON
        do not use up the counter.
        """
        layers = [s for s in (self._specs.get(endpoint), self._specs.get("*")) if s and "tool_output" in s]
        if not layers:
            return None
        kind = str(layers[0]["tool_output"])
        if self._take(layers, "tool_output_next"):
            return kind
        counted = any("tool_output_next" in layer or "tool_output_rate" in layer for layer in layers)
        rate = next((layer["tool_output_rate"] for layer in layers if "tool_output_rate" in layer), 0.0)
        if self._draw(rate) or not counted:
            return kind
        return None

    @staticmethod
    def _take(layers: list[dict[str, Any]], key: str) -> bool:
        for layer in layers:
            if layer.get(key, 0) > 0:
                layer[key] -= 1
                return True
        return False

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate
