"""The two price models against hand computations, and the serverless prices read from prices.yaml."""

from __future__ import annotations

import pytest

from service.telemetry import cost


def test_instance_hours_is_todays_attributed_cost() -> None:
    # ml.g5.2xlarge at 1.515 USD/h, 2 instances, 32 slots; a request held the endpoint 3.2 s.
    model = cost.InstanceHours(1.515, instance_count=2, max_concurrency=32)
    assert model.hourly == pytest.approx(3.03)
    assert model.attributed(3.2, 10_000, 50_000) == pytest.approx(3.03 / 3600 * 3.2 / 32)  # bytes are free
    assert cost.InstanceHours(1.0, max_concurrency=0).attributed(3600) == pytest.approx(1.0)  # 0 slots: 1


def test_serverless_is_compute_by_memory_plus_data_processed() -> None:
    model = cost.Serverless(memory_mb=3072, compute_usd_per_gb_second=0.00002, data_usd_per_gb=0.016)
    # 2.5 s at 3 GB: 2.5 x 3 x 0.00002 = 0.00015 USD; 1 MiB in + 3 MiB out = 4 MiB = 1/256 GB: 0.016 / 256.
    assert model.attributed(2.5, 2**20, 3 * 2**20) == pytest.approx(0.00015 + 0.016 / 256)
    assert model.hourly == 0.0 and model.kind == "serverless"
    assert model.per_second == pytest.approx(0.00006)


def test_serverless_prices_come_from_the_table() -> None:
    compute, data = cost.load_serverless_prices()
    assert (compute, data) == (0.00002, 0.016)
    model = cost.Serverless.from_table(6144)
    assert model.per_second == pytest.approx(6 * 0.00002)
    assert model.attributed(1.0) == pytest.approx(0.00012)
