"""AWS credentials per source: one provider per distinct CredentialSpec, renewed in the background.

The hot path only reads: `CredentialProvider.current()` returns the cached frozen triple and never does I/O.
A refresher thread (`CredentialRefresher`) renews every provider before its credentials expire, so no request
waits on STS, a metadata service or a credentials file:
- assumed roles through botocore's own `AssumeRoleCredentialFetcher` (the STS call, ExternalId, session name and
  duration handled as botocore does for role profiles), from the role's base credentials;
- the default chain and named profiles through boto3 sessions (botocore refreshes their temporary keys when
  asked for a frozen triple, which here happens in the refresher thread).

A failed refresh is logged, reported to `on_refresh(source, "failure")` (the gateway counts it in
`jumpgate_credential_refresh_total`) and retried with backoff; the old credentials are served until they expire,
then `current()` raises CredentialsUnavailable (503, with Retry-After until the next attempt). Every decision
reads the injected `clock` (epoch seconds), so tests drive time instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, NamedTuple

from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    Credentials,
    ReadOnlyCredentials,
)

from service.errors import CredentialsUnavailable, redact
from service.transport.base import CHAIN, CredentialSpec

log = logging.getLogger("jumpgate.credentials")

#: Credentials this close to expiry are no longer used: a request signed now must still be valid when AWS checks it.
EXPIRY_MARGIN_S = 10.0
#: Renew this long before expiry (at most half the lifetime). botocore's own refreshable credentials start at 15
#: minutes (advisory) and block at 10 (mandatory); we renew earlier and never on the request path.
REFRESH_BEFORE_S = 300.0
#: Chain / profile credentials with no known expiry are re-read this often (a rotated key file is picked up).
RECHECK_S = 60.0
RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0


class Issued(NamedTuple):
    credentials: ReadOnlyCredentials
    expires_at: float | None  # epoch seconds; None: no known expiry


Fetch = Callable[[], Issued]
RefreshHook = Callable[[str, str], None]  # (source label, "success" | "failure")


class CredentialProvider:
    """The credentials of one source: the last good triple, when it expires, and when to try renewing it."""

    def __init__(self, spec: CredentialSpec, fetch: Fetch, *, clock: Callable[[], float] = time.time,
                 on_refresh: RefreshHook | None = None, refresh_before_s: float = REFRESH_BEFORE_S) -> None:
        self.spec = spec
        self.source = spec.label()
        self.on_refresh = on_refresh
        self._fetch = fetch
        self._clock = clock
        self._refresh_before_s = refresh_before_s
        self._issued: Issued | None = None
        self._failures = 0
        self._due = clock()  # the first fetch is due at once
        self._problem = "they have not been fetched yet"
        self._lock = threading.Lock()  # one refresh at a time (the thread, or a caller forcing one)

    def current(self) -> ReadOnlyCredentials:
        """The credentials to sign with now; raises CredentialsUnavailable when there are none or they expired."""
        issued = self._issued
        if issued is None:
            raise self._unavailable(f"are not available ({self._problem})")
        if issued.expires_at is not None and self._clock() >= issued.expires_at - EXPIRY_MARGIN_S:
            raise self._unavailable(f"expired at {_iso(issued.expires_at)} and could not be renewed ({self._problem})")
        return issued.credentials

    def ready(self) -> bool:
        try:
            self.current()
        except CredentialsUnavailable:
            return False
        return True

    @property
    def due_at(self) -> float:
        return self._due

    @property
    def expires_at(self) -> float | None:
        return None if self._issued is None else self._issued.expires_at

    def refresh(self) -> bool:
        """Fetch new credentials (blocking: call it off the event loop). Keeps the old ones on failure."""
        with self._lock:
            try:
                issued = self._fetch()
            except Exception as exc:  # any failure of STS or the chain: the thread must survive it
                self._failed(exc)
                return False
            now = self._clock()
            self._issued, self._failures = issued, 0
            self._due = self._next_refresh(issued, now)
            self._report("success")
            return True

    def _failed(self, exc: Exception) -> None:
        now = self._clock()
        self._failures += 1
        self._problem = redact(f"{type(exc).__name__}: {exc}")
        self._due = now + min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (self._failures - 1))
        expires = self.expires_at
        keeps = (f"keeping the current ones until they expire at {_iso(expires)}" if expires is not None
                 and expires > now else "none are usable")
        log.warning("refreshing AWS credentials (%s) failed (%s); %s; next attempt in %.0fs",
                    self.spec.label(), self._problem, keeps, self._due - now)
        self._report("failure")

    def _next_refresh(self, issued: Issued, now: float) -> float:
        if issued.expires_at is None:
            return float("inf") if self.spec.kind == "static" else now + RECHECK_S
        before = min(self._refresh_before_s, max(0.0, issued.expires_at - now) / 2)
        return issued.expires_at - before

    def _report(self, result: str) -> None:
        if self.on_refresh is not None:
            self.on_refresh(self.source, result)

    def _unavailable(self, what: str) -> CredentialsUnavailable:
        wait = max(1.0, self._due - self._clock()) if self._due != float("inf") else None
        return CredentialsUnavailable(redact(
            f"the AWS credentials of this endpoint ({self.spec.describe()}) {what}; the gateway keeps retrying in "
            f"the background: check that source (STS reachability, the role's trust policy, the profile)"),
            retry_after=wait)


class CredentialRefresher:
    """Renews due providers: `run_pending()` does one pass (tests call it with an injected clock); `start()` runs
    passes in a daemon thread, sleeping until the next provider is due (never longer than `max_sleep_s`)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, max_sleep_s: float = 30.0) -> None:
        self._clock = clock
        self._max_sleep_s = max_sleep_s
        self._providers: list[CredentialProvider] = []
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, provider: CredentialProvider) -> None:
        self._providers.append(provider)
        self._wake.set()  # a new provider is due now: do not finish the current sleep first

    def run_pending(self) -> float:
        """Refresh every provider that is due; return the seconds until the next one is."""
        for provider in list(self._providers):
            if provider.due_at <= self._clock():
                provider.refresh()
        now = self._clock()
        return min([self._max_sleep_s, *(max(0.0, p.due_at - now) for p in self._providers)])

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="jumpgate-credentials", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)  # a fetch in progress ends on its own: daemon thread, bounded by botocore
            self._thread = None

    def _loop(self) -> None:
        while not self._stopped.is_set():
            wait = self.run_pending()
            self._wake.wait(wait)
            self._wake.clear()


