"""The schema registry: one adapter module per payload schema, looked up by name in one dict.

The only comparison on a schema name anywhere in jumpgate is the dict lookup in `get`. Adding a schema means
one adapter module and one line in `_BUILTIN`.
"""

from __future__ import annotations

from service.adapters.base import Adapter
from service.adapters.jumpstart import JumpStartAdapter
from service.adapters.lmi import LmiAdapter
from service.adapters.neuron import NeuronAdapter
from service.adapters.openai_compat import OpenAICompatAdapter
from service.adapters.text2text import Text2TextAdapter
from service.adapters.tgi import TgiAdapter

SCHEMAS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    if adapter.name in SCHEMAS:
        raise ValueError(f"schema {adapter.name!r} is registered twice")
    SCHEMAS[adapter.name] = adapter
    return adapter


def schema_names() -> tuple[str, ...]:
    return tuple(sorted(SCHEMAS))


def get(name: str) -> Adapter:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known schemas: {', '.join(sorted(SCHEMAS))}") from None


_BUILTIN: tuple[Adapter, ...] = (TgiAdapter(), LmiAdapter(), NeuronAdapter(), JumpStartAdapter(), Text2TextAdapter(),
                                 OpenAICompatAdapter())
for _adapter in _BUILTIN:
    register(_adapter)
