"""Instance prices and accelerator kinds. Pure: the table is package data read once.

The built-in table (`service/data/prices.yaml`) holds SageMaker real-time inference on-demand prices for
us-east-1; its header says where they come from and which entries are unconfirmed. An endpoint's
`price_per_hour` overrides it (other regions, discounts, types the table lacks).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

#: accelerator by instance family (the part after "ml."), for families that are not plain GPUs
_FAMILY_ACCELERATORS = {
    "inf1": "inf1",
    "inf2": "inf2",
    "trn1": "trn1",
    "trn1n": "trn1",
}
#: accelerator by the first letter of the family: g* and p* are NVIDIA GPU families
_CLASS_ACCELERATORS = {"g": "gpu", "p": "gpu"}


@cache
def load_price_table() -> dict[str, float]:
    """Instance type → USD per instance-hour. Cached: the file is package data and never changes at run time.

    Callers must not mutate the returned dict (it is shared).
    """
    text = resources.files("service").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    return _parse_prices(yaml.safe_load(text))


def _parse_prices(doc: Any) -> dict[str, float]:
    prices = doc.get("prices") if isinstance(doc, dict) else None
    if not isinstance(prices, dict):
        raise ValueError("prices.yaml: expected a 'prices' mapping of instance type to USD per hour")
    return {str(name): float(value) for name, value in prices.items()}


def price_per_hour(instance_type: str, override: float | None) -> float | None:
    """Price of one instance: the override when given, else the table's, else None (unknown type)."""
    if override is not None:
        return override
    return load_price_table().get(instance_type)


def accelerator_for(instance_type: str) -> str:
    """'gpu', 'inf1', 'inf2', 'trn1' or 'cpu', from the instance family of e.g. 'ml.g5.2xlarge'."""
    parts = instance_type.split(".")
    family = parts[1] if len(parts) >= 3 and parts[0] == "ml" else ""
    if family in _FAMILY_ACCELERATORS:
        return _FAMILY_ACCELERATORS[family]
    return _CLASS_ACCELERATORS.get(family[:1], "cpu")