class CredentialRegistry:
    """One provider per distinct spec, all renewed by one refresher. Signers (one per spec and region) are made
    by the transport from `provider(spec)`."""

    def __init__(self, *, sts_region: str, clock: Callable[[], float] = time.time,
                 on_refresh: RefreshHook | None = None,
                 fetcher: Callable[[CredentialSpec], Fetch] | None = None) -> None:
        self.on_refresh = on_refresh
        self._clock = clock
        self._fetcher = fetcher or partial(boto_fetcher, sts_region=sts_region)
        self._providers: dict[CredentialSpec, CredentialProvider] = {}
        self._started = False
        self.refresher = CredentialRefresher(clock=clock)

    def provider(self, spec: CredentialSpec) -> CredentialProvider:
        found = self._providers.get(spec)
        if found is None:
            found = self._providers[spec] = CredentialProvider(spec, self._fetcher(spec), clock=self._clock,
                                                               on_refresh=self._report)
            if spec.kind == "static":
                found.refresh()  # no I/O: ready at once, and never refreshed again
            else:
                self.refresher.add(found)
                if self._started:
                    self.refresher.start()
        return found

    def prepare(self, specs: Iterable[CredentialSpec]) -> None:
        for spec in specs:
            self.provider(spec)

    def providers(self) -> Iterator[CredentialProvider]:
        return iter(list(self._providers.values()))

    def ready(self) -> bool:
        return all(p.ready() for p in self.providers())

    def start(self) -> None:
        """Run the refresher thread (only while some source needs fetching: static keys never do)."""
        self._started = True
        if any(p.spec.kind != "static" for p in self.providers()):
            self.refresher.start()

    def close(self) -> None:
        self.refresher.close()

    def _report(self, source: str, result: str) -> None:
        if self.on_refresh is not None:
            self.on_refresh(source, result)


