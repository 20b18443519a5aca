"""Where endpoints live and how they are reached (issue 16), as additions to the DESIGN.md config contract.

```yaml
aws:
  region: us-east-1
  credentials:                        # default for every endpoint; leave out for the default chain
    profile: platform                 # a named profile from ~/.aws/config / credentials, or
    # role_arn: arn:aws:iam::111122223333:role/jumpgate-invoke   (assumed with STS from the base credentials)
endpoints:
  llama3-8b-eu:
    region: eu-west-1                 # default aws.region; SigV4 signs for it
    runtime_url: null                 # default: that region's SageMaker runtime URL (botocore's endpoint data)
    credentials:
      role_arn: arn:aws:iam::444455556666:role/jumpgate-invoke
      external_id: ${JG_EXTERNAL_ID}  # optional, as the role's trust policy requires
      session_name: jumpgate          # optional (2-64 of [\\w+=,.@-])
      duration_s: 3600                # optional, 900..43200 (STS AssumeRole DurationSeconds)
      # base credentials to assume it from: `profile: name`, or static keys, else the default chain
    serverless: {memory_mb: 2048, max_concurrency: 8}   # a serverless endpoint: no instance_type
    scale_from_zero_wait_s: 120       # inference components scaled to zero: how long a request may wait
```
`credentials: default` names the default chain explicitly (to override an `aws.credentials` default). The static
form (`access_key_id`, `secret_access_key`, `session_token`) stays for the simulator and tests.

Checks use AWS's own data: region names from botocore's endpoint data (the regions where it knows the SageMaker
runtime), profiles from the files botocore reads (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE honoured), the
AssumeRole parameter limits from botocore's STS service model.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.transport.base import CHAIN, CredentialSpec

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_RUNTIME = "runtime.sagemaker"  # the runtime's endpoint prefix in botocore's endpoint data

#: ProductionVariantServerlessConfig (botocore's sagemaker model): MemorySizeInMB 1024..6144 "in 1 GB increments",
#: MaxConcurrency 1..200.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
#: Serverless /invocations may take up to a minute and a cold start adds the container's start-up (AWS developer
#: guide, "Serverless Inference": cold starts, ModelSetupTime): the default timeout covers both.
SERVERLESS_TIMEOUT_S = 120.0


# --- AWS data, read once ----------------------------------------------------------------------------------------
@cache
def _endpoint_resolver() -> Any:
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    return EndpointResolver(create_loader().load_data("endpoints"))


@cache
def runtime_regions() -> frozenset[str]:
    """Every region, in every partition, where botocore's endpoint data lists the SageMaker runtime."""
    resolver = _endpoint_resolver()
    return frozenset(r for p in resolver.get_available_partitions()
                     for r in resolver.get_available_endpoints(_RUNTIME, p))


