"""JumpStart embedding models (openai-surface.md 5.3). A model version accepts exactly one of these schemas and
nothing tells which from outside, so the endpoint's config names it; the gateway never guesses.

- `jumpstart_text_inputs` (huggingface-sentencesimilarity-*): `{"text_inputs": [...], "mode": "embedding"}` →
  `{"embedding": [[...], ...]}`.
- `jumpstart_list`: a JSON list of strings → a list of vectors.
- `jumpstart_x_text` (tensorflow-tcembedding-*): `Content-Type: application/x-text`, the body is one text →
  `{"embedding": [...]}`: one input per call.
None takes token ids or cuts to `dimensions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from service.adapters.base import json_payload
from service.adapters.embedding_base import Vector, json_vectors
from service.embedding import EmbeddingInput
from service.transport.base import Payload, RawResponse


def _texts(inputs: Sequence[EmbeddingInput]) -> list[str]:
    # routing sends token ids only to schemas that declare `token_ids`
    return [i for i in inputs if isinstance(i, str)]


class JumpStartTextInputsAdapter:
    name = "jumpstart_text_inputs"
    max_batch: int | None = None
    token_ids = False
    native_dimensions_since: tuple[int, ...] | None = None

    def encode(self, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> Payload:
        return json_payload({"text_inputs": _texts(inputs), "mode": "embedding"})

    def decode(self, raw: RawResponse, count: int) -> list[Vector]:
        return json_vectors(raw, count, self.name, '{"embedding": [...]}', key="embedding")


class JumpStartListAdapter:
    name = "jumpstart_list"
    max_batch: int | None = None
    token_ids = False
    native_dimensions_since: tuple[int, ...] | None = None

    def encode(self, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> Payload:
        return Payload(orjson.dumps(_texts(inputs)))

    def decode(self, raw: RawResponse, count: int) -> list[Vector]:
        return json_vectors(raw, count, self.name, "a list")


class JumpStartXTextAdapter:
    name = "jumpstart_x_text"
    max_batch: int | None = 1
    token_ids = False
    native_dimensions_since: tuple[int, ...] | None = None

    def encode(self, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> Payload:
        return Payload(_texts(inputs)[0].encode(), content_type="application/x-text")

    def decode(self, raw: RawResponse, count: int) -> list[Vector]:
        return json_vectors(raw, count, self.name, '{"embedding": [...]}', key="embedding")
