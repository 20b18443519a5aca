"""Credential providers under an injected clock: renewed before expiry, never fetched on the request path, an STS
outage keeps the old credentials until they expire and then a clear 503; one provider per source; the refresh
metric."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import EndpointConnectionError
from prometheus_client import CollectorRegistry

from service.errors import CredentialsUnavailable, UpstreamError
from service.telemetry.metrics import Metrics
from service.transport.base import CHAIN, CredentialSpec
from service.transport.credentials import (
    EXPIRY_MARGIN_S,
    REFRESH_BEFORE_S,
    CredentialProvider,
    CredentialRefresher,
    CredentialRegistry,
    Fetch,
    Issued,
)
from service.transport.signing import Signer

ROLE = CredentialSpec("role", role_arn="arn:aws:iam::111122223333:role/invoker")
URL = "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/ep/invocations"
LIFETIME = 3600.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSts:
    """Issues ASIA... keys valid for LIFETIME seconds from the clock's now; `down` makes every call fail as an
    unreachable STS endpoint does."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls = 0
        self.down = False

    def __call__(self) -> Issued:
        self.calls += 1
        if self.down:
            raise EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com/")
        key = f"ASIAFAKE{self.calls:012d}"
        return Issued(ReadOnlyCredentials(key, f"secret-{self.calls}", f"token-{self.calls}"),
                      self.clock() + LIFETIME)


def make(clock: Clock, sts: Fetch, hook: Callable[[str, str], None] | None = None) -> tuple[
        CredentialProvider, CredentialRefresher]:
    provider = CredentialProvider(ROLE, sts, clock=clock, on_refresh=hook)
    refresher = CredentialRefresher(clock=clock)
    refresher.add(provider)
    return provider, refresher


def key_of(provider: CredentialProvider) -> str:
    return provider.current().access_key


def test_credentials_are_renewed_before_they_expire_and_reads_never_fetch() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    provider, refresher = make(clock, sts)
    assert not provider.ready()  # nothing fetched yet: a request would get a 503, not a wait
    refresher.run_pending()
    first = key_of(provider)
    assert sts.calls == 1
    for _ in range(1000):  # the hot path: reads only
        provider.current()
    assert sts.calls == 1
    clock.now += LIFETIME - REFRESH_BEFORE_S - 1
    assert refresher.run_pending() == pytest.approx(1)  # next pass in one second
    assert sts.calls == 1 and key_of(provider) == first
    clock.now += 1
    refresher.run_pending()
    assert sts.calls == 2 and key_of(provider) != first  # renewed 5 minutes before expiry
    assert provider.expires_at == pytest.approx(clock.now + LIFETIME)


def test_an_sts_outage_keeps_the_old_credentials_until_they_expire_then_a_clear_503() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    results: list[tuple[str, str]] = []
    provider, refresher = make(clock, sts, lambda source, result: results.append((source, result)))
    refresher.run_pending()
    first, expires = key_of(provider), provider.expires_at
    assert expires is not None
    sts.down = True
    clock.now = expires - REFRESH_BEFORE_S
    while clock.now < expires - EXPIRY_MARGIN_S - 1:  # retries with backoff, old key served all along
        refresher.run_pending()
        assert key_of(provider) == first
        clock.now = min(provider.due_at, expires - EXPIRY_MARGIN_S - 1)
    failures = sts.calls - 1
    assert failures >= 5 and results.count(("role:invoker", "failure")) == failures
    clock.now = expires - EXPIRY_MARGIN_S
    with pytest.raises(CredentialsUnavailable) as info:
        provider.current()
    err = info.value
    assert (err.status, err.type, err.code, err.retryable) == (503, "service_unavailable",
                                                               "no_endpoint_available", True)
    assert isinstance(err, UpstreamError)  # failover moves on to an endpoint with other credentials
    assert "expired at" in err.message and "EndpointConnectionError" in err.message
    assert "111122223333" not in err.message  # the role ARN is redacted from what a client sees
    assert err.retry_after is not None and 1 <= err.retry_after <= 60
    sts.down = False
    clock.now = provider.due_at
    refresher.run_pending()
    assert key_of(provider) != first and results[-1] == ("role:invoker", "success")


