"""`jumpgate serve --workers N`: one set of metrics over all workers, and every worker on uvloop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config.demo import demo_config_data
from tests.procs import Proc, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Path]]:
    tmp = tmp_path_factory.mktemp("workers")
    metrics_dir = tmp / "prom"
    with running_stack(tmp, demo_config_data, extra=["--workers", "2"],
                       env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as (_, gw):
        yield gw, metrics_dir


def requests_total(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    line = 'jumpgate_requests_total{api="chat",endpoint="llama3-8b-g5",model="llama3-8b",status="200"}'
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))


def test_metrics_count_every_workers_requests(two_workers: tuple[Proc, Path]) -> None:
    gw, metrics_dir = two_workers
    body = {"model": "llama3-8b", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    # a fresh connection per request, so the kernel spreads them over both workers
    for _ in range(40):
        assert httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
    # each worker process keeps its own sample file; the scrape adds them up, whichever worker answers it
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2
    assert [requests_total(gw.url) for _ in range(6)] == [40.0] * 6


def test_every_worker_runs_on_uvloop(two_workers: tuple[Proc, Path]) -> None:
    loops = {httpx.get(two_workers[0].url + "/admin/status", timeout=10).json()["event_loop"] for _ in range(10)}
    assert loops == {"uvloop.Loop"}
