"""The resolved runtime view of the embedding endpoints and models of a config (the embedding half of
`catalog`): each endpoint with its embedding adapter, target, price, batch size and how it serves `dimensions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service import adapters
from service.adapters.embedding_base import EmbeddingAdapter
from service.config.model import EndpointConfig, ModelConfig
from service.pipeline.tokens import ESTIMATE, LocalTokenizer, TokenCounter
from service.telemetry import cost
from service.transport.base import Target


@dataclass(frozen=True, slots=True)
class EmbeddingEndpoint:
    id: str
    schema: str
    adapter: EmbeddingAdapter
    target: Target
    instance_type: str
    instance_count: int
    price_per_hour: float  # for one instance
    accelerator: str
    max_concurrency: int
    #: inputs per upstream call (`container.max_batch_size`, TEI's --max-client-batch-size; 1 for one-text bodies)
    batch_size: int
    #: the container cuts vectors to `dimensions` itself (TEI >= 1.8, by the declared `container.version`)
    native_dimensions: bool
    #: a Matryoshka model: vectors may be cut to `dimensions` and re-normalized by the gateway
    matryoshka: bool
    max_wait_s: float = 1.0
    counter: TokenCounter = ESTIMATE

    @property
    def endpoint_price_per_hour(self) -> float:
        return self.price_per_hour * self.instance_count


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    name: str
    targets: tuple[tuple[EmbeddingEndpoint, float], ...]


def is_embedding(ep: EndpointConfig) -> bool:
    return ep.schema_ in adapters.EMBEDDING_SCHEMAS


def embedding_endpoint(eid: str, ep: EndpointConfig) -> EmbeddingEndpoint:
    adapter = adapters.get_embedding(ep.schema_)
    container = ep.container
    since, version = adapter.native_dimensions_since, container.version_tuple()
    return EmbeddingEndpoint(
        id=eid, schema=ep.schema_, adapter=adapter,
        target=Target(ep.endpoint_name, ep.timeout_s, ep.custom_attributes, ep.target_variant, ep.inference_component),
        instance_type=ep.instance_type, instance_count=ep.instance_count,
        price_per_hour=cost.price_per_hour(ep.instance_type, ep.price_per_hour) or 0.0,
        accelerator=cost.accelerator_for(ep.instance_type), max_concurrency=ep.max_concurrency,
        batch_size=min(container.max_batch_size, adapter.max_batch or container.max_batch_size),
        native_dimensions=since is not None and version is not None and _padded(version) >= since,
        matryoshka=container.matryoshka, max_wait_s=ep.max_wait_s,
        counter=LocalTokenizer(ep.tokenizer) if ep.tokenizer else ESTIMATE,
    )


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return version + (0,) * (3 - len(version))


def embedding_model(name: str, m: ModelConfig, endpoints: Mapping[str, EmbeddingEndpoint]) -> EmbeddingModel:
    return EmbeddingModel(name, tuple((endpoints[t.endpoint], t.weight) for t in m.targets if t.weight > 0))
