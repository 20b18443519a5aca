"""The config file: contract shape, ${VAR} expansion, and every problem reported as (file, key, why)."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest

from service import adapters
from service.canonical import SamplingParams
from service.config.model import (
    DEFAULT_MAX_NEW_TOKENS,
    Config,
    ConfigError,
    ParamDefaults,
    Problem,
    expand_env,
    key_path,
    load_config,
    parse_config,
)

# Passed explicitly: the adapter modules are developed separately from the config layer.
SCHEMAS = ("tgi", "lmi", "neuron", "jumpstart", "text2text", "openai")

BASE: dict[str, Any] = {
    "aws": {"region": "us-east-1"},
    "endpoints": {
        "llama3-8b-g5": {"endpoint_name": "my-llama3-8b", "schema": "tgi", "instance_type": "ml.g5.2xlarge"},
        "llama3-8b-inf2": {"endpoint_name": "my-llama3-8b-inf2", "schema": "neuron",
                           "instance_type": "ml.inf2.24xlarge", "context_length": 4096},
    },
    "models": {
        "llama3-8b": {"targets": [{"endpoint": "llama3-8b-g5", "weight": 3}, {"endpoint": "llama3-8b-inf2"}]},
    },
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "JG_TEST_VAR", "JG_EMPTY"):
        monkeypatch.delenv(name, raising=False)


def data(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes applied, e.g. data(**{"aws.region": None})."""
    out = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return out


def parse(raw: Any) -> Config:
    return parse_config(raw, source="cfg.yaml", schemas=SCHEMAS)


def problems(raw: Any) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return info.value.problems


def only_problem(raw: Any) -> Problem:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jumpgate.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- valid configs ------------------------------------------------------------------------------------

def test_minimal_config_resolves_defaults() -> None:
    config = parse(BASE)
    ep = config.endpoints["llama3-8b-g5"]
    assert (ep.schema_, ep.instance_count, ep.max_concurrency, ep.timeout_s) == ("tgi", 1, 32, 70)
    assert ep.price_per_hour is None and ep.context_length is None and ep.tokenizer is None
    assert config.aws.runtime_url == "https://runtime.sagemaker.us-east-1.amazonaws.com"
    assert config.aws.credentials is None
    model = config.models["llama3-8b"]
    assert [(t.endpoint, t.weight) for t in model.targets] == [("llama3-8b-g5", 3), ("llama3-8b-inf2", 1)]
    assert model.unsupported_params == "reject"
    assert model.defaults.to_sampling() == SamplingParams()
    assert DEFAULT_MAX_NEW_TOKENS == 256


def test_models_are_frozen() -> None:
    config = parse(BASE)
    with pytest.raises(pydantic.ValidationError):
        config.endpoints["llama3-8b-g5"].instance_count = 2  # type: ignore[misc]


