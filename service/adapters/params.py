"""Parameter rules as data, and the one normalizer that applies them.

Every adapter declares a `Rules` table: for each canonical parameter, whether the endpoint takes it
natively (and under which wire name and range), whether the gateway emulates it (stop strings cut by
the gateway, n > 1 by fan-out), whether it is unsupported, or best effort (seed: a hint everywhere).
`normalize` turns validated canonical `SamplingParams` into the wire values of one endpoint:

- a neutral value (temperature 1 when sampling, top_p 1, top_k 0, n 1, penalties 0, beams 1) is
  always accepted and never sent, so the containers' own strict ranges (TGI: top_p < 1) never bite;
- greedy (temperature 0 or do_sample false) is expressed the way the schema wants (`greedy_wire`)
  and the sampling-only parameters are left out;
- an unsupported non-neutral value is a 400 naming the parameter and the endpoint, or is dropped
  and reported when the model's policy is `drop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from service.canonical import SamplingParams
from service.errors import InvalidParam, UnsupportedParam, echo

Policy = Literal["reject", "drop"]


class Support(Enum):
    NATIVE = "native"            # sent under `wire`, checked against `range`
    EMULATED = "emulated"        # done by the gateway (stop: cut the output; n: fan-out)
    UNSUPPORTED = "unsupported"  # non-neutral values rejected (or dropped under policy `drop`)
    BEST_EFFORT = "best_effort"  # a hint the endpoint cannot honour: never sent, reported as dropped


@dataclass(frozen=True, slots=True)
class Range:
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}")
        return " and ".join(parts)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True, slots=True)
class ParamRule:
    support: Support
    wire: str | None = None
    range: Range | None = None
    sampling_only: bool = False   # meaningless when greedy: not sent then
    max_items: int | None = None  # for list parameters (stop)
    stream_ok: bool = True        # NATIVE only for non-streaming requests


Rules = Mapping[str, ParamRule]

#: The canonical parameters every adapter must declare (the contract suite checks completeness).
CANONICAL_PARAMS: tuple[str, ...] = (
    "max_new_tokens", "temperature", "top_p", "top_k", "stop", "num_beams", "n", "seed",
    "repetition_penalty", "presence_penalty", "frequency_penalty", "no_repeat_ngram_size", "do_sample",
)

# Values that mean "this feature is off"; shared by every schema.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "top_p": (1, 1.0), "top_k": (0, -1), "num_beams": (1,), "n": (1,),
    "repetition_penalty": (1, 1.0), "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0),
    "no_repeat_ngram_size": (0,),
}


def native(wire: str, rng: Range | None = None, **kw: Any) -> ParamRule:
    return ParamRule(Support.NATIVE, wire=wire, range=rng, **kw)


EMULATED = ParamRule(Support.EMULATED)
UNSUPPORTED = ParamRule(Support.UNSUPPORTED)
#: unsupported, but only matters when sampling: a greedy request may carry it (it would change nothing)
UNSUPPORTED_SAMPLING = ParamRule(Support.UNSUPPORTED, sampling_only=True)
BEST_EFFORT = ParamRule(Support.BEST_EFFORT)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a schema says greedy versus sampling (merged into the wire parameters)."""

    greedy: Mapping[str, Any]
    sample: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WireParams:
    values: dict[str, Any]
    dropped: tuple[str, ...] = ()
    emulated_stop: tuple[str, ...] = ()
    fan_out: int = 1


@dataclass(frozen=True, slots=True)
class Subject:
    """Who the parameters go to, for error messages."""

    endpoint: str
    schema: str
    model: str


def normalize(params: SamplingParams, rules: Rules, sampling: Sampling, subject: Subject, *,
              policy: Policy, stream: bool) -> WireParams:
    greedy = params.greedy
    _check_sampling_consistency(params)
    values: dict[str, Any] = dict(sampling.greedy if greedy else sampling.sample)
    dropped: list[str] = []
    emulated_stop: tuple[str, ...] = ()
    fan_out = 1
    for name in CANONICAL_PARAMS:
        if name == "do_sample":
            continue  # expressed through `sampling`
        value = getattr(params, name)
        if _is_absent(name, value) or (greedy and rules[name].sampling_only):
            continue
        rule = rules[name]
        support = rule.support if (rule.stream_ok or not stream) else Support.UNSUPPORTED
        if support is Support.NATIVE:
            values[rule.wire or name] = _checked(name, value, rule, subject)
        elif support is Support.EMULATED:
            if name == "stop":
                emulated_stop = tuple(value)
            else:
                fan_out = int(value)
        elif support is Support.BEST_EFFORT:
            dropped.append(name)
        else:
            _unsupported(name, value, subject, policy, stream=not rule.stream_ok and stream)
            dropped.append(name)
    return WireParams(values, tuple(dropped), emulated_stop, fan_out)


def _is_absent(name: str, value: Any) -> bool:
    if value is None or value == ():
        return True
    if name == "temperature":
        return False  # 0 means greedy and 1 is only neutral while sampling: both are meaningful
    return value in NEUTRAL.get(name, ())


def _check_sampling_consistency(params: SamplingParams) -> None:
    if params.do_sample is True and params.temperature == 0:
        raise InvalidParam(
            "temperature 0 means greedy decoding but do_sample is true: set temperature > 0 to sample, "
            "or do_sample false for greedy", param="temperature")


def _checked(name: str, value: Any, rule: ParamRule, subject: Subject) -> Any:
    if rule.max_items is not None and len(value) > rule.max_items:
        raise InvalidParam(
            f"`{name}` supports at most {rule.max_items} entries on endpoint '{subject.endpoint}' "
            f"(schema {subject.schema}); got {len(value)}: send fewer", param=name)
    if rule.range is not None and isinstance(value, int | float) and not rule.range.contains(value):
        raise InvalidParam(
            f"`{name}` must be {rule.range.describe()} for endpoint '{subject.endpoint}' "
            f"(schema {subject.schema}); got {echo(value)}", param=name)
    return list(value) if isinstance(value, tuple) else value


def _unsupported(name: str, value: Any, subject: Subject, policy: Policy, *, stream: bool) -> None:
    if policy == "drop":
        return
    where = "when streaming " if stream else ""
    raise UnsupportedParam(
        f"parameter `{name}`={echo(value)} is not supported {where}by endpoint '{subject.endpoint}' "
        f"(schema {subject.schema}) of model '{subject.model}': remove it, or set "
        f"`unsupported_params: drop` on the model to have it dropped", param=name)