def check_region(value: str) -> str:
    if value not in runtime_regions():
        close = difflib.get_close_matches(value, sorted(runtime_regions()), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; e.g. us-east-1, eu-west-1"
        raise ValueError(f"{value!r} is not a region where the SageMaker runtime exists (per botocore's endpoint "
                         f"data){hint}")
    return value


@cache
def runtime_url_for(region: str) -> str:
    """https:// + the runtime's host in `region` as botocore resolves it (amazonaws.com.cn in China, ...)."""
    endpoint = _endpoint_resolver().construct_endpoint(_RUNTIME, region)
    host = endpoint["hostname"] if endpoint else f"runtime.sagemaker.{region}.amazonaws.com"
    return f"https://{host}"


@cache
def _partitions() -> tuple[str, ...]:
    return tuple(_endpoint_resolver().get_available_partitions())


@cache
def _assume_role_limits() -> dict[str, dict[str, Any]]:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sts").operation_model("AssumeRole").input_shape
    assert shape is not None, "botocore's STS model has an AssumeRole input"
    return {name: dict(shape.members[name].metadata)
            for name in ("RoleSessionName", "DurationSeconds", "ExternalId")}


def known_profiles() -> list[str]:
    """Profiles in the AWS config and credentials files, found as botocore finds them (read at each call)."""
    import botocore.session

    return sorted(botocore.session.Session().available_profiles)


# --- models -----------------------------------------------------------------------------------------------------
_ROLE_NAME = r"/(?:[\x21-\x7e]{1,510}/)?[\w+=,.@-]{1,64}"  # IAM: role/, an optional path/, then the name


def _check_role_arn(value: str) -> str:
    partitions = "|".join(map(re.escape, _partitions()))
    if not re.fullmatch(rf"arn:(?:{partitions}):iam::\d{{12}}:role{_ROLE_NAME}", value):
        raise ValueError(f"{value[:120]!r} is not an IAM role ARN such as arn:aws:iam::111122223333:role/name "
                         "(partition, 12-digit account id, role/ and the role's name)")
    return value


def _check_sts(name: str, value: Any, key: str) -> None:
    limits = _assume_role_limits()[name]
    if isinstance(value, int):
        if not limits["min"] <= value <= limits["max"]:
            raise ValueError(f"{key} must be between {limits['min']} and {limits['max']} (STS AssumeRole "
                             f"{name}); got {value}")
        return
    if not (limits["min"] <= len(value) <= limits["max"] and re.fullmatch(limits["pattern"], value)):
        raise ValueError(f"{key} must be {limits['min']} to {limits['max']} characters matching "
                         f"{limits['pattern']} (STS AssumeRole {name})")


class CredentialsConfig(BaseModel):
    """One credential source: static keys, a profile, a role (from static keys, a profile or the chain), or the
    default chain. Secret values are excluded from repr."""

    model_config = _FROZEN
    default_chain: bool = False
    profile: str | None = Field(None, min_length=1, max_length=128)
    access_key_id: str | None = Field(None, min_length=1, max_length=128)
    secret_access_key: str | None = Field(None, repr=False)
    session_token: str | None = Field(None, repr=False)
    role_arn: str | None = None
    external_id: str | None = Field(None, repr=False)
    session_name: str = "jumpgate"
    duration_s: int = 3600

    @model_validator(mode="before")
    @classmethod
    def _named_chain(cls, data: Any) -> Any:
        if data == "default":
            return {"default_chain": True}
        if isinstance(data, str):
            raise ValueError(f"{data[:40]!r} is not a credential source: write `default`, or a mapping with "
                             "profile, role_arn or static keys")
        return data

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        return None if value is None else _check_role_arn(value)

    @field_validator("profile")
    @classmethod
    def _profile_exists(cls, value: str | None) -> str | None:
        if value is not None and value not in (known := known_profiles()):
            listed = ", ".join(known) or "none"
            raise ValueError(f"profile {value!r} is not in the AWS config or credentials files (AWS_CONFIG_FILE, "
                             f"AWS_SHARED_CREDENTIALS_FILE, ~/.aws); profiles found: {listed}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CredentialsConfig:
        static = self.access_key_id is not None or self.secret_access_key is not None
        if static and (self.access_key_id is None or self.secret_access_key is None):
            raise ValueError("static credentials need both access_key_id and secret_access_key")
        if sum((static, self.profile is not None, self.default_chain)) > 1:
            raise ValueError("give one base credential source: static keys, profile, or default, not several")
        if self.role_arn is None and (self.external_id or "session_name" in self.model_fields_set
                                      or "duration_s" in self.model_fields_set):
            raise ValueError("external_id, session_name and duration_s only apply with role_arn")
        if self.role_arn is not None:
            _check_sts("RoleSessionName", self.session_name, "session_name")
            _check_sts("DurationSeconds", self.duration_s, "duration_s")
            if self.external_id is not None:
                _check_sts("ExternalId", self.external_id, "external_id")
        return self

    def spec(self) -> CredentialSpec:
        if self.access_key_id is not None:
            base = CredentialSpec("static", access_key_id=self.access_key_id,
                                  secret_access_key=self.secret_access_key, session_token=self.session_token)
        elif self.profile is not None:
            base = CredentialSpec("profile", profile=self.profile)
        else:
            base = CHAIN
        if self.role_arn is None:
            return base
        return CredentialSpec("role", role_arn=self.role_arn, external_id=self.external_id,
                              session_name=self.session_name, duration_s=self.duration_s,
                              base=None if base == CHAIN else base)


def credential_spec(own: CredentialsConfig | None, default: CredentialsConfig | None) -> CredentialSpec:
    """An endpoint's credential source: its own, else `aws.credentials`, else the default chain."""
    chosen = own or default
    return CHAIN if chosen is None else chosen.spec()


class ServerlessConfig(BaseModel):
    """A serverless endpoint (ProductionVariantServerlessConfig): billed per second of compute by memory size."""

    model_config = _FROZEN
    memory_mb: int
    max_concurrency: int | None = Field(None, ge=1, le=200)

    @field_validator("memory_mb")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value not in SERVERLESS_MEMORY_MB:
            raise ValueError(f"memory_mb must be one of {', '.join(map(str, SERVERLESS_MEMORY_MB))} (SageMaker "
                             f"serverless memory sizes, 1 GB steps); got {value}")
        return value


def serverless_defaults(data: Any) -> Any:
    """Before validation of an endpoint: a serverless endpoint's defaults differ (timeout for cold starts,
    concurrency from its MaxConcurrency) unless the config sets them."""
    if not isinstance(data, dict) or not isinstance(data.get("serverless"), dict):
        return data
    out = dict(data)
    out.setdefault("timeout_s", SERVERLESS_TIMEOUT_S)
    if out["serverless"].get("max_concurrency") is not None:
        out.setdefault("max_concurrency", out["serverless"]["max_concurrency"])
    return out