def test_full_endpoint_and_model(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        aws:
          region: eu-west-1
          runtime_url: http://127.0.0.1:8081/
          credentials: {access_key_id: AKIDEXAMPLE, secret_access_key: s3cret, session_token: tok}
        endpoints:
          ft:
            endpoint_name: my-ft-llama
            schema: lmi
            instance_type: ml.g5.12xlarge
            instance_count: 2
            price_per_hour: 5.5
            max_concurrency: 8
            context_length: 8192
            chat_template: llama3
            prompt_template: "### Instruction:\\n{instruction}\\n\\n### Input:\\n{context}\\n\\n### Response:\\n"
            custom_attributes: accept_eula=true
            target_variant: AllTraffic
            inference_component: ic-1
            timeout_s: 30.5
            tokenizer: /models/llama3/tokenizer.json
        models:
          ft:
            targets: [{endpoint: ft}]
            defaults: {max_tokens: 64, temperature: 0.2, top_p: 0.9, top_k: 40, stop: ["###"], num_beams: 1,
                       seed: 7, repetition_penalty: 1.1, presence_penalty: -0.5, frequency_penalty: 0.5,
                       no_repeat_ngram_size: 3, do_sample: true}
            unsupported_params: drop
        """)
    config = load_config(path, schemas=SCHEMAS)
    assert config.aws.runtime_url == "http://127.0.0.1:8081"
    assert config.aws.credentials is not None and config.aws.credentials.session_token == "tok"
    assert "s3cret" not in repr(config.aws)
    ep = config.endpoints["ft"]
    assert (ep.instance_count, ep.price_per_hour, ep.timeout_s, ep.inference_component) == (2, 5.5, 30.5, "ic-1")
    assert config.models["ft"].defaults.to_sampling() == SamplingParams(
        max_new_tokens=64, temperature=0.2, top_p=0.9, top_k=40, stop=("###",), num_beams=1, seed=7,
        repetition_penalty=1.1, presence_penalty=-0.5, frequency_penalty=0.5, no_repeat_ngram_size=3,
        do_sample=True)
    assert config.models["ft"].unsupported_params == "drop"


@pytest.mark.parametrize(("env", "region"), [
    ({"AWS_REGION": "eu-central-1"}, "eu-central-1"),
    ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
    ({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "ap-south-1"}, "us-west-2"),
])
def test_region_from_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], region: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for raw in (data(**{"aws.region": None}), {k: v for k, v in BASE.items() if k != "aws"}):
        config = parse(raw)
        assert config.aws.region == region
        assert config.aws.runtime_url == f"https://runtime.sagemaker.{region}.amazonaws.com"


def test_config_region_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert parse(BASE).aws.region == "us-east-1"


def test_no_region_anywhere_is_a_problem() -> None:
    problem = only_problem(data(**{"aws.region": None}))
    assert problem.key == "aws.region"
    assert "set aws.region" in problem.why


def test_param_defaults_alias_and_sampling() -> None:
    assert ParamDefaults.model_validate({"max_tokens": 5}).to_sampling() == SamplingParams(max_new_tokens=5)
    assert ParamDefaults.model_validate({"max_new_tokens": 6}).max_new_tokens == 6
    assert ParamDefaults.model_validate({"stop": ["a", "b"]}).to_sampling().stop == ("a", "b")


def test_schemas_default_to_the_adapter_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters, "all_schema_names", lambda: ("tgi",))
    assert parse_config(data(**{"models.llama3-8b.targets": [{"endpoint": "llama3-8b-g5"}],
                                "endpoints.llama3-8b-inf2.schema": "tgi"}), source="x").endpoints
    with pytest.raises(ConfigError, match="valid schemas: tgi"):
        parse_config(BASE, source="x")


# --- the acceptance cases -----------------------------------------------------------------------------

ACCEPTANCE = {
    "unknown schema": ({"endpoints.llama3-8b-g5.schema": "tgx"},
                       "endpoints.llama3-8b-g5.schema",
                       "unknown schema 'tgx'; valid schemas: jumpstart, lmi, neuron, openai, text2text, tgi"),
    "missing endpoint": ({"models.llama3-8b.targets.1.endpoint": "nope"},
                         "models.llama3-8b.targets[1].endpoint",
                         "no endpoint 'nope' is defined; known endpoints: llama3-8b-g5, llama3-8b-inf2"),
    "negative weight": ({"models.llama3-8b.targets.0.weight": -1},
                        "models.llama3-8b.targets[0].weight", "greater than or equal to 0; got -1"),
}


@pytest.mark.parametrize("case", ACCEPTANCE, ids=list(ACCEPTANCE))
def test_acceptance_case_alone(case: str) -> None:
    changes, key, why = ACCEPTANCE[case]
    problem = only_problem(data(**changes))
    assert (problem.file, problem.key) == ("cfg.yaml", key)
    assert why in problem.why


def test_missing_endpoint_name_alone() -> None:
    raw = data()
    del raw["endpoints"]["llama3-8b-g5"]["endpoint_name"]
    assert only_problem(raw) == Problem("cfg.yaml", "endpoints.llama3-8b-g5.endpoint_name", "required")


def test_all_four_acceptance_problems_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        aws: {region: us-east-1}
        endpoints:
          llama3-8b-g5: {endpoint_name: my-llama3-8b, schema: tgx, instance_type: ml.g5.2xlarge}
          llama3-8b-inf2: {schema: neuron, instance_type: ml.inf2.24xlarge}
        models:
          llama3-8b:
            targets:
              - {endpoint: llama3-8b-g5, weight: -2}
              - {endpoint: llama3-8b-gone}
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path, schemas=SCHEMAS)
    found = {p.key: p for p in info.value.problems}
    assert set(found) == {"endpoints.llama3-8b-g5.schema", "endpoints.llama3-8b-inf2.endpoint_name",
                          "models.llama3-8b.targets[0].weight", "models.llama3-8b.targets[1].endpoint"}
    assert all(p.file == str(path) for p in found.values())
    assert "valid schemas: jumpstart, lmi, neuron, openai, text2text, tgi" in found["endpoints.llama3-8b-g5.schema"].why
    assert found["endpoints.llama3-8b-inf2.endpoint_name"].why == "required"
    assert "got -2" in found["models.llama3-8b.targets[0].weight"].why
    assert "known endpoints: llama3-8b-g5, llama3-8b-inf2" in found["models.llama3-8b.targets[1].endpoint"].why
    # str() lists every problem on its own line as file: key: why
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert f"{path}: endpoints.llama3-8b-inf2.endpoint_name: required" in lines


# --- field rules --------------------------------------------------------------------------------------

EP = "endpoints.llama3-8b-g5"
FIELD_PROBLEMS = [
    ({f"{EP}.endpoint_name": "x" * 64}, f"{EP}.endpoint_name", "not a valid SageMaker name"),
    ({f"{EP}.endpoint_name": "bad_name"}, f"{EP}.endpoint_name", "not a valid SageMaker name"),
    ({f"{EP}.endpoint_name": "trailing-"}, f"{EP}.endpoint_name", "not a valid SageMaker name"),
    ({f"{EP}.endpoint_name": ""}, f"{EP}.endpoint_name", "not a valid SageMaker name"),
    ({f"{EP}.target_variant": "a" * 64}, f"{EP}.target_variant", "not a valid SageMaker name"),
    ({f"{EP}.inference_component": "-ic"}, f"{EP}.inference_component", "inference component name"),
    ({f"{EP}.inference_component": "i" * 64}, f"{EP}.inference_component", "inference component name"),
    ({f"{EP}.instance_type": "g5.2xlarge"}, f"{EP}.instance_type", "such as ml.g5.2xlarge"),
    ({f"{EP}.instance_count": 0}, f"{EP}.instance_count", "greater than or equal to 1"),
    ({f"{EP}.price_per_hour": -0.5}, f"{EP}.price_per_hour", "greater than or equal to 0"),
    ({f"{EP}.max_concurrency": 0}, f"{EP}.max_concurrency", "greater than or equal to 1"),
    ({f"{EP}.context_length": 0}, f"{EP}.context_length", "greater than or equal to 1"),
    ({f"{EP}.timeout_s": 0}, f"{EP}.timeout_s", "greater than 0"),
    ({f"{EP}.chat_template": "chatml"}, f"{EP}.chat_template", "known templates: llama2, llama3, plain"),
    ({f"{EP}.prompt_template": "Answer: {question}"}, f"{EP}.prompt_template", "unknown placeholder {question}"),
    ({f"{EP}.prompt_template": "no slot"}, f"{EP}.prompt_template", "must contain {instruction}"),
    ({f"{EP}.custom_attributes": "accept_eula=tr\u00fce"}, f"{EP}.custom_attributes", "US-ASCII"),
    ({f"{EP}.custom_attributes": "a" * 1025}, f"{EP}.custom_attributes", "at most 1024"),
    ({"aws.region": "Virginia"}, "aws.region", "not an AWS region name"),
    ({"aws.runtime_url": "127.0.0.1:8081"}, "aws.runtime_url", "http:// or https://"),
    ({"models.llama3-8b.targets": []}, "models.llama3-8b.targets", "at least 1 item"),
    ({"models.llama3-8b.targets": [{"endpoint": "llama3-8b-g5", "weight": 0}]}, "models.llama3-8b.targets",
     "weight > 0"),
    ({"models.llama3-8b.unsupported_params": "ignore"}, "models.llama3-8b.unsupported_params",
     "'reject' or 'drop'"),
    ({"models.llama3-8b.defaults": {"temperature": 2.5}}, "models.llama3-8b.defaults.temperature", "less than"),
    ({"models.llama3-8b.defaults": {"top_p": 0}}, "models.llama3-8b.defaults.top_p", "greater than 0"),
    ({"models.llama3-8b.defaults": {"presence_penalty": -3}}, "models.llama3-8b.defaults.presence_penalty",
     "greater than or equal to -2"),
    ({"models.llama3-8b.defaults": {"max_tokens": 0}}, "models.llama3-8b.defaults.max_tokens",
     "greater than or equal to 1"),
    ({"models.llama3-8b.defaults": {"max_tokens": 5, "max_new_tokens": 6}}, "models.llama3-8b.defaults",
     "not both"),
    ({"models": {}}, "models", "at least 1 item"),
]


@pytest.mark.parametrize(("changes", "key", "why"), FIELD_PROBLEMS)
def test_field_rules(changes: dict[str, Any], key: str, why: str) -> None:
    problem = only_problem(data(**changes))
    assert problem.key == key
    assert why in problem.why


@pytest.mark.parametrize(("path", "key"), [
    ("colour", "colour"),
    ("aws.profile", "aws.profile"),
    (f"{EP}.scheme", f"{EP}.scheme"),
    ("models.llama3-8b.fallback", "models.llama3-8b.fallback"),
    ("models.llama3-8b.targets.0.priority", "models.llama3-8b.targets[0].priority"),
    ("models.llama3-8b.defaults", None),
])
def test_unknown_keys_are_rejected(path: str, key: str | None) -> None:
    value: Any = {"n": 2} if key is None else "x"
    problem = only_problem(data(**{path: value}))
    assert problem.key == (key or "models.llama3-8b.defaults.n")
    assert problem.why.startswith("unknown key; valid keys here:")


def test_unknown_endpoint_key_lists_valid_keys() -> None:
    why = only_problem(data(**{f"{EP}.scheme": "tgi"})).why
    assert "schema" in why and "endpoint_name" in why and "price_per_hour" in why


def test_instance_type_without_price_needs_an_override() -> None:
    problem = only_problem(data(**{f"{EP}.instance_type": "ml.x99.mega"}))
    assert problem.key == f"{EP}.instance_type"
    assert "add price_per_hour" in problem.why
    assert parse(data(**{f"{EP}.instance_type": "ml.x99.mega", f"{EP}.price_per_hour": 2.0}))


def test_config_built_directly_still_gets_cross_checks() -> None:
    raw = data(**{"models.llama3-8b.targets.1.endpoint": "nope"})
    with pytest.raises(pydantic.ValidationError, match="no endpoint 'nope'"):
        Config.model_validate(raw)


# --- ${VAR} expansion ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${JG_TEST_VAR}", {"JG_TEST_VAR": "abc"}, "abc"),
    ("pre-${JG_TEST_VAR}-post", {"JG_TEST_VAR": "abc"}, "pre-abc-post"),
    ("${JG_TEST_VAR:-fallback}", {}, "fallback"),
    ("${JG_TEST_VAR:-fallback}", {"JG_TEST_VAR": "set"}, "set"),
    ("${JG_TEST_VAR:-fallback}", {"JG_TEST_VAR": ""}, "fallback"),
    ("${JG_TEST_VAR:-}", {}, ""),
    ("${JG_TEST_VAR}", {"JG_TEST_VAR": ""}, ""),
    ("$${JG_TEST_VAR}", {"JG_TEST_VAR": "abc"}, "${JG_TEST_VAR}"),
    ("cost $5", {}, "cost $5"),
])
def test_expand_env_strings(text: str, env: dict[str, str], expected: str) -> None:
    assert expand_env({"a": [text]}, env, "f") == ({"a": [expected]}, [])


def test_expand_env_unset_variable_names_the_key() -> None:
    expanded, found = expand_env({"models": {"m": {"targets": [{"endpoint": "${NOPE}"}]}}, "n": 3}, {}, "f")
    assert expanded["n"] == 3
    assert found == [Problem("f", "models.m.targets[0].endpoint",
                             "environment variable NOPE is not set (set it, or write ${NOPE:-default})")]


def test_expansion_happens_before_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JG_TEST_VAR", "2")
    config = parse(data(**{f"{EP}.instance_count": "${JG_TEST_VAR}", f"{EP}.endpoint_name": "ep-${JG_TEST_VAR}",
                           "aws.runtime_url": "${JG_URL:-http://localhost:9000}"}))
    assert config.endpoints["llama3-8b-g5"].instance_count == 2
    assert config.endpoints["llama3-8b-g5"].endpoint_name == "ep-2"
    assert config.aws.runtime_url == "http://localhost:9000"


def test_unset_variable_is_one_problem_naming_the_key() -> None:
    problem = only_problem(data(**{f"{EP}.instance_count": "${JG_TEST_VAR}"}))
    assert problem.key == f"{EP}.instance_count"
    assert "JG_TEST_VAR is not set" in problem.why


# --- files --------------------------------------------------------------------------------------------

def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "aws:\n  region: us-east-1\nendpoints: [\n  a: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, schemas=SCHEMAS)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert problem.key.startswith("line ")
    assert "YAML syntax error" in problem.why


def test_duplicate_yaml_key_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "aws: {region: us-east-1}\nendpoints: {}\nmodels: {}\naws: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, schemas=SCHEMAS)
    [problem] = info.value.problems
    assert problem.key == "line 4, column 1"
    assert "duplicate key 'aws'" in problem.why


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml", schemas=SCHEMAS)
    assert info.value.problems == [Problem(str(tmp_path / "absent.yaml"), "(file)", "no such file")]


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), schemas=SCHEMAS)
    assert [p.key for p in info.value.problems] == ["(top level)"]


def test_empty_sections() -> None:
    found = problems({"aws": {"region": "us-east-1"}})
    assert {(p.key, p.why) for p in found} == {("endpoints", "required"), ("models", "required")}


@pytest.mark.parametrize(("loc", "expected"), [
    ((), "(top level)"),
    (("aws", "region"), "aws.region"),
    (("models", "m", "targets", 0, "weight"), "models.m.targets[0].weight"),
])
def test_key_path(loc: tuple[str | int, ...], expected: str) -> None:
    assert key_path(loc) == expected


def test_problem_and_error_text() -> None:
    a, b = Problem("f.yaml", "aws.region", "required"), Problem("f.yaml", "models", "required")
    assert str(a) == "f.yaml: aws.region: required"
    error = ConfigError([a, b])
    assert str(error) == "f.yaml: aws.region: required\nf.yaml: models: required"
    assert error.problems == [a, b]
