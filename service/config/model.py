"""The config file (DESIGN.md, "Config file"): pydantic models, `${VAR}` expansion, and `load_config`.

`parse_config` expands `${VAR}` / `${VAR:-default}` in every string value, validates with pydantic (unknown
keys are errors), then runs the whole-file cross checks (targets name existing endpoints, every instance type
has a price) even when pydantic found problems, so one run reports every problem as (file, key, why).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from service.canonical import SamplingParams
from service.config.aws import (
    CredentialsConfig,
    ServerlessConfig,
    check_region,
    runtime_url_for,
    serverless_defaults,
)
from service.config.container import ContainerConfig
from service.config.images import ImagesConfig
from service.config.kinds import mixed_models
from service.config.problems import ConfigError, Problem, expand_env, key_path
from service.config.resilience import ResilienceConfig, ShadowConfig, ShadowLogConfig
from service.config.server import CorsConfig, MetricsConfig, ServerConfig
from service.config.tenancy import AuthConfig, InputLimits, LoggingConfig, RateLimitConfig
from service.config.tracing import TracingConfig
from service.prompts import templates
from service.prompts.tools import TOOL_FORMATS
from service.telemetry import cost

#: Applied by the gateway when neither the client nor the model's defaults give max_new_tokens: the
#: containers' own defaults (20 in TGI, 30 in LMI) cut answers off mid-sentence and surprise users.
DEFAULT_MAX_NEW_TOKENS = 256

_FROZEN = ConfigDict(extra="forbid", frozen=True)


# --- field checks -----------------------------------------------------------------------------------
def _matching(pattern: str, why: str) -> pydantic.AfterValidator:
    """A check that the whole value matches `pattern`; `why` (with {value}) says what is expected."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(why.format(value=repr(value)))
        return value

    return pydantic.AfterValidator(check)


_NAME_RULE = "at most 63 letters, digits and hyphens, starting and ending with a letter or digit"
_SageMakerName = Annotated[str, _matching(r"(?=.{1,63}$)[a-zA-Z0-9](-*[a-zA-Z0-9])*",
                                          "{value} is not a valid SageMaker name: " + _NAME_RULE)]
_ComponentName = Annotated[str, _matching(r"(?=.{1,63}$)[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?",
                                          "{value} is not a valid inference component name: " + _NAME_RULE)]
_InstanceType = Annotated[str, _matching(r"ml\.[a-z0-9-]+\.[a-z0-9-]+",
                                         "{value} is not a SageMaker instance type such as ml.g5.2xlarge")]
# Sent as an HTTP header: SageMaker takes at most 1024 visible US-ASCII characters.
_CustomAttributes = Annotated[str, _matching(r"[\x20-\x7e]{0,1024}",
                                             "must be at most 1024 visible US-ASCII characters")]
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


class AwsConfig(BaseModel):
    """`region` and `runtime_url` are always set after validation (resolved from env / region). `credentials`
    (service/config/aws.py) is every endpoint's default credential source; without it, the default chain."""

    model_config = _FROZEN
    region: str = Field("", validate_default=True)
    runtime_url: str = Field("", validate_default=True)
    credentials: CredentialsConfig | None = None

    @field_validator("region", mode="before")
    @classmethod
    def _region_from_env(cls, value: Any) -> Any:
        if value in (None, ""):
            value = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not value:
            raise ValueError("no region: set aws.region, or AWS_REGION / AWS_DEFAULT_REGION in the environment")
        return _region(value)

    @field_validator("runtime_url")
    @classmethod
    def _default_runtime_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            region = info.data.get("region")
            return runtime_url_for(region) if region else ""
        return _url(value)


def _region(value: Any) -> Any:
    if isinstance(value, str) and not _REGION.fullmatch(value):
        raise ValueError(f"{value!r} is not an AWS region name such as us-east-1")
    return check_region(value) if isinstance(value, str) else value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