# --- fetching with boto3 / botocore (runs in the refresher thread) ----------------------------------------------
def boto_fetcher(spec: CredentialSpec, *, sts_region: str) -> Fetch:
    """The blocking fetch for one spec. Nothing is resolved here: a missing profile or an empty chain is a
    failed refresh (logged, counted, retried), never a crash at startup."""
    if spec.kind == "static":
        static = ReadOnlyCredentials(spec.access_key_id, spec.secret_access_key, spec.session_token)
        return lambda: Issued(static, None)
    if spec.kind == "role":
        return _role_fetch(spec, sts_region)
    return _session_fetch(spec.profile if spec.kind == "profile" else None)


def _session_fetch(profile: str | None) -> Fetch:
    holder: list[Credentials] = []

    def fetch() -> Issued:
        if not holder:
            holder.append(_chain_credentials(profile))
        credentials = holder[0]
        # botocore refreshes temporary chain credentials (IRSA, ECS, SSO) here, in the refresher thread.
        return Issued(credentials.get_frozen_credentials(), _expiry_of(credentials))

    return fetch


def _role_fetch(spec: CredentialSpec, sts_region: str) -> Fetch:
    import botocore.session

    holder: list[AssumeRoleCredentialFetcher] = []
    extra: dict[str, Any] = {"RoleSessionName": spec.session_name, "DurationSeconds": spec.duration_s}
    if spec.external_id:
        extra["ExternalId"] = spec.external_id

    def fetch() -> Issued:
        if not holder:
            assert spec.role_arn is not None, "a role source names its role (checked at config load)"
            # botocore's session honours AWS_ENDPOINT_URL_STS / AWS_STS_REGIONAL_ENDPOINTS like any AWS tool.
            creator = partial(botocore.session.Session().create_client, region_name=sts_region)
            holder.append(AssumeRoleCredentialFetcher(creator, _base_credentials(spec.base or CHAIN),
                                                      spec.role_arn, extra_args=extra, cache=_NoCache()))
        got = holder[0].fetch_credentials()
        frozen = ReadOnlyCredentials(got["access_key"], got["secret_key"], got["token"])
        return Issued(frozen, _epoch(got["expiry_time"]))

    return fetch


def _base_credentials(spec: CredentialSpec) -> Credentials:
    if spec.kind == "static" and spec.access_key_id and spec.secret_access_key:
        return Credentials(spec.access_key_id, spec.secret_access_key, spec.session_token)
    return _chain_credentials(spec.profile if spec.kind == "profile" else None)


def _chain_credentials(profile: str | None) -> Credentials:
    import boto3

    credentials = boto3.Session(profile_name=profile).get_credentials()
    if credentials is None:
        raise LookupError("no provider of the default credential chain returned credentials" if profile is None
                          else f"profile {profile!r} has no credentials")
    return credentials


class _NoCache(dict[str, Any]):
    """A cache that never holds anything: the refresher, not botocore's fetcher, decides when to call STS."""

    def __setitem__(self, key: str, value: Any) -> None:
        pass


def _expiry_of(credentials: Credentials) -> float | None:
    # botocore keeps the expiry of refreshable credentials only as this attribute (no public accessor).
    expiry = getattr(credentials, "_expiry_time", None)
    return expiry.timestamp() if isinstance(expiry, dt.datetime) else None


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "(never)"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
