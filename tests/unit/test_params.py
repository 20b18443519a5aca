"""Parameter rules, table-driven: every schema x every canonical parameter.

Each row: the outcome of one non-neutral value on one schema under policy `reject`:
  ("wire", name, value)  sent under that wire name
  ("reject",)            400 naming the parameter and the endpoint (dropped under policy `drop`)
  ("emulated",)          done by the gateway (stop cut / n fan-out)
  ("best_effort",)       never sent, reported as dropped, never rejected
  ("sampling", wire)     expressed through the schema's sampling flags
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import adapters
from service.adapters.params import CANONICAL_PARAMS, Subject, WireParams, normalize
from service.canonical import SamplingParams
from service.errors import InvalidParam, UnsupportedParam

SAMPLE = {
    "max_new_tokens": 50, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "stop": ("###",), "num_beams": 4,
    "n": 3, "seed": 42, "repetition_penalty": 1.2, "presence_penalty": 0.5, "frequency_penalty": 0.5,
    "no_repeat_ngram_size": 3, "do_sample": True,
}

W, R, E, B = "wire", "reject", "emulated", "best_effort"
TABLE: dict[str, dict[str, tuple]] = {
    "tgi": {
        "max_new_tokens": (W, "max_new_tokens", 50), "temperature": (W, "temperature", 0.7),
        "top_p": (W, "top_p", 0.9), "top_k": (W, "top_k", 40), "stop": (W, "stop", ["###"]),
        "num_beams": (R,), "n": (E,), "seed": (W, "seed", 42), "repetition_penalty": (W, "repetition_penalty", 1.2),
        "presence_penalty": (R,), "frequency_penalty": (W, "frequency_penalty", 0.5),
        "no_repeat_ngram_size": (R,), "do_sample": (W, "do_sample", True),
    },
    "lmi": {
        "max_new_tokens": (W, "max_new_tokens", 50), "temperature": (W, "temperature", 0.7),
        "top_p": (W, "top_p", 0.9), "top_k": (W, "top_k", 40), "stop": (W, "stop_sequences", ["###"]),
        "num_beams": (W, "num_beams", 4), "n": (W, "n", 3), "seed": (W, "seed", 42),
        "repetition_penalty": (W, "repetition_penalty", 1.2), "presence_penalty": (W, "presence_penalty", 0.5),
        "frequency_penalty": (W, "frequency_penalty", 0.5), "no_repeat_ngram_size": (R,),
        "do_sample": (W, "do_sample", True),
    },
    "neuron": {
        "max_new_tokens": (W, "max_new_tokens", 50), "temperature": (W, "temperature", 0.7),
        "top_p": (W, "top_p", 0.9), "top_k": (W, "top_k", 40), "stop": (E,), "num_beams": (R,), "n": (E,),
        "seed": (W, "seed", 42), "repetition_penalty": (W, "repetition_penalty", 1.2),
        "presence_penalty": (W, "presence_penalty", 0.5), "frequency_penalty": (R,),
        "no_repeat_ngram_size": (R,), "do_sample": (W, "do_sample", True),
    },
    "jumpstart": {
        "max_new_tokens": (W, "max_new_tokens", 50), "temperature": (W, "temperature", 0.7),
        "top_p": (W, "top_p", 0.9), "top_k": (R,), "stop": (E,), "num_beams": (R,), "n": (E,), "seed": (B,),
        "repetition_penalty": (R,), "presence_penalty": (R,), "frequency_penalty": (R,),
        "no_repeat_ngram_size": (R,), "do_sample": ("sampling", {}),
    },
    "text2text": {
        "max_new_tokens": (W, "max_length", 50), "temperature": (W, "temperature", 0.7),
        "top_p": (W, "top_p", 0.9), "top_k": (W, "top_k", 40), "stop": (E,), "num_beams": (W, "num_beams", 4),
        "n": (W, "num_return_sequences", 3), "seed": (W, "seed", 42), "repetition_penalty": (R,),
        "presence_penalty": (R,), "frequency_penalty": (R,), "no_repeat_ngram_size": (W, "no_repeat_ngram_size", 3),
        "do_sample": (W, "do_sample", True),
    },
    "openai": {
        "max_new_tokens": (W, "max_tokens", 50), "temperature": (W, "temperature", 0.7),
        "top_p": (W, "top_p", 0.9), "top_k": (R,), "stop": (W, "stop", ["###"]), "num_beams": (R,), "n": (E,),
        "seed": (W, "seed", 42), "repetition_penalty": (R,), "presence_penalty": (W, "presence_penalty", 0.5),
        "frequency_penalty": (W, "frequency_penalty", 0.5), "no_repeat_ngram_size": (R,), "do_sample": ("sampling", {}),
    },
}

CASES = [(schema, param, outcome) for schema, row in TABLE.items() for param, outcome in row.items()]


def run(schema: str, params: SamplingParams, policy: str = "reject", stream: bool = False) -> WireParams:
    adapter = adapters.get(schema)
    return normalize(params, adapter.rules, adapter.sampling, Subject(f"ep-{schema}", schema, "m"),
                     policy=policy, stream=stream)  # type: ignore[arg-type]


def one(param: str) -> SamplingParams:
    # sampling on, so sampling-only parameters are meaningful
    return replace(SamplingParams(do_sample=True), **{param: SAMPLE[param]})


def test_table_covers_every_schema_and_parameter() -> None:
    assert set(TABLE) == set(adapters.schema_names())
    for row in TABLE.values():
        assert set(row) == set(CANONICAL_PARAMS)


@pytest.mark.parametrize(("schema", "param", "outcome"), CASES, ids=[f"{s}-{p}" for s, p, _ in CASES])
def test_rule(schema: str, param: str, outcome: tuple) -> None:
    kind = outcome[0]
    if kind == R:
        with pytest.raises(UnsupportedParam) as err:
            run(schema, one(param))
        assert err.value.param == param and f"ep-{schema}" in err.value.message
        assert param in run(schema, one(param), policy="drop").dropped
        return
    wire = run(schema, one(param))
    if kind == W:
        assert wire.values[outcome[1]] == outcome[2]
        assert param not in wire.dropped
    elif kind == E:
        assert wire.emulated_stop == ("###",) if param == "stop" else wire.fan_out == 3
        assert not ({"stop", "stop_sequences", "n"} & set(wire.values))
    elif kind == B:
        assert wire.dropped == (param,) and param not in wire.values
    else:
        assert wire.values == outcome[1]


@pytest.mark.parametrize("schema", sorted(TABLE))
def test_neutral_values_are_accepted_silently(schema: str) -> None:
    neutral = SamplingParams(n=1, top_p=1.0, top_k=0, num_beams=1, presence_penalty=0.0, frequency_penalty=0.0,
                             repetition_penalty=1.0, no_repeat_ngram_size=0, temperature=1.0)
    wire = run(schema, neutral)
    assert wire.dropped == () and wire.fan_out == 1
    assert not ({"top_p", "top_k", "num_beams", "n", "presence_penalty", "frequency_penalty",
                 "repetition_penalty", "no_repeat_ngram_size"} & set(wire.values))


GREEDY = {
    "tgi": {"do_sample": False}, "lmi": {"do_sample": False}, "neuron": {"do_sample": False},
    "text2text": {"do_sample": False}, "openai": {"temperature": 0}, "jumpstart": {"temperature": 0.01},
}


@pytest.mark.parametrize("schema", sorted(GREEDY))
def test_temperature_zero_is_greedy(schema: str) -> None:
    wire = run(schema, SamplingParams(temperature=0, top_p=0.5, top_k=10, max_new_tokens=5))
    sent = {k: v for k, v in wire.values.items() if k not in ("max_new_tokens", "max_tokens", "max_length")}
    assert sent == GREEDY[schema]


def test_do_sample_is_always_sent_where_the_schema_has_it() -> None:
    for schema in ("tgi", "lmi", "neuron", "text2text"):
        assert run(schema, SamplingParams()).values["do_sample"] is True
        assert run(schema, SamplingParams(do_sample=False)).values["do_sample"] is False


def test_tgi_accepts_four_stop_sequences_and_rejects_five() -> None:
    assert run("tgi", SamplingParams(stop=("a", "b", "c", "d"))).values["stop"] == ["a", "b", "c", "d"]
    with pytest.raises(InvalidParam, match="at most 4") as err:
        run("tgi", SamplingParams(stop=("a", "b", "c", "d", "e")))
    assert err.value.param == "stop" and "ep-tgi" in err.value.message


def test_tgi_range_names_parameter_endpoint_and_value() -> None:
    with pytest.raises(InvalidParam) as err:
        run("tgi", SamplingParams(top_p=0.0, do_sample=True))
    assert err.value.param == "top_p"
    assert "> 0 and < 1" in err.value.message and "ep-tgi" in err.value.message and "got 0.0" in err.value.message


def test_lmi_n_and_beams_only_without_streaming() -> None:
    assert run("lmi", SamplingParams(n=2, do_sample=True)).values["n"] == 2
    with pytest.raises(UnsupportedParam, match="when streaming"):
        run("lmi", SamplingParams(num_beams=2), stream=True)


def test_do_sample_true_with_temperature_zero_is_contradictory() -> None:
    with pytest.raises(InvalidParam, match="temperature 0 means greedy"):
        run("tgi", SamplingParams(temperature=0, do_sample=True))


def test_drop_policy_lists_every_dropped_parameter() -> None:
    wire = run("tgi", SamplingParams(num_beams=3, presence_penalty=0.4, no_repeat_ngram_size=2), policy="drop")
    assert wire.dropped == ("num_beams", "presence_penalty", "no_repeat_ngram_size")
    assert not ({"num_beams", "presence_penalty", "no_repeat_ngram_size"} & set(wire.values))


canonical_params = st.builds(
    SamplingParams,
    max_new_tokens=st.none() | st.integers(1, 4096),
    temperature=st.none() | st.floats(0, 2),
    top_p=st.none() | st.floats(0, 1),
    top_k=st.none() | st.integers(0, 100),
    stop=st.lists(st.text(min_size=1, max_size=5), max_size=6).map(tuple),
    num_beams=st.none() | st.integers(1, 8),
    n=st.integers(1, 4),
    seed=st.none() | st.integers(0, 2**32),
    repetition_penalty=st.none() | st.floats(0.01, 3),
    presence_penalty=st.none() | st.floats(-2, 2),
    frequency_penalty=st.none() | st.floats(-2, 2),
    no_repeat_ngram_size=st.none() | st.integers(0, 5),
    do_sample=st.none() | st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(params=canonical_params, schema=st.sampled_from(sorted(TABLE)), policy=st.sampled_from(["reject", "drop"]))
def test_normalizer_never_sends_a_value_outside_the_wire_range(params: SamplingParams, schema: str,
                                                               policy: str) -> None:
    adapter = adapters.get(schema)
    try:
        wire = run(schema, params, policy=policy)
    except (InvalidParam, UnsupportedParam):
        return
    for name, rule in adapter.rules.items():
        key = rule.wire or name
        if key in wire.values and rule.range is not None and not isinstance(wire.values[key], bool):
            assert rule.range.contains(wire.values[key]), (name, wire.values)
    if schema == "tgi":
        assert wire.values.get("temperature", 1) > 0
        assert wire.values.get("top_p", 0.5) < 1
        assert isinstance(wire.values["do_sample"], bool)