class EndpointConfig(BaseModel):
    model_config = _FROZEN
    endpoint_name: _SageMakerName
    schema_: str = Field(alias="schema")
    instance_type: _InstanceType | None = None  # required unless the endpoint is serverless
    instance_count: int = Field(1, ge=1)
    price_per_hour: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_concurrency: int = Field(32, ge=1)
    context_length: int | None = Field(None, ge=1)
    chat_template: str | None = None
    prompt_template: str | None = None
    custom_attributes: _CustomAttributes | None = None
    target_variant: _SageMakerName | None = None
    inference_component: _ComponentName | None = None
    timeout_s: float = Field(70, gt=0, allow_inf_nan=False)
    max_wait_s: float = Field(1.0, ge=0, allow_inf_nan=False)
    #: path to the model's tokenizer.json, for exact local token counts
    tokenizer: str | None = None
    #: what the container behind the endpoint can do (service/config/container.py)
    container: ContainerConfig = ContainerConfig()
    #: the model's tool-calling prompt format, for tools and JSON output through the prompt
    #: (service/prompts/tools.py); default: llama3_json for chat_template llama3, else none
    tool_format: str | None = None
    #: where the endpoint lives and how it is reached (service/config/aws.py); None: the aws section's
    region: str | None = None
    runtime_url: str | None = None
    credentials: CredentialsConfig | None = None
    serverless: ServerlessConfig | None = None
    scale_from_zero_wait_s: float = Field(0.0, ge=0, le=3600, allow_inf_nan=False)

    _serverless_defaults = model_validator(mode="before")(serverless_defaults)

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        return None if value is None else _region(value)

    @field_validator("runtime_url")
    @classmethod
    def _runtime_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @model_validator(mode="after")
    def _instance_or_serverless(self, info: ValidationInfo) -> EndpointConfig:
        # parse_config reports this from the raw data with its key; this covers other callers.
        if not (info.context or {}).get("cross_checked") and self.instance_type is None and self.serverless is None:
            raise ValueError(_NO_INSTANCE)
        return self

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, value: str, info: ValidationInfo) -> str:
        # The names come from the adapter registry via the validation context; a model built without
        # one (tests, tools) skips this check rather than importing every adapter.
        schemas = (info.context or {}).get("schemas")
        if schemas is not None and value not in schemas:
            raise ValueError(f"unknown schema {value!r}; valid schemas: {', '.join(sorted(schemas))}")
        return value

    @field_validator("chat_template")
    @classmethod
    def _known_chat_template(cls, value: str | None) -> str | None:
        if value is not None and value not in templates.CHAT_TEMPLATES:
            raise ValueError(f"unknown chat template {value!r}; known templates: "
                             f"{', '.join(sorted(templates.CHAT_TEMPLATES))}")
        return value

    @field_validator("tool_format")
    @classmethod
    def _known_tool_format(cls, value: str | None) -> str | None:
        if value is not None and value != "none" and value not in TOOL_FORMATS:
            raise ValueError(f"unknown tool format {value!r}; known formats: none, {', '.join(sorted(TOOL_FORMATS))}")
        return value

    @field_validator("prompt_template")
    @classmethod
    def _prompt_template(cls, value: str | None) -> str | None:
        if value is not None:
            templates.check_prompt_template(value)
        return value


class TargetConfig(BaseModel):
    model_config = _FROZEN
    endpoint: str
    weight: float = Field(1, ge=0, allow_inf_nan=False)


_MAX_TOKENS_ALIASES = pydantic.AliasChoices("max_new_tokens", "max_tokens")  # the OpenAI spelling too


