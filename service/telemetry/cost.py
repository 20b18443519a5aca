"""Instance prices, accelerator kinds and the two price models. Pure: the table is package data read once.

The built-in table (`service/data/prices.yaml`) holds SageMaker real-time inference on-demand prices for
us-east-1; its header says where they come from and which entries are unconfirmed. An endpoint's
`price_per_hour` overrides it (other regions, discounts, types the table lacks). The same file holds the
serverless compute and data-processing prices.

Price models (README "Metrics and cost" gives the formulas and their sources), each with
`attributed(upstream_seconds, bytes_in, bytes_out)`, the cost charged to one request:
- `InstanceHours`: the endpoint is paid per instance-hour whether or not it is used; a request is charged the
  endpoint's price per second for the seconds it held the endpoint, shared by its concurrency slots.
- `Serverless`: paid per second of compute at the configured memory size, plus data processed in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

import yaml

GIB = 2**30  # AWS bills data per GB of 2^30 bytes

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


@cache
def load_serverless_prices() -> tuple[float, float]:
    """(USD per second per GB of memory, USD per GB of data processed) from prices.yaml's `serverless` section."""
    text = resources.files("service").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    section = doc.get("serverless") if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        raise ValueError("prices.yaml: expected a 'serverless' mapping with compute and data prices")
    return float(section["compute_usd_per_gb_second"]), float(section["data_usd_per_gb"])


class PriceModel(Protocol):
    @property
    def kind(self) -> str:
        """instance-hours | serverless"""
        ...

    @property
    def hourly(self) -> float:
        """USD per hour paid whether or not requests arrive (0 for a pay-per-use model)."""
        ...

    def attributed(self, upstream_seconds: float, bytes_in: int, bytes_out: int) -> float:
        """USD charged to one request that held the endpoint `upstream_seconds` and moved these bytes."""
        ...


@dataclass(frozen=True, slots=True)
class InstanceHours:
    """price_per_hour x instance_count per hour; a request costs that per second x its upstream seconds,
    divided by the endpoint's concurrency slots (the request used one slot of the endpoint's capacity)."""

    price_per_hour: float  # one instance
    instance_count: int = 1
    max_concurrency: int = 1
    kind: str = "instance-hours"

    @property
    def hourly(self) -> float:
        return self.price_per_hour * self.instance_count

    def attributed(self, upstream_seconds: float, bytes_in: int = 0, bytes_out: int = 0) -> float:
        return self.hourly / 3600.0 * upstream_seconds / max(1, self.max_concurrency)


@dataclass(frozen=True, slots=True)
class Serverless:
    """Compute: upstream seconds x memory in GB x USD per GB-second. Data: (bytes in + bytes out) / 2^30 x USD per
    GB. Nothing is paid while idle. Upstream seconds include the network to SageMaker, so this slightly overstates
    the billed inference duration."""

    memory_mb: int
    compute_usd_per_gb_second: float
    data_usd_per_gb: float
    kind: str = "serverless"

    @classmethod
    def from_table(cls, memory_mb: int) -> Serverless:
        compute, data = load_serverless_prices()
        return cls(memory_mb, compute, data)

    @property
    def hourly(self) -> float:
        return 0.0

    @property
    def per_second(self) -> float:
        return self.memory_mb / 1024 * self.compute_usd_per_gb_second

    def attributed(self, upstream_seconds: float, bytes_in: int = 0, bytes_out: int = 0) -> float:
        return self.per_second * upstream_seconds + (bytes_in + bytes_out) / GIB * self.data_usd_per_gb
