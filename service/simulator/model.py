"""What a simulated endpoint is: its name, the container behind it and the hardware it pretends to run on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

#: Container kinds the simulator can play; ``containers.CONTAINERS`` holds one behaviour per name.
CONTAINER_KINDS = ("tgi", "lmi", "lmi-neuron", "meta-llama", "text2text")


@dataclass(frozen=True, slots=True)
class SimEndpoint:
    """A SageMaker endpoint as the simulator serves it.

    ``max_total_tokens`` is the prompt + generated budget (TGI MAX_TOTAL_TOKENS, Neuron OPTION_N_POSITIONS);
    ``slots`` is how many requests the model works on at once (more wait in a queue).
    """

    name: str
    container: str
    accelerator: str = "gpu"
    max_total_tokens: int = 8192
    slots: int = 32
    requires_eula: bool = False
    #: estates (service/simulator/estate.py): the region its SigV4 scope must name and the access keys it accepts
    #: (None / empty: unchecked); serverless (stream API refused, cold start after idling); inference components
    #: and their copies; seconds of virtual time after a no-capacity refusal until a copy is added (None: never)
    region: str | None = None
    access_keys: tuple[str, ...] = ()
    serverless: bool = False
    cold_start_s: float = 0.0
    inference_components: Mapping[str, int] = field(default_factory=dict)
    scale_out_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.container not in CONTAINER_KINDS:
            raise ValueError(f"unknown container {self.container!r} for endpoint {self.name!r}; "
                             f"known: {', '.join(CONTAINER_KINDS)}")
        if self.slots < 1 or self.max_total_tokens < 2:
            raise ValueError(f"endpoint {self.name!r}: slots must be >= 1 and max_total_tokens >= 2")

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> SimEndpoint:
        """Build from control-API JSON; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown endpoint fields {unknown}; known: {sorted(known)}")
        if isinstance(data.get("access_keys"), list):
            data = {**data, "access_keys": tuple(data["access_keys"])}
        return cls(name=name, **data)


DEMO_ENDPOINTS: dict[str, SimEndpoint] = {
    ep.name: ep
    for ep in (
        SimEndpoint("jumpgate-demo-tgi-llama3-8b", "tgi", "gpu", 8192, 32),
        SimEndpoint("jumpgate-demo-neuron-llama2-13b", "lmi-neuron", "inf2", 2048, 4),
        SimEndpoint("jumpgate-demo-jumpstart-llama2-7b-chat", "meta-llama", "gpu", 4096, 8, requires_eula=True),
        SimEndpoint("jumpgate-demo-ft-llama3-8b-dolly", "lmi", "gpu", 8192, 32),
        SimEndpoint("jumpgate-demo-flan-t5-xl", "text2text", "gpu", 2048, 8),
    )
}

# jumpgate config `schema` → the container that answers that payload format.
_SCHEMA_TO_CONTAINER = {
    "tgi": "tgi", "openai": "tgi", "lmi": "lmi", "neuron": "lmi-neuron",
    "jumpstart": "meta-llama", "text2text": "text2text",
}


def endpoints_from_config(path: str | Path) -> dict[str, SimEndpoint]:
    """SimEndpoints for every ``endpoints:`` entry of a jumpgate YAML config, keyed by SageMaker endpoint name.

    Entries sharing an ``endpoint_name`` (one TGI endpoint used through two schemas) become one endpoint;
    the first entry wins.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    result: dict[str, SimEndpoint] = {}
    for key, entry in (data.get("endpoints") or {}).items():
        endpoint = _endpoint_from_entry(str(key), entry or {})
        endpoint = replace(endpoint, **estate_fields(entry or {}, data.get("aws") or {}))
        if endpoint.name in result:  # one endpoint hosting several components: gather them
            first = result[endpoint.name]
            endpoint = replace(first, inference_components={**first.inference_components,
                                                            **endpoint.inference_components})
        result[endpoint.name] = endpoint
    return result


def estate_fields(entry: dict[str, Any], aws: dict[str, Any]) -> dict[str, Any]:
    """Region, accepted keys, serverless and components of one jumpgate config entry. The keys are known only for
    static credentials; an assumed role's keys come from STS, so tests set them through the control API."""
    creds = entry.get("credentials") or aws.get("credentials")
    static = creds.get("access_key_id") if isinstance(creds, dict) and not creds.get("role_arn") else None
    if isinstance(static, str) and "${" in static:
        static = None  # expanded from the gateway's environment, which the simulator does not see: unchecked
    component = entry.get("inference_component")
    region = entry.get("region") or aws.get("region")
    return {"region": None if "${" in str(region) else region, "access_keys": (static,) if static else (),
            "serverless": bool(entry.get("serverless")),
            "inference_components": {str(component): 1} if component else {}}


def _endpoint_from_entry(key: str, entry: dict[str, Any]) -> SimEndpoint:
    schema = entry.get("schema")
    if schema not in _SCHEMA_TO_CONTAINER:
        raise ValueError(f"endpoint {key!r}: schema {schema!r} is not one of {sorted(_SCHEMA_TO_CONTAINER)}")
    instance = str(entry.get("instance_type") or "")
    return SimEndpoint(
        name=str(entry.get("endpoint_name") or key),
        container=_SCHEMA_TO_CONTAINER[schema],
        accelerator="inf2" if (".inf" in instance or ".trn" in instance) else "gpu",
        max_total_tokens=int(entry.get("context_length") or 4096),
        slots=int(entry.get("max_concurrency") or 32),
        requires_eula="accept_eula" in str(entry.get("custom_attributes") or ""),
    )
