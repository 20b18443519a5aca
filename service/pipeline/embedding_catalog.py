"""The resolved runtime view of the embedding endpoints and models of a config (the embedding half of
`catalog`): each endpoint with its embedding adapter, target, price, batch size and how it serves `dimensions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service import adapters
from service.adapters.embedding_base import EmbeddingAdapter
from service.config.model import EndpointConfig, ModelConfig
from service.pipeline.tokens import ESTIMATE, TokenCounter
from service.telemetry import cost
from service.transport.base import Target


@dataclass(frozen=True, slots=True)
class EmbeddingEndpoint:
    """An embedding endpoint: the hosting facts every endpoint has (as `catalog.Endpoint`), its embedding adapter
    and how it serves batches and `dimensions`. Built by `catalog.build_catalog`."""

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
    region: str = ""
    credentials: str = "chain"
    serverless_memory_mb: int | None = None
    scale_from_zero_wait_s: float = 0.0
    price: cost.PriceModel = field(default_factory=lambda: cost.InstanceHours(0.0))

    @property
    def endpoint_price_per_hour(self) -> float:
        """What the endpoint costs per hour whether or not requests arrive (0 for serverless)."""
        return self.price.hourly


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    name: str
    targets: tuple[tuple[EmbeddingEndpoint, float], ...]


def is_embedding(ep: EndpointConfig) -> bool:
    return ep.schema_ in adapters.EMBEDDING_SCHEMAS


def embedding_model(name: str, m: ModelConfig, endpoints: Mapping[str, EmbeddingEndpoint]) -> EmbeddingModel:
    return EmbeddingModel(name, tuple((endpoints[t.endpoint], t.weight) for t in m.targets if t.weight > 0))
