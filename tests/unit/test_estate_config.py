"""Config additions for real AWS estates (issue 16): per-endpoint region, runtime URL, credentials, serverless,
scale_from_zero_wait_s; check-config problems (file, key, why) and what it prints per endpoint."""

from __future__ import annotations

import copy
import io
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config.aws import runtime_regions
from service.config.check import run_check_config
from service.config.model import ConfigError, Problem, parse_config
from service.pipeline.catalog import build_catalog
from service.telemetry import cost
from service.transport.base import CHAIN, CredentialSpec

SCHEMAS = ("tgi", "lmi", "neuron", "jumpstart", "text2text", "openai")
ROLE = "arn:aws:iam::111122223333:role/jumpgate-invoke"

BASE: dict[str, Any] = {
    "aws": {"region": "us-east-1"},
    "endpoints": {
        "east": {"endpoint_name": "llama3-east", "schema": "tgi", "instance_type": "ml.g5.2xlarge"},
        "west": {"endpoint_name": "llama3-west", "schema": "tgi", "instance_type": "ml.g5.2xlarge",
                 "region": "eu-west-1", "credentials": {"role_arn": ROLE}},
    },
    "models": {"llama3": {"targets": [{"endpoint": "east"}, {"endpoint": "west"}]}},
}


@pytest.fixture(autouse=True)
def aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Config and credentials files botocore reads, with one profile in each; no chain from the machine."""
    (tmp_path / "config").write_text("[profile team]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text("[shared]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = x\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def config_with(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def problems(raw: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="estate.yaml", schemas=SCHEMAS)
    return info.value.problems


def one_problem(raw: dict[str, Any]) -> Problem:
    found = problems(raw)
    assert len(found) == 1, found
    assert found[0].file == "estate.yaml"
    return found[0]


def test_each_endpoint_resolves_its_region_url_and_credentials() -> None:
    config = parse_config(BASE, source="estate.yaml", schemas=SCHEMAS)
    catalog = build_catalog(config)
    east, west = catalog.endpoints["east"], catalog.endpoints["west"]
    assert (east.target.region, east.target.runtime_url) == ("us-east-1", "https://runtime.sagemaker.us-east-1.amazonaws.com")
    assert (west.target.region, west.target.runtime_url) == ("eu-west-1", "https://runtime.sagemaker.eu-west-1.amazonaws.com")
    assert east.target.credentials == CHAIN and east.credentials == "chain"
    assert west.target.credentials == CredentialSpec("role", role_arn=ROLE)
    assert west.credentials == "role:jumpgate-invoke"  # bounded, no account id
    assert east.region == "us-east-1" and west.region == "eu-west-1"


def test_aws_runtime_url_stays_the_default_for_endpoints_without_a_region() -> None:
    raw = config_with(**{"aws.runtime_url": "http://127.0.0.1:8081"})
    catalog = build_catalog(parse_config(raw, source="estate.yaml", schemas=SCHEMAS))
    assert catalog.endpoints["east"].target.runtime_url == "http://127.0.0.1:8081"
    assert catalog.endpoints["west"].target.runtime_url == "https://runtime.sagemaker.eu-west-1.amazonaws.com"
    raw["endpoints"]["west"]["runtime_url"] = "http://127.0.0.1:9090/"
    catalog = build_catalog(parse_config(raw, source="estate.yaml", schemas=SCHEMAS))
    assert catalog.endpoints["west"].target.runtime_url == "http://127.0.0.1:9090"


def test_china_regions_get_their_partition_host_from_botocore() -> None:
    raw = config_with(**{"endpoints.west.region": "cn-north-1"})
    catalog = build_catalog(parse_config(raw, source="estate.yaml", schemas=SCHEMAS))
    assert catalog.endpoints["west"].target.runtime_url == "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn"
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= runtime_regions()


def test_aws_credentials_are_every_endpoints_default_and_equal_sources_are_one_spec() -> None:
    raw = config_with(**{"aws.credentials": {"profile": "team"}, "endpoints.west.credentials": None})
    raw["endpoints"]["third"] = {**raw["endpoints"]["east"], "endpoint_name": "third"}
    catalog = build_catalog(parse_config(raw, source="estate.yaml", schemas=SCHEMAS))
    specs = {ep.target.credentials for ep in catalog.endpoints.values()}
    assert specs == {CredentialSpec("profile", profile="team")}
    raw = config_with(**{"aws.credentials": {"profile": "team"}, "endpoints.west.credentials": "default"})
    catalog = build_catalog(parse_config(raw, source="estate.yaml", schemas=SCHEMAS))
    assert catalog.endpoints["west"].target.credentials == CHAIN


def test_a_role_is_assumed_from_its_own_base() -> None:
    raw = config_with(**{"endpoints.west.credentials": {
        "role_arn": ROLE, "profile": "shared", "external_id": "ext-123", "session_name": "gw", "duration_s": 900}})
    spec = build_catalog(parse_config(raw, source="estate.yaml", schemas=SCHEMAS)).endpoints["west"].target.credentials
    assert spec is not None and spec.base == CredentialSpec("profile", profile="shared")
    assert (spec.external_id, spec.session_name, spec.duration_s) == ("ext-123", "gw", 900)
    assert "ext-123" not in repr(spec) and "ext-123" not in spec.describe()


@pytest.mark.parametrize(("arn", "ok"), [
    (ROLE, True), ("arn:aws:iam::111122223333:role/team/a/jumpgate", True),
    ("arn:aws-cn:iam::111122223333:role/x", True), ("arn:aws:iam::1111:role/x", False),
    ("arn:aws:iam::111122223333:user/x", False), ("arn:aws:iam::111122223333:rolex", False),
    ("arn:aws:sts::111122223333:assumed-role/x/y", False), ("arn:mars:iam::111122223333:role/x", False),
])
def test_role_arns_are_checked(arn: str, ok: bool) -> None:
    raw = config_with(**{"endpoints.west.credentials": {"role_arn": arn}})
    if ok:
        parse_config(raw, source="estate.yaml", schemas=SCHEMAS)
        return
    problem = one_problem(raw)
    assert problem.key == "endpoints.west.credentials.role_arn"
    assert "is not an IAM role ARN" in problem.why


@pytest.mark.parametrize(("key", "value", "why"), [
    ("endpoints.west.region", "us-east-7", "not a region where the SageMaker runtime exists"),
    ("endpoints.west.region", "eu-wset-1", "did you mean eu-west-1"),
    ("aws.region", "us-central-1", "not a region where the SageMaker runtime exists"),
    ("endpoints.west.region", "Ireland", "not an AWS region name"),
])
def test_unknown_regions_are_named_with_key_and_reason(key: str, value: str, why: str) -> None:
    problem = problems(config_with(**{key: value}))[0]
    assert problem.key == key and why in problem.why


def test_a_profile_that_does_not_exist_is_named_with_the_profiles_found() -> None:
    problem = one_problem(config_with(**{"endpoints.west.credentials": {"profile": "nope"}}))
    assert problem.key == "endpoints.west.credentials.profile"
    assert "'nope' is not in the AWS config or credentials files" in problem.why
    assert "shared, team" in problem.why  # both files are read, as botocore reads them


@pytest.mark.parametrize(("creds", "why"), [
    ({"role_arn": ROLE, "duration_s": 60}, "between 900 and 43200"),
    ({"role_arn": ROLE, "session_name": "a b"}, "session_name must be 2 to 64 characters"),
    ({"role_arn": ROLE, "external_id": "x"}, "external_id must be 2 to 1224"),
    ({"duration_s": 900}, "only apply with role_arn"),
    ({"profile": "team", "access_key_id": "AKIA", "secret_access_key": "s"}, "one base credential source"),
    ({"access_key_id": "AKIA"}, "both access_key_id and secret_access_key"),
    ("anything", "is not a credential source"),
])
def test_credential_blocks_are_checked(creds: Any, why: str) -> None:
    problem = one_problem(config_with(**{"endpoints.west.credentials": creds}))
    assert problem.key.startswith("endpoints.west.credentials") and why in problem.why, problem


def test_serverless_endpoints_need_no_instance_type_and_take_their_defaults() -> None:
    raw = config_with(**{"endpoints.west.instance_type": None,
                         "endpoints.west.serverless": {"memory_mb": 3072, "max_concurrency": 8}})
    config = parse_config(raw, source="estate.yaml", schemas=SCHEMAS)
    ep = config.endpoints["west"]
    assert ep.instance_type is None and ep.max_concurrency == 8 and ep.timeout_s == 120
    west = build_catalog(config).endpoints["west"]
    assert not west.can_stream and build_catalog(config).endpoints["east"].can_stream
    assert (west.instance_type, west.accelerator, west.serverless_memory_mb) == ("serverless", "cpu", 3072)
    assert isinstance(west.price, cost.Serverless) and west.price.hourly == 0


@pytest.mark.parametrize(("serverless", "key", "why"), [
    ({"memory_mb": 1000}, "endpoints.west.serverless.memory_mb", "1024, 2048, 3072, 4096, 5120, 6144"),
    ({"memory_mb": 7168}, "endpoints.west.serverless.memory_mb", "1024, 2048, 3072, 4096, 5120, 6144"),
    ({"memory_mb": 1024, "max_concurrency": 201}, "endpoints.west.serverless.max_concurrency", "200"),
])
def test_serverless_sizes_are_the_ones_aws_allows(serverless: dict[str, int], key: str, why: str) -> None:
    problem = one_problem(config_with(**{"endpoints.west.serverless": serverless}))
    assert problem.key == key and why in problem.why


def test_an_endpoint_without_instance_type_or_serverless_is_named() -> None:
    problem = one_problem(config_with(**{"endpoints.west.instance_type": None}))
    assert problem.key == "endpoints.west.instance_type"
    assert "serverless" in problem.why


def test_scale_from_zero_wait_is_bounded() -> None:
    raw = config_with(**{"endpoints.west.scale_from_zero_wait_s": 45})
    assert build_catalog(parse_config(raw, source="e", schemas=SCHEMAS)).endpoints["west"].scale_from_zero_wait_s == 45
    problem = one_problem(config_with(**{"endpoints.west.scale_from_zero_wait_s": -1}))
    assert problem.key == "endpoints.west.scale_from_zero_wait_s"


def test_check_config_prints_region_and_credential_source_never_a_secret(tmp_path: Path) -> None:
    raw = config_with(**{"aws.credentials": {"access_key_id": "AKIASTATICKEY0000001",
                                             "secret_access_key": "very-secret-value"},
                         "endpoints.west.credentials": {"role_arn": ROLE, "external_id": "ext-secret-id"}})
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(raw))
    out, err = io.StringIO(), io.StringIO()
    assert run_check_config(str(path), out=out, err=err, schemas=SCHEMAS) == 0, err.getvalue()
    text = out.getvalue()
    assert "region: us-east-1 (aws.region), runtime URL: https://runtime.sagemaker.us-east-1.amazonaws.com" in text
    assert "region: eu-west-1, runtime URL: https://runtime.sagemaker.eu-west-1.amazonaws.com" in text
    assert "credentials: static keys from the config" in text
    assert f"credentials: role {ROLE} assumed with STS (session 'jumpgate', 3600s, with an external id)" in text
    for secret in ("very-secret-value", "ext-secret-id", "AKIASTATICKEY0000001"):
        assert secret not in text


def test_check_config_lists_every_estate_problem_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "estate.yaml"
    path.write_text(textwrap.dedent(f"""\
        aws: {{region: us-east-1}}
        endpoints:
          a: {{endpoint_name: a, schema: tgi, instance_type: ml.g5.2xlarge, region: xx-north-1}}
          b: {{endpoint_name: b, schema: tgi, instance_type: ml.g5.2xlarge, credentials: {{profile: ghost}}}}
          c: {{endpoint_name: c, schema: tgi, instance_type: ml.g5.2xlarge, credentials: {{role_arn: "{ROLE[:-8]}"}}}}
          d: {{endpoint_name: d, schema: tgi, instance_type: ml.g5.2xlarge,
              credentials: {{role_arn: "arn:aws:iam::12:role/x"}}}}
        models:
          m: {{targets: [{{endpoint: a}}]}}
        """))
    out, err = io.StringIO(), io.StringIO()
    assert run_check_config(str(path), out=out, err=err, schemas=SCHEMAS) == 1
    lines = err.getvalue().splitlines()
    assert any(line.startswith(f"{path}: endpoints.a.region: 'xx-north-1' is not a region") for line in lines)
    assert any(line.startswith(f"{path}: endpoints.b.credentials.profile: profile 'ghost'") for line in lines)
    assert any(line.startswith(f"{path}: endpoints.d.credentials.role_arn: ") for line in lines)
    assert len(lines) == 3, lines  # c's shortened ARN is still a valid role ARN
