"""DJL LMI embeddings (openai-surface.md 5.4): `{"inputs": [...]}` → a list of vectors. The Rust / ONNX / PyTorch
engines answer a flat vector for a single string, so a list is always sent; the vLLM engine (LMI >= 0.36, async
mode) always answers a list of vectors. No `dimensions` support and no token ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.adapters.base import json_payload
from service.adapters.embedding_base import Vector, json_vectors
from service.embedding import EmbeddingInput
from service.transport.base import Payload, RawResponse


class LmiEmbeddingsAdapter:
    name = "lmi_embeddings"
    max_batch: int | None = None
    token_ids = False
    native_dimensions_since: tuple[int, ...] | None = None

    def encode(self, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> Payload:
        return json_payload({"inputs": [i for i in inputs if isinstance(i, str)]})

    def decode(self, raw: RawResponse, count: int) -> list[Vector]:
        return json_vectors(raw, count, self.name, "a list")
