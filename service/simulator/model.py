"""What a simulated endpoint is: its name, the container behind it, that container's version and launch
options, and the hardware it pretends to run on.

Container facts mirror the jumpgate config's ``container:`` mapping (service/config/container.py) so one
config drives both the gateway and the simulator. When the config says nothing, the simulator plays the
newest versions it models: TGI 3.3.7 (the >= 3.2 tool-calling shapes), LMI 0.33.0 rolling batch, TEI 1.9.4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

#: Container kinds the simulator can play; ``containers.CONTAINERS`` holds one behaviour per name.
CONTAINER_KINDS = ("tgi", "lmi", "lmi-neuron", "meta-llama", "text2text", "tei", "jumpstart-text-inputs",
                   "jumpstart-list", "jumpstart-x-text", "lmi-embedding")
EMBEDDING_KINDS = ("tei", "jumpstart-text-inputs", "jumpstart-list", "jumpstart-x-text", "lmi-embedding")

#: The version each kind plays when none is configured.
DEFAULT_VERSIONS = {"tgi": "3.3.7", "lmi": "0.33.0", "lmi-neuron": "0.30.0", "tei": "1.9.4",
                    "lmi-embedding": "0.33.0"}


def parse_version(text: str) -> tuple[int, ...]:
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a version such as 3.2.0")
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


@dataclass(frozen=True, slots=True)
class SimEndpoint:
    """A SageMaker endpoint as the simulator serves it.

    ``max_total_tokens`` is the prompt + generated budget (TGI MAX_TOTAL_TOKENS, Neuron OPTION_N_POSITIONS);
    ``slots`` is how many requests the model works on at once (more wait in a queue). ``version`` is the
    container version (None: ``DEFAULT_VERSIONS``). ``grammar`` false is TGI's --disable-grammar-support;
    ``tool_call_parser`` is LMI's OPTION_TOOL_CALL_PARSER (with OPTION_ENABLE_AUTO_TOOL_CHOICE);
    ``async_mode`` is LMI's vLLM async mode. ``vision`` marks a vision-language model taking at most
    ``max_images`` images per prompt; ``payload_limit`` is TGI's PAYLOAD_LIMIT; ``max_top_n_tokens`` is
    TGI's MAX_TOP_N_TOKENS. Embedding models: vectors of ``embedding_dim`` floats, inputs of at most
    ``max_input_tokens`` tokens, at most ``max_batch_size`` inputs per call (TEI --max-client-batch-size).
    """

    name: str
    container: str
    accelerator: str = "gpu"
    max_total_tokens: int = 8192
    slots: int = 32
    requires_eula: bool = False
    version: str | None = None
    grammar: bool = True
    tool_call_parser: str | None = None
    async_mode: bool = False
    vision: bool = False
    max_images: int = 1
    payload_limit: int = 2_000_000
    max_top_n_tokens: int = 5
    embedding_dim: int = 1024
    max_input_tokens: int = 512
    max_batch_size: int = 32
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
        if self.version is not None:
            parse_version(self.version)
        limits = (self.max_images, self.payload_limit, self.embedding_dim, self.max_input_tokens,
                  self.max_batch_size)
        if min(limits) < 1 or self.max_top_n_tokens < 0:
            raise ValueError(f"endpoint {self.name!r}: image, payload, embedding and batch limits must be >= 1")

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version or DEFAULT_VERSIONS.get(self.container, "0"))

    def at_least(self, version: str) -> bool:
        return self.version_tuple >= parse_version(version)

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
        SimEndpoint("jumpgate-demo-tei-bge-large", "tei", "gpu", 512, 32, embedding_dim=1024, max_input_tokens=512),
        SimEndpoint("jumpgate-demo-tgi-llama32-11b-vision", "tgi", "gpu", 8192, 16, vision=True, max_images=1),
    )
}

# jumpgate config `schema` → the container that answers that payload format.
_SCHEMA_TO_CONTAINER = {
    "tgi": "tgi", "openai": "tgi", "lmi": "lmi", "neuron": "lmi-neuron",
    "jumpstart": "meta-llama", "text2text": "text2text", "tei": "tei",
    "jumpstart_text_inputs": "jumpstart-text-inputs", "jumpstart_list": "jumpstart-list",
    "jumpstart_x_text": "jumpstart-x-text", "lmi_embeddings": "lmi-embedding",
}

# `container:` keys of the jumpgate config → SimEndpoint fields (same meaning, see service/config/container.py).
_CONTAINER_KEYS = {"version": "version", "grammar": "grammar", "tool_call_parser": "tool_call_parser",
                   "async_mode": "async_mode", "vision": "vision", "max_images": "max_images",
                   "max_batch_size": "max_batch_size", "max_top_logprobs": "max_top_n_tokens",
                   "payload_limit": "payload_limit"}


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


def _container_kind(key: str, schema: Any, container: dict[str, Any]) -> str:
    if schema not in _SCHEMA_TO_CONTAINER:
        raise ValueError(f"endpoint {key!r}: schema {schema!r} is not one of {sorted(_SCHEMA_TO_CONTAINER)}")
    if schema == "openai" and container.get("kind") == "lmi":
        return "lmi"  # LMI vLLM chat (`messages`) rather than TGI's Messages API
    return _SCHEMA_TO_CONTAINER[schema]


def _endpoint_from_entry(key: str, entry: dict[str, Any]) -> SimEndpoint:
    container = entry.get("container") or {}
    if not isinstance(container, dict):
        raise ValueError(f"endpoint {key!r}: 'container' must be a mapping")
    kind = _container_kind(key, entry.get("schema"), container)
    instance = str(entry.get("instance_type") or "")
    facts = {field: container[k] for k, field in _CONTAINER_KEYS.items() if container.get(k) is not None}
    if "version" in facts:
        facts["version"] = str(facts["version"])  # YAML reads 3.2 as a float
    if kind in EMBEDDING_KINDS and entry.get("context_length"):
        facts["max_input_tokens"] = int(entry["context_length"])
    return SimEndpoint(
        name=str(entry.get("endpoint_name") or key),
        container=kind,
        accelerator="inf2" if (".inf" in instance or ".trn" in instance) else "gpu",
        max_total_tokens=int(entry.get("context_length") or 4096),
        slots=int(entry.get("max_concurrency") or 32),
        requires_eula="accept_eula" in str(entry.get("custom_attributes") or ""),
        **facts,
    )
