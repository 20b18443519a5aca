"""The schema registries: one adapter module per payload schema, looked up by name in one dict per protocol
(`SCHEMAS` for text generation, `EMBEDDING_SCHEMAS` for embeddings; a schema name is in exactly one).

The only comparison on a schema name anywhere in jumpgate is the dict lookup in `get` / `get_embedding`.
Adding a schema means one adapter module and one line in `_BUILTIN` / `_EMBEDDING`.
"""

from __future__ import annotations

from service.adapters.base import Adapter
from service.adapters.embedding_base import EmbeddingAdapter
from service.adapters.jumpstart import JumpStartAdapter
from service.adapters.jumpstart_embedding import (
    JumpStartListAdapter,
    JumpStartTextInputsAdapter,
    JumpStartXTextAdapter,
)
from service.adapters.lmi import LmiAdapter
from service.adapters.lmi_embeddings import LmiEmbeddingsAdapter
from service.adapters.neuron import NeuronAdapter
from service.adapters.openai_compat import OpenAICompatAdapter
from service.adapters.tei import TeiAdapter
from service.adapters.text2text import Text2TextAdapter
from service.adapters.tgi import TgiAdapter

SCHEMAS: dict[str, Adapter] = {}
EMBEDDING_SCHEMAS: dict[str, EmbeddingAdapter] = {}


def register(adapter: Adapter) -> Adapter:
    if adapter.name in SCHEMAS or adapter.name in EMBEDDING_SCHEMAS:
        raise ValueError(f"schema {adapter.name!r} is registered twice")
    SCHEMAS[adapter.name] = adapter
    return adapter


def register_embedding(adapter: EmbeddingAdapter) -> EmbeddingAdapter:
    if adapter.name in SCHEMAS or adapter.name in EMBEDDING_SCHEMAS:
        raise ValueError(f"schema {adapter.name!r} is registered twice")
    EMBEDDING_SCHEMAS[adapter.name] = adapter
    return adapter


def schema_names() -> tuple[str, ...]:
    """The text generation schemas."""
    return tuple(sorted(SCHEMAS))


def all_schema_names() -> tuple[str, ...]:
    """Every schema a config may name: text generation and embeddings."""
    return tuple(sorted({*SCHEMAS, *EMBEDDING_SCHEMAS}))


def get_embedding(name: str) -> EmbeddingAdapter:
    try:
        return EMBEDDING_SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown embedding schema {name!r}; known: {', '.join(sorted(EMBEDDING_SCHEMAS))}") from None


def get(name: str) -> Adapter:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known schemas: {', '.join(sorted(SCHEMAS))}") from None


_BUILTIN: tuple[Adapter, ...] = (TgiAdapter(), LmiAdapter(), NeuronAdapter(), JumpStartAdapter(), Text2TextAdapter(),
                                 OpenAICompatAdapter())
for _adapter in _BUILTIN:
    register(_adapter)

_EMBEDDING: tuple[EmbeddingAdapter, ...] = (TeiAdapter(), JumpStartTextInputsAdapter(), JumpStartListAdapter(),
                                            JumpStartXTextAdapter(), LmiEmbeddingsAdapter())
for _embedding in _EMBEDDING:
    register_embedding(_embedding)
