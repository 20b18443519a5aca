"""SigV4 signing of SageMaker runtime requests with botocore, over static or standard-chain credentials.

Signing runs on the hot path, so one call does only: take a frozen credential triple, build one
AWSRequest, let botocore's SigV4Auth sign it. Three shortcuts keep botocore's algorithm and output
byte for byte (tests/transport/test_signing.py compares against plain botocore): the derived signing
key is cached per secret and day, the body is read without re-preparing the request, and the signed
headers are selected once per signing instead of twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError

from service.errors import CredentialsUnavailable, NoEndpointAvailable, redact

if TYPE_CHECKING:
    from service.transport.credentials import CredentialProvider

SIGNING_NAME = "sagemaker"  # the SigV4 "service" of the runtime API (not "runtime.sagemaker")

# After a failed resolution, wait this long before walking the chain again: a miss can cost a
# metadata-service timeout, which must not be paid on every request.
RESOLVE_RETRY_S = 5.0

_SELECTED = "jumpgate_headers_to_sign"  # request.context key: the signed headers, selected once per signing

HOW_TO_PROVIDE = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys), "
                  "or AWS_PROFILE naming a profile in ~/.aws/config, or run with an ECS task role or "
                  "EKS IRSA / pod identity")

CredentialSource = Callable[[], Credentials | None]


class Signer:
    """Signs one request at a time; credentials are resolved lazily and refreshed by botocore."""

    def __init__(self, source: CredentialSource, region: str) -> None:
        self.region = region
        self._source = source
        self._credentials: Credentials | None = None
        self._retry_at = 0.0
        self._last_problem = ""
        self._auth: tuple[ReadOnlyCredentials, CachedKeySigV4Auth] | None = None
        self._keys: dict[tuple[str, str], bytes] = {}

    @classmethod
    def static(cls, access_key: str, secret_key: str, session_token: str | None = None, *,
               region: str) -> Signer:
        credentials = Credentials(access_key, secret_key, session_token)
        return cls(lambda: credentials, region)

    @classmethod
    def from_chain(cls, region: str, profile: str | None = None) -> Signer:
        """env, shared config/credentials profile, container (ECS) role, web identity (IRSA), instance role."""

        def resolve() -> Credentials | None:
            # The session is built here, not at construction, so an unknown profile or an empty chain is
            # reported by readiness and by the first request instead of crashing startup.
            return boto3.Session(profile_name=profile, region_name=region).get_credentials()

        return cls(resolve, region)

    @classmethod
    def from_provider(cls, provider: CredentialProvider, region: str) -> Signer:
        """Sign with whatever `provider` holds now (renewed in the background; see credentials.py). No I/O:
        missing or expired credentials raise CredentialsUnavailable from the provider."""
        credentials = _Provided(provider)
        return cls(lambda: credentials, region)

    def for_region(self, region: str) -> Signer:
        """A signer over the same credential source, scoped to another region."""
        return Signer(self._source, region)

    def credentials_available(self) -> bool:
        try:
            self._frozen()
        except (NoEndpointAvailable, CredentialsUnavailable):
            return False
        return True

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """Return every header to send: the given ones, Host, X-Amz-Date, X-Amz-Security-Token, Authorization.

        All of them except Authorization are covered by the signature; send `body` byte for byte.
        """
        to_sign = dict(headers)
        # Host is set explicitly so the value sent is the value signed, whatever the HTTP client would pick.
        to_sign.setdefault("Host", urlsplit(url).netloc)
        request = _BytesRequest(method=method, url=url, data=body, headers=to_sign)
        self._auth_for(self._frozen()).add_auth(request)
        return dict(request.headers.items())

    def _auth_for(self, credentials: ReadOnlyCredentials) -> SigV4Auth:
        """One botocore signer per credential triple (a refresh brings a new triple and a new signer)."""
        if self._auth is None or self._auth[0] != credentials:
            self._auth = (credentials, CachedKeySigV4Auth(credentials, SIGNING_NAME, self.region, self._keys))
        return self._auth[1]

    def _frozen(self) -> ReadOnlyCredentials:
        credentials = self._credentials or self._resolve()
        try:
            # Per signing: RefreshableCredentials refresh here when close to expiry, and the triple is consistent.
            frozen = credentials.get_frozen_credentials()
        except BotoCoreError as exc:
            raise self._unavailable(f"refreshing them failed ({type(exc).__name__}: {exc})") from exc
        if not frozen.access_key or not frozen.secret_key:
            raise self._unavailable("the access key or secret key is empty")
        return frozen

    def _resolve(self) -> Credentials:
        if time.monotonic() < self._retry_at:
            raise self._unavailable(self._last_problem)
        try:
            credentials = self._source()
            problem = "no provider in the chain returned any"
        except BotoCoreError as exc:
            credentials, problem = None, f"{type(exc).__name__}: {exc}"
        if credentials is None:
            self._retry_at = time.monotonic() + RESOLVE_RETRY_S
            self._last_problem = problem
            raise self._unavailable(problem)
        self._credentials = credentials
        return credentials

    def _unavailable(self, problem: str) -> NoEndpointAvailable:
        # Botocore messages name profiles and files, never secret values; redact still strips ARNs/account ids.
        return NoEndpointAvailable(
            f"AWS credentials could not be resolved for SageMaker in {self.region} ({redact(problem)}); "
            f"to provide them, {HOW_TO_PROVIDE}")


class _Provided(Credentials):
    """botocore Credentials whose frozen triple is the provider's current one (the Signer asks once per signing)."""

    def __init__(self, provider: CredentialProvider) -> None:
        super().__init__("provided", "provided")
        self._provider = provider

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return self._provider.current()


