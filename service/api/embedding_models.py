"""The OpenAI `/v1/embeddings` request body (openai-surface.md 5.1), converting itself to `EmbeddingRequest`.

`input`: a string, a list of strings, a list of token ids, or a list of token-id lists; at most 2,048 inputs, no
empty string, no empty token list (OpenAI's rules). `encoding_format`: float, or base64 (little-endian float32,
what the openai SDK asks for unless told otherwise). `dimensions`: vectors cut to that size. `user`: accepted,
not forwarded. Every problem is a 400 naming the field (and the index of the offending input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.api.defaults import Default
from service.embedding import EmbeddingInput, EmbeddingRequest
from service.errors import InvalidParam

MAX_INPUTS = 2048
MAX_TOKEN_ID = 2**31 - 1
MAX_DIMENSIONS = 65536


class EmbeddingBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: no field is served only at a default value; kept for the parser's screening (service/api/wire.py)
    default_only: ClassVar[Mapping[str, Default]] = {}

    model: Annotated[str, Field(min_length=1)]
    input: Any  # checked by `_input`, which names the offending item
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1, le=MAX_DIMENSIONS)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: Any) -> tuple[EmbeddingInput, ...]:
        return parse_input(value)

    def to_canonical(self, request_id: str) -> EmbeddingRequest:
        return EmbeddingRequest(model=self.model, inputs=self.input, encoding_format=self.encoding_format,
                                dimensions=self.dimensions, request_id=request_id)


def _bad(why: str) -> InvalidParam:
    return InvalidParam(f"`input` {why}", param="input")


def _ids(value: list[Any], where: str) -> tuple[int, ...]:
    if not value:
        raise _bad(f"{where}is an empty list of token ids: send at least one token")
    if not all(type(t) is int and 0 <= t <= MAX_TOKEN_ID for t in value):
        raise _bad(f"{where}must hold token ids, integers from 0 to {MAX_TOKEN_ID}")
    return tuple(value)


def parse_input(value: Any) -> tuple[EmbeddingInput, ...]:
    """A string, strings, token ids, or lists of token ids, as a tuple of inputs."""
    if isinstance(value, str):
        if not value:
            raise _bad("is an empty string: send text to embed")
        return (value,)
    if not isinstance(value, list) or not value:
        raise _bad("must be a string, a non-empty list of strings, token ids, or lists of token ids")
    if len(value) > MAX_INPUTS:
        raise _bad(f"holds {len(value)} items; at most {MAX_INPUTS} per request: send fewer")
    if all(type(v) is int for v in value):
        return (_ids(value, ""),)
    inputs: list[EmbeddingInput] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise _bad(f"[{i}] is an empty string: every input needs text")
            inputs.append(item)
        elif isinstance(item, list):
            inputs.append(_ids(item, f"[{i}] "))
        else:
            raise _bad(f"[{i}] must be a string or a list of token ids")
    if len({type(i) for i in inputs}) > 1:
        raise _bad("mixes strings and token ids: send one kind")
    return tuple(inputs)