def test_a_source_that_never_worked_is_a_503_naming_it() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    sts.down = True
    provider, refresher = make(clock, sts)
    refresher.run_pending()
    with pytest.raises(CredentialsUnavailable, match=r"are not available .*EndpointConnectionError"):
        provider.current()


def test_static_credentials_are_ready_at_once_and_never_refreshed() -> None:
    calls = []

    def fetcher(spec: CredentialSpec) -> Fetch:
        calls.append(spec)
        return lambda: Issued(ReadOnlyCredentials("AKIDSTATIC", "s", None), None)

    registry = CredentialRegistry(sts_region="us-east-1", fetcher=fetcher)
    spec = CredentialSpec("static", access_key_id="AKIDSTATIC", secret_access_key="s")
    assert registry.provider(spec).ready() and registry.ready()
    assert registry.provider(spec).due_at == float("inf")
    registry.start()  # nothing to fetch: no thread
    assert registry.refresher._thread is None
    registry.close()


def test_endpoints_sharing_a_source_share_one_provider() -> None:
    clock = Clock()
    made: list[CredentialSpec] = []

    def fetcher(spec: CredentialSpec) -> Fetch:
        made.append(spec)
        return FakeSts(clock)

    registry = CredentialRegistry(sts_region="us-east-1", clock=clock, fetcher=fetcher)
    registry.prepare([ROLE, CredentialSpec("role", role_arn=ROLE.role_arn), CHAIN, ROLE])
    assert made == [ROLE, CHAIN]
    assert registry.provider(CredentialSpec("role", role_arn=ROLE.role_arn)) is registry.provider(ROLE)
    assert not registry.ready()
    registry.refresher.run_pending()
    assert registry.ready()


def test_refresh_results_are_counted_in_the_metric() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    metrics = Metrics(CollectorRegistry())
    provider, refresher = make(clock, sts, metrics.count_credential_refresh)
    refresher.run_pending()
    sts.down = True
    clock.now = provider.due_at
    refresher.run_pending()

    def sample(result: str) -> float | None:
        return metrics.registry.get_sample_value("jumpgate_credential_refresh_total",
                                                 {"source": "role:invoker", "result": result})

    assert (sample("success"), sample("failure")) == (1.0, 1.0)


def test_no_request_waits_while_sts_hangs_in_the_refresher_thread() -> None:
    """The refresher thread is stuck in an STS call that does not return; signing still answers at once with the
    credentials it holds (nothing on the request path calls STS). No timing: the fetch is released afterwards."""
    released = threading.Event()
    entered = threading.Event()
    clock = Clock()
    sts = FakeSts(clock)

    def hanging() -> Issued:
        if sts.calls >= 1:
            entered.set()
            assert released.wait(30), "the test never released the fetch"
        return sts()

    registry = CredentialRegistry(sts_region="eu-west-1", clock=clock, fetcher=lambda spec: hanging)
    provider = registry.provider(ROLE)
    registry.refresher.run_pending()  # the first fetch, in the test's thread
    signer = Signer.from_provider(provider, "eu-west-1")
    clock.now = provider.due_at  # due: the thread will call STS and hang there
    registry.start()
    try:
        assert entered.wait(30), "the refresher thread did not start a refresh"
        headers = signer.sign("POST", URL, {"Content-Type": "application/json"}, b"{}")
        assert "Credential=ASIAFAKE000000000001/" in headers["Authorization"]
        assert "/eu-west-1/sagemaker/aws4_request" in headers["Authorization"]
    finally:
        released.set()
        registry.close()
    assert key_of(provider) == "ASIAFAKE000000000002"


def test_the_refresher_thread_fetches_new_sources_at_once() -> None:
    fetched = threading.Event()
    clock = Clock()
    sts = FakeSts(clock)

    def fetch() -> Issued:
        issued = sts()
        fetched.set()
        return issued

    registry = CredentialRegistry(sts_region="eu-west-1", clock=clock, fetcher=lambda spec: fetch)
    registry.start()
    try:
        provider = registry.provider(ROLE)  # added after start: the thread wakes for it
        assert fetched.wait(30)
        deadline = threading.Event()
        for _ in range(3000):
            if provider.ready():
                break
            deadline.wait(0.01)  # polling state with a deadline, not deciding on a sleep
        assert provider.ready()
    finally:
        registry.close()
