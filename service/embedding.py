"""The canonical embedding request and result, as `service.canonical` is for generation. Frozen, no I/O.

The api parses an OpenAI `/v1/embeddings` body into an `EmbeddingRequest`; embedding adapters turn batches of
its inputs into payloads and their answers into vectors; the pipeline returns `Embeddings` in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from service.canonical import Usage

#: one input: text, or token ids in the model's own vocabulary
EmbeddingInput = str | tuple[int, ...]
EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[EmbeddingInput, ...]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None  # cut every vector to this many dimensions
    request_id: str = ""
    timeout_s: float | None = None  # the client's own deadline (x-jumpgate-timeout-s); can only shorten

    @property
    def token_ids(self) -> bool:
        return any(not isinstance(i, str) for i in self.inputs)


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The vectors, one per input in input order, with usage and where they came from. `dimensions_by` says
    who cut them to the requested `dimensions`: the container, the gateway (re-normalized), or nobody."""

    vectors: tuple[Sequence[float], ...]
    usage: Usage
    endpoint: str
    attempts: int = 1
    calls: int = 1  # upstream calls: inputs are sent in batches of the endpoint's batch size
    upstream_seconds: float = 0.0
    upstream_bytes: int = 0  # request and response bodies moved (serverless endpoints are billed for them)
    cost_usd: float = 0.0
    dimensions_by: Literal["container", "gateway"] | None = None
