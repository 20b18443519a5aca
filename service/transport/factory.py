"""The SageMaker transport for an estate: one aiohttp pool, one credential provider per distinct source.

`build_transport(...)` prepares a provider for every credential source the endpoints use (endpoints sharing a
role share one) and starts the refresher thread, which fetches them at once and renews them before they expire;
readiness (`credentials_ready`) is true once every source holds usable credentials. `on_refresh(source, result)`
is how the gateway counts refreshes (`Metrics.count_credential_refresh`); it may also be set later on the
registry (`transport.credentials.on_refresh`). The transport stays config-free: the app passes plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from service.transport.base import CredentialSpec
from service.transport.credentials import CredentialRegistry, RefreshHook
from service.transport.sagemaker import SageMakerTransport
from service.transport.signing import Signer


def build_transport(runtime_url: str, region: str, default: CredentialSpec, specs: Iterable[CredentialSpec], *,
                    on_refresh: RefreshHook | None = None,
                    start: bool = True) -> tuple[SageMakerTransport, Callable[[], bool]]:
    """`runtime_url`, `region` and `default`: the aws section (targets without their own use them); `specs`:
    every endpoint's credential source. STS is called in `region` (regional STS endpoint)."""
    registry = CredentialRegistry(sts_region=region, on_refresh=on_refresh)
    registry.prepare({*specs, default})
    if start:
        registry.start()
    signer = Signer.from_provider(registry.provider(default), region)
    transport = SageMakerTransport(runtime_url, signer, credentials=registry)
    return transport, transport.credentials_ready