class ParamDefaults(BaseModel):
    """A model's default canonical parameters, applied to whatever the client leaves out."""

    model_config = _FROZEN
    max_new_tokens: int | None = Field(None, ge=1, validation_alias=_MAX_TOKENS_ALIASES)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stop: list[str] | None = None
    num_beams: int | None = Field(None, ge=1)
    seed: int | None = None
    repetition_penalty: float | None = Field(None, gt=0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    no_repeat_ngram_size: int | None = Field(None, ge=0)
    do_sample: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        # Both spellings present would otherwise silently keep one of them.
        if isinstance(data, Mapping) and "max_tokens" in data and "max_new_tokens" in data:
            raise ValueError("give max_new_tokens or its alias max_tokens, not both")
        return data

    def to_sampling(self) -> SamplingParams:
        values = self.model_dump(exclude={"stop"})
        return SamplingParams(**values, stop=tuple(self.stop or ()))


class ModelConfig(BaseModel):
    model_config = _FROZEN
    targets: list[TargetConfig] = Field(min_length=1)
    defaults: ParamDefaults = ParamDefaults()
    unsupported_params: Literal["reject", "drop"] = "reject"
    shadow: ShadowConfig | None = None
    #: emulated tool calls and JSON output that fail validation are asked for again this many times, with the
    #: reason as feedback, before the request fails with a 502 invalid_model_output
    invalid_output_retries: int = Field(1, ge=0, le=3)

    @field_validator("targets")
    @classmethod
    def _some_weight(cls, value: list[TargetConfig]) -> list[TargetConfig]:
        if not any(t.weight > 0 for t in value):
            raise ValueError("every target has weight 0, so no request could be routed: give one a weight > 0")
        return value


class Config(BaseModel):
    model_config = _FROZEN
    aws: AwsConfig
    endpoints: dict[str, EndpointConfig] = Field(min_length=1)
    models: dict[str, ModelConfig] = Field(min_length=1)
    resilience: ResilienceConfig = ResilienceConfig()
    shadow_log: ShadowLogConfig | None = None
    auth: AuthConfig | None = None
    rate_limits: RateLimitConfig = RateLimitConfig()
    input_limits: InputLimits = InputLimits()
    logging: LoggingConfig = LoggingConfig()
    server: ServerConfig = ServerConfig()
    cors: CorsConfig = CorsConfig()
    metrics: MetricsConfig = MetricsConfig()
    images: ImagesConfig = ImagesConfig()
    tracing: TracingConfig | None = None

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Config:
        # parse_config runs these on the raw data (to report them with field errors); this covers other callers.
        problems = [] if (info.context or {}).get("cross_checked") else list(
            _cross_problems(self.model_dump(by_alias=True), "<config>"))
        if problems:
            raise ValueError("; ".join(f"{p.key}: {p.why}" for p in problems))
        return self


# --- cross checks (on plain data, so they run even when field validation failed) --------------------
def _cross_problems(data: Mapping[str, Any], source: str) -> Iterator[Problem]:
    endpoints = data["endpoints"] if isinstance(data.get("endpoints"), Mapping) else {}
    yield from _target_problems(data.get("models"), endpoints, source)
    for eid, ep in endpoints.items():
        yield from _price_problems(eid, ep, source)


def _target_problems(models: Any, endpoints: Mapping[str, Any], source: str) -> Iterator[Problem]:
    if not isinstance(models, Mapping):
        return
    known = ", ".join(sorted(map(str, endpoints))) or "(none)"
    for name, model in models.items():
        targets = model.get("targets") if isinstance(model, Mapping) else None
        for i, target in enumerate(targets if isinstance(targets, list) else []):
            ref = target.get("endpoint") if isinstance(target, Mapping) else None
            if isinstance(ref, str) and ref not in endpoints:
                yield Problem(source, f"models.{name}.targets[{i}].endpoint",
                              f"no endpoint {ref!r} is defined; known endpoints: {known}")
        shadow = model.get("shadow") if isinstance(model, Mapping) else None
        ref = shadow.get("endpoint") if isinstance(shadow, Mapping) else None
        if isinstance(ref, str) and ref not in endpoints:
            yield Problem(source, f"models.{name}.shadow.endpoint",
                          f"no endpoint {ref!r} is defined; known endpoints: {known}")


_NO_INSTANCE = "required: the instance type the endpoint runs on (or serverless: {memory_mb: ...})"


def _price_problems(eid: str, ep: Any, source: str) -> Iterator[Problem]:
    if not isinstance(ep, Mapping) or ep.get("price_per_hour") is not None or ep.get("serverless") is not None:
        return
    if "instance_type" not in ep:
        yield Problem(source, f"endpoints.{eid}.instance_type", _NO_INSTANCE)
        return
    instance_type = ep.get("instance_type")
    if isinstance(instance_type, str) and cost.price_per_hour(instance_type, None) is None:
        yield Problem(source, f"endpoints.{eid}.instance_type", f"no built-in price for {instance_type!r}: "
                      f"add price_per_hour (USD per instance-hour) to this endpoint")


# --- pydantic errors → problems ---------------------------------------------------------------------
def _why(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        known = _known_keys(tuple(error["loc"][:-1]))
        return "unknown key" + (f"; valid keys here: {', '.join(known)}" if known else "")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    got = error.get("input")
    suffix = f"; got {got!r}" if isinstance(got, str | int | float | bool) else ""
    return f"{error['msg'].lower()}{suffix}"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the config format allows at `loc`, found by walking the models' field types."""
    tp: Any = Config
    for part in loc:
        tp = _unwrap_optional(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            return []
    tp = _unwrap_optional(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    return sorted(f.alias or n for n, f in tp.model_fields.items())


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    return args[0] if get_origin(tp) in (Union, UnionType) and len(args) == 1 else tp


# --- loading ----------------------------------------------------------------------------------------
def parse_config(data: Any, *, source: str, schemas: Collection[str] | None = None) -> Config:
    """Validate already-parsed YAML. Raises ConfigError with every problem found."""
    from service.adapters import EMBEDDING_SCHEMAS, all_schema_names  # lazy: the adapters import much more

    if schemas is None:
        schemas = all_schema_names()
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, "(top level)", "expected a mapping with aws, endpoints and models")])
    expanded, problems = expand_env(data, os.environ, source)
    if expanded.get("aws") is None:
        expanded["aws"] = {}  # the whole section is optional: region can come from the environment
    config: Config | None = None
    try:
        config = Config.model_validate(expanded, context={"schemas": frozenset(schemas), "cross_checked": True})
    except ValidationError as exc:
        seen = {p.key for p in problems}  # an unset ${VAR} would otherwise be reported twice
        problems += [p for p in (Problem(source, key_path(e["loc"]), _why(e)) for e in exc.errors())
                     if p.key not in seen]
    problems += [p for p in _cross_problems(expanded, source) if p.key not in {q.key for q in problems}]
    problems += mixed_models(expanded, source, EMBEDDING_SCHEMAS)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path, *, schemas: Collection[str] | None = None) -> Config:
    """Read, expand and validate a config file. Raises ConfigError listing every problem (file, key, why)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(source, "(file)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(source, "(file)", f"cannot be read: {exc}")]) from None
    return parse_config(_load_yaml(text, source), source=source, schemas=schemas)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(yaml)"
        why = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(source, where, f"YAML syntax error: {why}")]) from None
