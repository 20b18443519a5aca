"""Signer: header set, credential sources (static, env, profile, refreshable) and the no-credentials error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from botocore.credentials import Credentials, RefreshableCredentials

from service.errors import NoEndpointAvailable
from service.transport.signing import Signer
from tests.transport.conftest import ACCESS_KEY, REGION, SECRET_KEY

URL = "https://runtime.sagemaker.us-west-2.amazonaws.com/endpoints/ep/invocations"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json",
           "X-Amzn-SageMaker-Custom-Attributes": "accept_eula=true"}
CHAIN_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                   "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                   "AWS_CREDENTIAL_PROCESS")


@pytest.fixture
def empty_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A process with no credentials anywhere, and no metadata-service lookups (they would be slow)."""
    for name in CHAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def authorization_key(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("Credential=")[1].split("/")[0]


def test_sign_returns_the_complete_header_set() -> None:
    signed = Signer.static(ACCESS_KEY, SECRET_KEY, "tok", region=REGION).sign("POST", URL, HEADERS, b"{}")
    for name, value in HEADERS.items():
        assert signed[name] == value
    assert signed["Host"] == "runtime.sagemaker.us-west-2.amazonaws.com"
    assert signed["X-Amz-Security-Token"] == "tok"
    assert len(signed["X-Amz-Date"]) == 16
    scope = f"Credential={ACCESS_KEY}/{signed['X-Amz-Date'][:8]}/{REGION}/sagemaker/aws4_request"
    assert scope in signed["Authorization"]
    assert ("SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token;"
            "x-amzn-sagemaker-custom-attributes,") in signed["Authorization"]
    assert "Content-Type" in HEADERS and "Authorization" not in HEADERS, "the caller's dict is not modified"


def test_from_chain_reads_environment(empty_chain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    signer = Signer.from_chain(REGION)
    assert signer.credentials_available()
    assert authorization_key(signer.sign("POST", URL, HEADERS, b"")) == "AKIAENVIRONMENTKEY01"


def test_from_chain_reads_a_named_profile(empty_chain: Path) -> None:
    (empty_chain / "credentials").write_text(
        "[team]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = profile-secret\n")
    signer = Signer.from_chain(REGION, profile="team")
    assert authorization_key(signer.sign("POST", URL, HEADERS, b"")) == "AKIAPROFILEKEY000001"


def test_no_credentials_raise_no_endpoint_available(empty_chain: Path) -> None:
    signer = Signer.from_chain(REGION)
    assert not signer.credentials_available()
    with pytest.raises(NoEndpointAvailable) as info:
        signer.sign("POST", URL, HEADERS, b"")
    message = info.value.message
    assert "AWS credentials could not be resolved" in message
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_PROFILE" in message


def test_unknown_profile_is_reported_not_raised_at_construction(empty_chain: Path) -> None:
    signer = Signer.from_chain(REGION, profile="missing")
    with pytest.raises(NoEndpointAvailable, match="missing"):
        signer.sign("POST", URL, HEADERS, b"")


def test_failed_resolution_is_not_retried_on_every_request() -> None:
    calls = []

    def nothing() -> Credentials | None:
        calls.append(1)
        return None

    signer = Signer(nothing, REGION)
    for _ in range(3):
        assert not signer.credentials_available()
    assert len(calls) == 1


def test_refreshable_credentials_are_refreshed_and_never_leak() -> None:
    issued = []

    def refresh() -> dict[str, str]:
        issued.append(f"ASIAREFRESHED{len(issued):07d}")
        # Always inside the mandatory refresh window, so every signing refreshes.
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        return {"access_key": issued[-1], "secret_key": "rotating-secret", "token": "t",
                "expiry_time": expiry.isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    signer = Signer(lambda: credentials, REGION)
    first = authorization_key(signer.sign("POST", URL, HEADERS, b""))
    second = authorization_key(signer.sign("POST", URL, HEADERS, b""))
    assert first != second and second == issued[-1]


def test_refresh_failure_is_a_clear_error() -> None:
    def broken() -> dict[str, str]:
        from botocore.exceptions import CredentialRetrievalError
        raise CredentialRetrievalError(provider="test", error_msg="role arn:aws:iam::123456789012:role/x denied")

    expired = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    credentials = RefreshableCredentials.create_from_metadata(
        {"access_key": "ASIAOLDKEY0000000000", "secret_key": "old-secret", "token": "t", "expiry_time": expired},
        broken, "test")
    signer = Signer(lambda: credentials, REGION)
    with pytest.raises(NoEndpointAvailable) as info:
        signer.sign("POST", URL, HEADERS, b"")
    assert "could not be resolved" in info.value.message
    assert "123456789012" not in info.value.message and "old-secret" not in info.value.message


def test_cached_signing_key_gives_botocores_signature_across_days() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    from service.transport.signing import CachedKeySigV4Auth

    creds = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    cache: dict[tuple[str, str], bytes] = {}
    cached = CachedKeySigV4Auth(creds, "sagemaker", "us-east-1", cache)
    plain = SigV4Auth(creds, "sagemaker", "us-east-1")
    for stamp in ("20261121T235959Z", "20261122T000001Z", "20261122T120000Z"):
        request = AWSRequest(method="POST", url="https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
                             data=b'{"inputs":"hi"}', headers={"Content-Type": "application/json"})
        request.context["timestamp"] = stamp
        sts = plain.string_to_sign(request, plain.canonical_request(request))
        assert cached.signature(sts, request) == plain.signature(sts, request)
    assert len(cache) == 2  # one derived key per day


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
def test_signed_headers_equal_plain_botocore_signing(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    """The shortcuts (cached key, body read without re-preparing, signed headers selected once) change no byte."""
    import datetime

    from botocore import auth as botocore_auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from service.transport.signing import Signer

    fixed = datetime.datetime(2026, 11, 22, 3, 4, 5)
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: fixed)
    url = "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/my%20ep/invocations-response-stream"
    body = '{"inputs":"héllo ✓","parameters":{"max_new_tokens":8}}'.encode()
    headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Accept": "application/json",
               "X-Amzn-SageMaker-Inference-Component": "ic-1"}
    ours = Signer.static("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token, region="eu-west-1")
    for _ in range(2):  # the second signing uses the cached key and a fresh request
        signed = ours.sign("POST", url, headers, body)
        request = AWSRequest(method="POST", url=url, data=body,
                             headers={**headers, "Host": "runtime.sagemaker.eu-west-1.amazonaws.com"})
        frozen = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token).get_frozen_credentials()
        SigV4Auth(frozen, "sagemaker", "eu-west-1").add_auth(request)
        assert signed == dict(request.headers.items())
        assert signed["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/")


def test_a_request_signed_twice_is_signed_for_its_new_date(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    from botocore import auth as botocore_auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    from service.transport.signing import CachedKeySigV4Auth

    creds = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token")
    url = "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations"

    def request() -> AWSRequest:
        return AWSRequest(method="POST", url=url, data=b"{}", headers={"Content-Type": "application/json"})

    ours, again = request(), request()
    auth = CachedKeySigV4Auth(creds, "sagemaker", "us-east-1", {})
    for stamp in (datetime.datetime(2026, 11, 21, 23, 59, 59), datetime.datetime(2026, 11, 22, 0, 0, 1)):
        monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda stamp=stamp: stamp)
        auth.add_auth(ours)  # the same request object, re-signed (as a retry would)
    plain = SigV4Auth(creds, "sagemaker", "us-east-1")
    plain.add_auth(again)
    assert dict(ours.headers.items()) == dict(again.headers.items())
