"""`jumpgate check-config FILE`: validate a config and print what it resolves to, or every problem."""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import TextIO

from service.config.aws import credential_spec, runtime_url_for
from service.config.model import (
    DEFAULT_MAX_NEW_TOKENS,
    AwsConfig,
    Config,
    EndpointConfig,
    ModelConfig,
    load_config,
)
from service.config.problems import ConfigError
from service.telemetry import cost


def run_check_config(path: str, *, out: TextIO | None = None, err: TextIO | None = None,
                     schemas: Collection[str] | None = None) -> int:
    """Print the resolved config to `out` and return 0, or every problem as `file: key: why` (one per line,
    nothing else) to `err` and return 1.

    `out`/`err` default to sys.stdout/sys.stderr at call time (not import time, so redirection works).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = load_config(path, schemas=schemas)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    out.write(render_config(path, config))
    return 0


def render_config(path: str, config: Config) -> str:
    lines = [f"{path}: OK", *_aws_lines(config), "", f"endpoints ({len(config.endpoints)}):"]
    for eid, ep in config.endpoints.items():
        lines += _endpoint_lines(eid, ep, config.aws)
    lines += ["", f"models ({len(config.models)}):"]
    for name, model in config.models.items():
        lines += _model_lines(name, model)
    return "\n".join(lines) + "\n"


def _aws_lines(config: Config) -> list[str]:
    aws = config.aws
    creds = credential_spec(None, aws.credentials).describe()
    return [f"aws: region {aws.region}", f"  runtime URL: {aws.runtime_url}", f"  credentials: {creds}"]


def _endpoint_lines(eid: str, ep: EndpointConfig, aws: AwsConfig) -> list[str]:
    lines = [
        f"  {eid}: SageMaker endpoint {ep.endpoint_name}, schema {ep.schema_}",
        *_where_lines(ep, aws),
        *_capacity_lines(ep),
        f"    context_length: {ep.context_length or 'not set'}, max_concurrency: {ep.max_concurrency}, "
        f"timeout: {ep.timeout_s:g}s",
    ]
    optional = {"chat_template": ep.chat_template, "prompt_template": ep.prompt_template,
                "custom_attributes": ep.custom_attributes, "target_variant": ep.target_variant,
                "inference_component": ep.inference_component, "tokenizer": ep.tokenizer,
                "scale_from_zero_wait_s": ep.scale_from_zero_wait_s or None}
    lines += [f"    {key}: {value!r}" for key, value in optional.items() if value is not None]
    return lines


def _model_lines(name: str, model: ModelConfig) -> list[str]:
    targets = ", ".join(f"{t.endpoint} (weight {t.weight:g})" for t in model.targets)
    given = {k: v for k, v in model.defaults.model_dump().items() if v is not None}
    if "max_new_tokens" not in given:
        given["max_new_tokens"] = f"{DEFAULT_MAX_NEW_TOKENS} (gateway default)"
    defaults = ", ".join(f"{k}={v}" for k, v in given.items())
    return [f"  {name}:", f"    targets: {targets}", f"    defaults: {defaults}",
            f"    unsupported_params: {model.unsupported_params}"]


def _where_lines(ep: EndpointConfig, aws: AwsConfig) -> list[str]:
    """Region, runtime URL and credential source: what the endpoint is signed for and with (never a secret)."""
    url = ep.runtime_url or (runtime_url_for(ep.region) if ep.region else aws.runtime_url)
    own = " (aws.region)" if ep.region is None else ""
    return [f"    region: {ep.region or aws.region}{own}, runtime URL: {url}",
            f"    credentials: {credential_spec(ep.credentials, aws.credentials).describe()}"]


def _capacity_lines(ep: EndpointConfig) -> list[str]:
    if ep.serverless is not None or ep.instance_type is None:
        memory = ep.serverless.memory_mb if ep.serverless else 0
        compute, data = cost.load_serverless_prices()
        per_s = cost.Serverless(memory, compute, data).per_second
        return [f"    serverless: {memory} MB (accelerator cpu; not streamed: the stream API is refused)",
                f"    price: ${per_s:.7f} per second of compute + ${data:.3f} per GB in and out (table)"]
    price = cost.price_per_hour(ep.instance_type, ep.price_per_hour)
    source = "override" if ep.price_per_hour is not None else "table"
    price_text = (f"${price:.4f}/h per instance ({source}), ${price * ep.instance_count:.4f}/h for the endpoint"
                  if price is not None else "unknown")
    accelerator = cost.accelerator_for(ep.instance_type)
    return [f"    instances: {ep.instance_type} x {ep.instance_count} (accelerator {accelerator})",
            f"    price: {price_text}"]
