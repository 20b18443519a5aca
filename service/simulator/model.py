"""What a simulated endpoint is: its name, the container behind it and the hardware it pretends to run on."""

from __future__ import annotations

from dataclasses import dataclass, fields
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
        result.setdefault(endpoint.name, endpoint)
    return result


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
