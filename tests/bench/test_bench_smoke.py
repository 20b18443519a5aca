"""The benchmark harness runs end to end in a tiny mode and prints every line of its report.

Only the report's shape and sanity are checked (each figure present and positive); no timing threshold:
performance is read from `make bench`, never asserted by a test on a shared machine.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.bench.report import LABELS
from tests.procs import ROOT

pytestmark = pytest.mark.e2e

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
DECIMAL = re.compile(r"[-+]?\d+\.\d+")  # the report prints measured figures with decimals
TINY = ["--quick", "--duration", "1", "--rss-requests", "300", "--scenarios", "plain,stream,embeddings,traced,memory"]


@pytest.fixture(scope="module")
def report() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", *TINY], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def line(report: list[str], label: str) -> str:
    found = [x for x in report if x.startswith(label)]
    assert found, f"no line starting with {label!r} in:\n" + "\n".join(report)
    assert "skipped" not in found[0], found[0]
    return found[0]


def numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def test_every_label_is_printed(report: list[str]) -> None:
    for label in LABELS:
        line(report, label)


def test_machine_and_command_are_named(report: list[str]) -> None:
    assert "nproc" in line(report, "machine:")
    assert line(report, "command:") == "command: python -m tests.bench.run " + " ".join(TINY)


@pytest.mark.parametrize("label", ["direct  c=1 ", "gateway c=1 ", "direct  c=32", "gateway c=32"])
def test_non_streaming_rows_have_rate_and_latencies(report: list[str], label: str) -> None:
    rps, p50, p99 = numbers(line(report, label).removeprefix(label))[:3]
    assert rps > 0 and 0 < p50 <= p99


@pytest.mark.parametrize("label", ["stream direct ", "stream gateway"])
def test_streaming_rows_have_ttft_and_64_tokens(report: list[str], label: str) -> None:
    row = line(report, label)
    rate, ttft, total_p50, total_p99 = numbers(row)[:4]
    assert rate > 0 and 0 < ttft <= total_p50 <= total_p99
    assert " 64-64 " in row, row


@pytest.mark.parametrize("label", ["embeddings direct  c=1 ", "embeddings gateway c=1 ", "embeddings direct  c=32",
                                   "embeddings gateway c=32"])
def test_embedding_rows_have_requests_and_vectors_per_second(report: list[str], label: str) -> None:
    rps, vectors, p50, p99 = numbers(line(report, label).removeprefix(label))[:4]
    assert rps > 0 and abs(vectors - rps * 32) <= 16 + 1 and 0 < p50 <= p99  # req/s is printed rounded


def test_embedding_overhead_is_reported(report: list[str]) -> None:
    # printed, never judged: the simulator's own embedding time dwarfs the gateway's, so its sign is noise
    assert DECIMAL.search(line(report, "embeddings overhead c=1:"))


@pytest.mark.parametrize("label", ["added latency c=1:", "TTFT overhead:", "relay cost per token:"])
def test_gateway_overheads_are_positive(report: list[str], label: str) -> None:
    # The first figure(s) of each line: gateway minus direct; the gateway always adds some work.
    figures = [float(x) for x in DECIMAL.findall(line(report, label).split("(")[0])]
    assert figures and all(x > 0 for x in figures), line(report, label)


def test_rss_is_read_before_and_after(report: list[str]) -> None:
    (warm,) = numbers(line(report, "RSS after warm-up:").split("(")[0])
    after = line(report, "RSS after 300 more requests:")
    assert warm > 10 and numbers(after)[1] > 10


def test_litellm_is_not_run_in_tiny_mode(report: list[str]) -> None:
    assert [x for x in report if x.startswith("LiteLLM")] == ["LiteLLM proxy: not run"]


@pytest.mark.parametrize("label", ["tracing off plain c=32", "tracing on  plain c=32", "tracing off stream c=1",
                                   "tracing on  stream c=1"])
def test_tracing_rows_have_rate_latencies_and_cpu_per_request(report: list[str], label: str) -> None:
    rps, p50, p99, *cpu = numbers(line(report, label).removeprefix(label))
    assert rps > 0 and 0 < p50 <= p99 and len(cpu) == 2 and all(c > 0 for c in cpu)


def test_tracing_overhead_counts_every_span_it_exported(report: list[str]) -> None:
    row = line(report, "tracing overhead:")
    got, expected = (int(x) for x in re.search(r"receiver (\d+) of (\d+)", row).groups())  # type: ignore[union-attr]
    assert expected > 0 and got == expected, row  # a traced run whose spans never arrived measured nothing
