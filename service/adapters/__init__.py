"""The schema registry: one adapter module per payload schema, looked up by name in one dict.

The only comparison on a schema name anywhere in jumpgate is the dict lookup in `get`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.adapters.base import Adapter

SCHEMAS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    if adapter.name in SCHEMAS:
        raise ValueError(f"schema {adapter.name!r} is registered twice")
    SCHEMAS[adapter.name] = adapter
    return adapter


def schema_names() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(SCHEMAS))


def get(name: str) -> Adapter:
    _load_builtin()
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known schemas: {', '.join(sorted(SCHEMAS))}") from None


def _load_builtin() -> None:
    # Importing the modules registers them; done lazily so `base` can import this package.
    from service.adapters import jumpstart, lmi, neuron, openai_compat, text2text, tgi  # noqa: F401
