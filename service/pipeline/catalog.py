"""The resolved runtime view of a config: endpoints with their adapter, target, price and prompt spec,
and models with their weighted targets; embedding endpoints and models beside them (`embedding_catalog`).
Built once at config load, so nothing on the request path looks anything up by name except the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from service import adapters
from service.adapters.base import Adapter
from service.adapters.logprobs import TokenData, token_data
from service.adapters.params import Policy
from service.canonical import SamplingParams
from service.config.model import DEFAULT_MAX_NEW_TOKENS, Config, EndpointConfig, ModelConfig
from service.config.resilience import ShadowConfig
from service.errors import InvalidRequest, ModelNotFound, echo
from service.pipeline.embedding_catalog import (
    EmbeddingEndpoint,
    EmbeddingModel,
    embedding_endpoint,
    embedding_model,
    is_embedding,
)
from service.pipeline.tokens import ESTIMATE, LocalTokenizer, TokenCounter
from service.prompts.render import PromptSpec
from service.telemetry import cost
from service.transport.base import Target


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
    #: the token log-probabilities its answers carry (None: none)
    token_data: TokenData | None = None

    @property
    def endpoint_price_per_hour(self) -> float:
        return self.price_per_hour * self.instance_count


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    targets: tuple[tuple[Endpoint, float], ...]
    defaults: SamplingParams
    policy: Policy
    shadow: ShadowConfig | None = None


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


def build_catalog(config: Config) -> Catalog:
    embedding = {eid for eid, ep in config.endpoints.items() if is_embedding(ep)}
    endpoints = {eid: _endpoint(eid, ep) for eid, ep in config.endpoints.items() if eid not in embedding}
    embedders = {eid: embedding_endpoint(eid, config.endpoints[eid]) for eid in embedding}
    models = {name: _model(name, m, endpoints) for name, m in config.models.items()
              if not any(t.endpoint in embedding for t in m.targets)}
    embedding_models = {name: embedding_model(name, m, embedders) for name, m in config.models.items()
                        if name not in models}
    return Catalog(endpoints, models, embedders, embedding_models)


def _endpoint(eid: str, ep: EndpointConfig) -> Endpoint:
    price = cost.price_per_hour(ep.instance_type, ep.price_per_hour)
    adapter = adapters.get(ep.schema_)
    return Endpoint(
        id=eid,
        schema=ep.schema_,
        adapter=adapter,
        target=Target(ep.endpoint_name, ep.timeout_s, ep.custom_attributes, ep.target_variant,
                      ep.inference_component),
        spec=PromptSpec(ep.chat_template, ep.prompt_template),
        instance_type=ep.instance_type,
        instance_count=ep.instance_count,
        price_per_hour=price or 0.0,
        accelerator=cost.accelerator_for(ep.instance_type),
        max_concurrency=ep.max_concurrency,
        context_length=ep.context_length,
        max_wait_s=ep.max_wait_s,
        counter=LocalTokenizer(ep.tokenizer) if ep.tokenizer else ESTIMATE,
        token_data=token_data(adapter.token_data, ep.container.variant(), ep.container.max_top_logprobs),
    )


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
    )
