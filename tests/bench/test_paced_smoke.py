"""The paced-streams scenario runs end to end in a tiny mode (unpaced, a few tokens, two streams per client).

Counts are checked exactly (every stream completes, every token arrives, on each of the three paths: direct,
through the floor proxy, through the gateway) and every line of the report is present with its figures; no
timing is judged: performance is read from the benchmark's output.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.bench.paced import PATHS
from tests.bench.paced_report import LABELS
from tests.procs import ROOT

pytestmark = pytest.mark.e2e

SERIES, TOKENS, ROUNDS = (3, 5), 4, 2
TINY = ["--scenarios", "paced", "--paced-streams", ",".join(map(str, SERIES)), "--paced-tokens", str(TOKENS),
        "--paced-ttft-ms", "0", "--paced-gap-ms", "0", "--paced-rounds", str(ROUNDS)]
ROW = re.compile(r"^paced N=(?P<n>\d+) +(?P<path>direct|floor|gateway) +(?P<done>\d+)/(?P<failed>\d+)/(?P<cut>\d+) +"
                 r"(?P<read>\d+)/(?P<offered>\d+) +(?P<share>\d+) % +(?P<rest>.*)$")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
SIGNED = re.compile(r"[-+]\d+\.\d+ ms")
FLOOR = re.compile(r"^paced floor N=(?P<n>\d+): relay floor (?P<floor>\d+\.\d) µs/token \(a byte-forwarding proxy\); "
                   r"gateway (?P<gw>\d+\.\d) µs/token = floor \+ (?P<work>-?\d+\.\d) µs of gateway work; "
                   r"floor-added inter-token gap p99 [-+]\d+\.\d+ ms \(floor minus direct\)$")
FIGURES = {"direct": 9, "floor": 10, "gateway": 11}


@pytest.fixture(scope="module")
def report() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "tests.bench.run", *TINY], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def lines(report: list[str], label: str) -> list[str]:
    found = [x for x in report if x.startswith(label)]
    assert found, f"no line starting with {label!r} in:\n" + "\n".join(report)
    return found


def test_header_and_every_label_are_printed(report: list[str]) -> None:
    for label in ("machine:", "command:", "code:", *LABELS):
        lines(report, label)
    assert lines(report, "command:") == ["command: python -m tests.bench.run " + " ".join(TINY)]


@pytest.mark.parametrize("n", SERIES)
@pytest.mark.parametrize("path", PATHS)
def test_every_stream_completes_with_every_token(report: list[str], n: int, path: str) -> None:
    rows = [m for x in lines(report, f"paced N={n} ") if (m := ROW.match(x)) and m["path"] == path]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (int(row["done"]), int(row["failed"]), int(row["cut"])) == (n * ROUNDS, 0, 0), row.string
    assert int(row["read"]) == int(row["offered"]) == n * ROUNDS * TOKENS, row.string
    assert row["share"] == "100"
    # TTFT p50/p99, gap p50/p99, CPU % of five processes; the floor and gateway rows add their relaying process's
    # CPU per token, the gateway row its RSS per stream.
    figures = row["rest"].split("(")[0]  # notes in parentheses (a late start, errors) carry numbers too
    assert len(NUMBER.findall(figures)) == FIGURES[path], row.string


@pytest.mark.parametrize("n", SERIES)
def test_gateway_minus_direct_is_printed(report: list[str], n: int) -> None:
    (line,) = lines(report, f"paced added N={n}:")
    assert len(SIGNED.findall(line)) == 4, line  # TTFT p50, p99, gap p50, p99: each with its sign


@pytest.mark.parametrize("n", SERIES)
def test_the_floor_line_splits_the_gateway_cost(report: list[str], n: int) -> None:
    (line,) = lines(report, f"paced floor N={n}:")
    match = FLOOR.match(line)
    assert match, line
    assert abs(float(match["floor"]) + float(match["work"]) - float(match["gw"])) <= 0.11, line  # each rounded


def test_the_verdict_names_a_tested_n_or_none(report: list[str]) -> None:
    (line,) = lines(report, "paced largest N:")
    verdict = line.split(":", 1)[1].split()[0]
    assert verdict == "none" or int(verdict) in SERIES, line
    judged = re.findall(r"\b(\d+) (pass|fail|not judged)", line.split("tested:", 1)[1])
    assert [int(n) for n, _ in judged] == list(SERIES), line
    expected = "none"
    for n, v in judged:  # the largest N such that it and every smaller N passed (which passes depends on timing)
        if v != "pass":
            break
        expected = n
    assert verdict == expected, line


def test_the_client_load_is_reported(report: list[str]) -> None:
    (line,) = lines(report, "paced client:")
    assert "load process CPU at most" in line and "event-loop lag p99" in line
