"""The resolved runtime view of a config: endpoints with their adapter, target, price and prompt spec,
and models with their weighted targets; embedding endpoints and models beside them (`embedding_catalog`).
Built once at config load, so nothing on the request path looks anything up by name except the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from service import adapters
from service.adapters.base import Adapter
from service.adapters.logprobs import TokenData, token_data
from service.adapters.params import Policy
from service.canonical import SamplingParams
from service.config.aws import credential_spec, runtime_url_for
from service.config.model import DEFAULT_MAX_NEW_TOKENS, AwsConfig, Config, EndpointConfig, ModelConfig
from service.config.resilience import ShadowConfig
from service.errors import InvalidRequest, ModelNotFound, echo
from service.pipeline.capabilities import TEXT_ONLY, Capabilities, resolve
from service.pipeline.embedding_catalog import EmbeddingEndpoint, EmbeddingModel, embedding_model, is_embedding
from service.pipeline.tokens import ESTIMATE, LocalTokenizer, TokenCounter
from service.prompts.render import PromptSpec
from service.telemetry import cost
from service.transport.base import CredentialSpec, Target


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    schema: str
    adapter: Adapter
    target: Target
    spec: PromptSpec
    instance_type: str
    instance_count: int
    price_per_hour: float  # for one instance
    accelerator: str
    max_concurrency: int
    context_length: int | None
    max_wait_s: float = 1.0
    counter: TokenCounter = ESTIMATE
    #: the AWS region the endpoint lives in (its SigV4 scope) and where its credentials come from (no secret)
    region: str = ""
    credentials: str = "chain"
    #: streamed with InvokeEndpointWithResponseStream: the adapter can, and the endpoint is not serverless
    #: (serverless endpoints answer the stream API with an error; see service/simulator/estate.py)
    can_stream: bool = True
    serverless_memory_mb: int | None = None
    #: how long a request may wait for an inference component scaled to zero to get a copy (0: fall back at once)
    scale_from_zero_wait_s: float = 0.0
    #: how a request's cost is attributed (service/telemetry/cost.py); build_catalog always sets it
    price: cost.PriceModel = field(default_factory=lambda: cost.InstanceHours(0.0))
    #: the token log-probabilities its answers carry (None: none)
    token_data: TokenData | None = None
    capabilities: Capabilities = TEXT_ONLY

    @property
    def endpoint_price_per_hour(self) -> float:
        """What the endpoint costs per hour whether or not requests arrive (0 for serverless)."""
        return self.price.hourly


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    targets: tuple[tuple[Endpoint, float], ...]
    defaults: SamplingParams
    policy: Policy
    shadow: ShadowConfig | None = None
    invalid_output_retries: int = 1


class Upstream(Protocol):
    """What the per-attempt mechanics and attributed cost need of an endpoint, text generation or embedding."""

    @property
    def id(self) -> str: ...
    @property
    def schema(self) -> str: ...
    @property
    def accelerator(self) -> str: ...
    @property
    def target(self) -> Target: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def region(self) -> str: ...
    @property
    def scale_from_zero_wait_s(self) -> float: ...
    @property
    def price(self) -> cost.PriceModel: ...
    @property
    def endpoint_price_per_hour(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Catalog:
    endpoints: Mapping[str, Endpoint]
    models: Mapping[str, Model]
    embedding_endpoints: Mapping[str, EmbeddingEndpoint] = field(default_factory=dict)
    embedding_models: Mapping[str, EmbeddingModel] = field(default_factory=dict)

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            if name in self.embedding_models:
                raise InvalidRequest(f"model {echo(name)} is an embedding model: send it to /v1/embeddings",
                                     param="model", code="wrong_api") from None
            raise self._not_found(name) from None

    def embedding_model(self, name: str) -> EmbeddingModel:
        try:
            return self.embedding_models[name]
        except KeyError:
            if name in self.models:
                raise InvalidRequest(f"model {echo(name)} generates text and has no embeddings: send an embedding "
                                     f"model ({', '.join(sorted(self.embedding_models)) or 'none configured'})",
                                     param="model", code="wrong_api") from None
            raise self._not_found(name) from None

    def upstreams(self) -> dict[str, tuple[int, float]]:
        """Every endpoint's concurrency limit and slot wait, for the fleet's live state."""
        both: list[Endpoint | EmbeddingEndpoint] = [*self.endpoints.values(), *self.embedding_endpoints.values()]
        return {ep.id: (ep.max_concurrency, ep.max_wait_s) for ep in both}

    def _not_found(self, name: str) -> ModelNotFound:
        known = ", ".join(sorted([*self.models, *self.embedding_models]))
        return ModelNotFound(f"model {echo(name)} does not exist; available models: {known}", param="model")


#: instance_type (a metric label) of a serverless endpoint, which has no instance type
SERVERLESS_INSTANCE_TYPE = "serverless"


def build_catalog(config: Config) -> Catalog:
    embedding = {eid for eid, ep in config.endpoints.items() if is_embedding(ep)}
    endpoints = {eid: _endpoint(eid, ep, config.aws) for eid, ep in config.endpoints.items() if eid not in embedding}
    embedders = {eid: _embedding_endpoint(eid, config.endpoints[eid], config.aws) for eid in embedding}
    models = {name: _model(name, m, endpoints) for name, m in config.models.items()
              if not any(t.endpoint in embedding for t in m.targets)}
    embedding_models = {name: embedding_model(name, m, embedders) for name, m in config.models.items()
                        if name not in models}
    return Catalog(endpoints, models, embedders, embedding_models)


def _hosting(eid: str, ep: EndpointConfig, aws: AwsConfig) -> dict[str, Any]:
    """What every endpoint has, text generation or embedding: target, region, credentials, instances, price."""
    instance_type = ep.instance_type or SERVERLESS_INSTANCE_TYPE
    price = cost.price_per_hour(instance_type, ep.price_per_hour) or 0.0
    credentials = credential_spec(ep.credentials, aws.credentials)
    return {
        "id": eid, "schema": ep.schema_, "target": _target(ep, aws, credentials), "instance_type": instance_type,
        "instance_count": ep.instance_count, "price_per_hour": price,
        # Serverless Inference runs on CPUs only (AWS developer guide, "Serverless Inference", feature exclusions).
        "accelerator": "cpu" if ep.serverless else cost.accelerator_for(instance_type),
        "max_concurrency": ep.max_concurrency, "max_wait_s": ep.max_wait_s,
        "counter": LocalTokenizer(ep.tokenizer) if ep.tokenizer else ESTIMATE,
        "region": ep.region or aws.region, "credentials": credentials.label(),
        "serverless_memory_mb": ep.serverless.memory_mb if ep.serverless else None,
        "scale_from_zero_wait_s": ep.scale_from_zero_wait_s,
        "price": (cost.Serverless.from_table(ep.serverless.memory_mb) if ep.serverless
                  else cost.InstanceHours(price, ep.instance_count, ep.max_concurrency)),
    }


def _endpoint(eid: str, ep: EndpointConfig, aws: AwsConfig) -> Endpoint:
    adapter = adapters.get(ep.schema_)
    return Endpoint(
        **_hosting(eid, ep, aws),
        adapter=adapter,
        spec=PromptSpec(ep.chat_template, ep.prompt_template),
        context_length=ep.context_length,
        can_stream=adapter.can_stream and ep.serverless is None,
        token_data=token_data(adapter.token_data, ep.container.variant(), ep.container.max_top_logprobs),
        capabilities=resolve(adapter, ep),
    )


def _embedding_endpoint(eid: str, ep: EndpointConfig, aws: AwsConfig) -> EmbeddingEndpoint:
    adapter = adapters.get_embedding(ep.schema_)
    container = ep.container
    since, version = adapter.native_dimensions_since, container.version_tuple()
    return EmbeddingEndpoint(
        **_hosting(eid, ep, aws),
        adapter=adapter,
        batch_size=min(container.max_batch_size, adapter.max_batch or container.max_batch_size),
        native_dimensions=since is not None and version is not None and _padded(version) >= since,
        matryoshka=container.matryoshka,
    )


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return version + (0,) * (3 - len(version))


def _target(ep: EndpointConfig, aws: AwsConfig, credentials: CredentialSpec) -> Target:
    """An endpoint with a region of its own is called at that region's runtime URL (unless it names one) and
    signed for that region; without one, at aws.runtime_url for aws.region, as before."""
    region = ep.region or aws.region
    url = ep.runtime_url or (runtime_url_for(ep.region) if ep.region else aws.runtime_url)
    return Target(ep.endpoint_name, ep.timeout_s, ep.custom_attributes, ep.target_variant, ep.inference_component,
                  region=region, runtime_url=url, credentials=credentials)


def _model(name: str, m: ModelConfig, endpoints: Mapping[str, Endpoint]) -> Model:
    defaults = m.defaults.to_sampling()
    if defaults.max_new_tokens is None:
        defaults = SamplingParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS).with_defaults(defaults)
    return Model(
        name=name,
        targets=tuple((endpoints[t.endpoint], t.weight) for t in m.targets if t.weight > 0),
        defaults=defaults,
        policy=m.unsupported_params,
        shadow=m.shadow,
        invalid_output_retries=m.invalid_output_retries,
    )
