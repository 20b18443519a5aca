"""Hugging Face TEI (text-embeddings-inference) on SageMaker: `/invocations` routes to `embed` (openai-surface.md
5.2). Request `{inputs, normalize, truncate, dimensions}`; the answer is always a list of vectors.

- `inputs`: a batch of strings or of token-id lists; more than `--max-client-batch-size` (32 by default) is a 422,
  so the gateway splits by the endpoint's `container.max_batch_size`.
- `normalize: true` (L2, TEI's default, as OpenAI's vectors are) and `truncate: false`, sent explicitly because
  the server default flipped in 1.9.0: an input over the model's length is refused, as OpenAI refuses it.
- `dimensions` from 1.8.0: TEI cuts and re-normalizes itself; earlier versions ignore the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.adapters.base import json_payload
from service.adapters.embedding_base import Vector, json_vectors
from service.embedding import EmbeddingInput
from service.transport.base import Payload, RawResponse


class TeiAdapter:
    name = "tei"
    max_batch: int | None = None
    token_ids = True
    native_dimensions_since: tuple[int, ...] | None = (1, 8, 0)

    def encode(self, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> Payload:
        body: dict[str, Any] = {"inputs": [i if isinstance(i, str) else list(i) for i in inputs],
                                "normalize": True, "truncate": False}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return json_payload(body)

    def decode(self, raw: RawResponse, count: int) -> list[Vector]:
        return json_vectors(raw, count, self.name, "a list")
