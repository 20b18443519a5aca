"""The embedding adapter protocol: one implementation per embedding payload schema (openai-surface.md 5.2-5.4).

An embedding adapter knows payloads only: it encodes one batch of inputs (text, or token ids where the schema
takes them) into a `Payload` and decodes the container's answer into one vector per input, in order. What the
schema can do is declared data: how many inputs one call may carry, whether token ids pass, and from which
container version the container cuts vectors to `dimensions` itself. It never sees HTTP, batching or metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from service.adapters.base import load_json, shape_error
from service.embedding import EmbeddingInput
from service.transport.base import Payload, RawResponse

Vector = list[float]


class EmbeddingAdapter(Protocol):
    name: str
    #: inputs one call may carry whatever the endpoint's batch size (1: the body is a single text)
    max_batch: int | None
    #: token-id inputs are sent as they are (ids in the model's own vocabulary)
    token_ids: bool
    #: container version from which a `dimensions` request field cuts vectors natively (None: never)
    native_dimensions_since: tuple[int, ...] | None

    def encode(self, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> Payload:
        """One call's payload for `inputs`; `dimensions` only when the container cuts natively."""
        ...

    def decode(self, raw: RawResponse, count: int) -> list[Vector]:
        """`count` vectors, in input order. Raises UpstreamModelError on any other shape."""
        ...


def vectors(data: Any, count: int, schema: str, expected: str) -> list[Vector]:
    """A list of `count` vectors of numbers of one length; a single flat vector stands for one input."""
    if count == 1 and _is_vector(data):
        data = [data]
    if not isinstance(data, list) or len(data) != count or not all(_is_vector(v) for v in data):
        raise shape_error(schema, f"{expected} with {count} vector{'s' if count != 1 else ''} of numbers")
    if len({len(v) for v in data}) > 1:
        raise shape_error(schema, "vectors of one length")
    return data


_NUMBERS = frozenset({float, int})  # exact types: JSON true / false parse as bool, which is no number here


def _is_vector(value: Any) -> bool:
    # map(type) runs in C: a 32 x 1024 answer is checked in about a millisecond, not eight
    return isinstance(value, list) and bool(value) and _NUMBERS.issuperset(map(type, value))


def json_vectors(raw: RawResponse, count: int, schema: str, expected: str, key: str | None = None) -> list[Vector]:
    """Vectors from a JSON answer: the body itself, or its `key` member."""
    data = load_json(raw, schema)
    if key is not None:
        data = data.get(key) if isinstance(data, dict) else None
    return vectors(data, count, schema, expected)
