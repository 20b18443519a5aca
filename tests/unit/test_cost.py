"""The built-in price table, overrides and the accelerator mapping."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from service.telemetry import cost


def test_table_header_states_source_region_and_date() -> None:
    doc = yaml.safe_load(resources.files("service").joinpath("data/prices.yaml").read_text(encoding="utf-8"))
    assert doc["region"] == "us-east-1"
    assert doc["source"]
    assert doc["as_of"]


@pytest.mark.parametrize("family", ["ml.g4dn", "ml.g5", "ml.g6", "ml.g6e", "ml.p4d", "ml.p5", "ml.inf1", "ml.inf2",
                                    "ml.trn1"])
def test_table_covers_family(family: str) -> None:
    assert any(name.startswith(family + ".") for name in cost.load_price_table())


def test_table_values_are_positive_and_names_well_formed() -> None:
    table = cost.load_price_table()
    assert all(price > 0 for price in table.values())
    assert all(name.startswith("ml.") and name.count(".") == 2 for name in table)


def test_table_is_cached() -> None:
    assert cost.load_price_table() is cost.load_price_table()


@pytest.mark.parametrize(("instance_type", "override", "expected"), [
    ("ml.g5.2xlarge", None, 1.515),
    ("ml.g5.xlarge", None, 1.408),
    ("ml.inf2.xlarge", None, 0.99),
    ("ml.g5.2xlarge", 2.0, 2.0),          # the override wins over the table
    ("ml.g5.2xlarge", 0.0, 0.0),          # a zero override (e.g. a sunk reservation) is still an override
    ("ml.x99.mega", 3.25, 3.25),          # types the table lacks need an override
    ("ml.x99.mega", None, None),
])
def test_price_per_hour(instance_type: str, override: float | None, expected: float | None) -> None:
    assert cost.price_per_hour(instance_type, override) == expected


@pytest.mark.parametrize(("instance_type", "expected"), [
    ("ml.g4dn.xlarge", "gpu"),
    ("ml.g5.2xlarge", "gpu"),
    ("ml.g6e.12xlarge", "gpu"),
    ("ml.p4d.24xlarge", "gpu"),
    ("ml.p5.48xlarge", "gpu"),
    ("ml.inf1.xlarge", "inf1"),
    ("ml.inf2.24xlarge", "inf2"),
    ("ml.trn1.32xlarge", "trn1"),
    ("ml.trn1n.32xlarge", "trn1"),
    ("ml.m5.xlarge", "cpu"),
    ("ml.c7i.large", "cpu"),
    ("not-an-instance", "cpu"),
    ("", "cpu"),
])
def test_accelerator_for(instance_type: str, expected: str) -> None:
    assert cost.accelerator_for(instance_type) == expected


def test_every_table_entry_maps_to_a_known_accelerator() -> None:
    assert {cost.accelerator_for(t) for t in cost.load_price_table()} <= {"gpu", "inf1", "inf2", "trn1"}