class _BytesRequest(AWSRequest):
    """An AWSRequest whose body is already the bytes to send.

    botocore's `AWSRequest.body` runs the whole request preparation (a headers copy, URL preparation)
    on every access to return the body, which for bytes is the bytes themselves; the signer reads it once
    per request, and that preparation was a third of the signing cost.
    """

    @property
    def body(self) -> bytes:  # type: ignore[override]  # botocore-stubs say str; for bytes data it is the bytes
        return cast(bytes, self.data)


class CachedKeySigV4Auth(SigV4Auth):
    """botocore's SigV4 with the derived signing key cached per secret and day.

    The key (four chained HMACs over the date, region, service and "aws4_request") depends only on the
    secret key, the day, the region and the service, so it is derived once a day instead of on every request;
    the signature itself is botocore's, over botocore's canonical request.
    """

    def __init__(self, credentials: ReadOnlyCredentials, service: str, region: str,
                 cache: dict[tuple[str, str], bytes]) -> None:
        super().__init__(credentials, service, region)
        self._cache = cache

    def add_auth(self, request: AWSRequest) -> None:
        request.context.pop(_SELECTED, None)  # a request signed again (new date header) selects anew
        super().add_auth(request)

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # botocore selects the signed headers twice per signing (canonical request, then the Authorization
        # header), over email.message-based header maps; nothing changes the headers in between.
        selected = request.context.get(_SELECTED)
        if selected is None:
            selected = request.context[_SELECTED] = super().headers_to_sign(request)
        return cast(HTTPHeaders, selected)

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        day = request.context["timestamp"][0:8]
        secret = self.credentials.secret_key if self.credentials is not None else None
        assert secret is not None, "signing needs credentials"
        key = self._cache.get((secret, day))
        # botocore's own private HMAC helper and region/service, so the key is derived exactly as botocore does
        # (tests/transport/test_signing.py compares every signature with plain botocore's)
        sign = self._sign  # type: ignore[attr-defined]
        if key is None:
            region, service = self._region_name, self._service_name  # type: ignore[attr-defined]
            key = sign(sign(sign(sign(f"AWS4{secret}".encode(), day), region), service), "aws4_request")
            if len(self._cache) > 16:  # old days and rotated secrets
                self._cache.clear()
            self._cache[(secret, day)] = key
        return str(sign(key, string_to_sign, hex=True))
