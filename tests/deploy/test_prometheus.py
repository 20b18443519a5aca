"""deploy/prometheus and deploy/grafana: promtool accepts the config and the rules and passes the rules' unit
tests, and every query of the rules and of the dashboard names only series the gateway exports (or a
recording rule defines), filtered and grouped by labels those series have."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from service.telemetry.metrics import Metrics
from tests.procs import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "jumpgate.json"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
#: series Prometheus itself creates for each target
SYNTHETIC = {"up": TARGET_LABELS}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
        pytest.skip("promtool is not installed (Debian package prometheus; `make test` installs it)")
    return subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


def test_promtool_check_config() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in RULE_FILES} == {"recording.yml", "alerts.yml"}


def test_promtool_rule_unit_tests() -> None:
    """Exact values of the cost, error-ratio and token-rate rules and of the alerts (rules_test.yml)."""
    done = promtool("test", "rules", "rules_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_podmonitor_scrapes_the_metrics_path() -> None:
    doc = yaml.safe_load((PROMETHEUS / "podmonitor.yaml").read_text())
    assert doc["kind"] == "PodMonitor"
    # the metrics listener's port, 15 s like prometheus.yml; test_scraping.py counts its targets and labels
    assert doc["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                                   "honorLabels": True}]


# --- which series and labels exist -------------------------------------------------------------------------

SUFFIXES = {Counter: ("_total",), Gauge: ("",), Histogram: ("_bucket", "_count", "_sum")}


@cache
def exported() -> dict[str, frozenset[str]]:
    """Every series name the gateway exports, with its label names, from a fresh Metrics() registry."""
    names: dict[str, frozenset[str]] = {}
    for metric in vars(Metrics()).values():
        kind = next((k for k in SUFFIXES if isinstance(metric, k)), None)
        if kind is None:
            continue
        labels = frozenset(metric._labelnames) | TARGET_LABELS  # private, but no public accessor exists
        for suffix in SUFFIXES[kind]:
            names[metric._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


@cache
def recorded() -> dict[str, frozenset[str]]:
    """Recording rule name -> the labels its expression groups or joins by (an over-approximation)."""
    return {r["record"]: frozenset(grouping_labels(r["expr"])) - {"le"} for r in rules() if "record" in r}


def known() -> dict[str, frozenset[str]]:
    return {**exported(), **recorded(), **{k: frozenset(v) for k, v in SYNTHETIC.items()}}


def test_the_registry_exports_the_contract_series() -> None:
    names = exported()
    for name in ("jumpgate_requests_total", "jumpgate_tokens_total", "jumpgate_cost_usd_total",
                 "jumpgate_request_duration_seconds_bucket", "jumpgate_endpoint_price_per_hour_usd"):
        assert name in names
    assert {"model", "endpoint", "direction", "source"} <= names["jumpgate_tokens_total"]


# --- a small PromQL reader: enough to find series names, matchers and groupings ----------------------------

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
NAME = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")
SELECTOR = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def grafana_free(expr: str) -> str:
    return re.sub(r"\$\{?\w+\}?", "1m", expr)  # $__rate_interval and the like only appear inside [...]


def series_names(expr: str) -> set[str]:
    s = STRING.sub('""', grafana_free(expr))
    s = re.sub(r"\[[^\]]*\]", "", s)   # ranges and subqueries
    s = re.sub(r"\{[^}]*\}", "", s)    # label matchers
    s = GROUPING.sub("", s)
    found = set()
    for m in NAME.finditer(s):
        if s[m.end():].lstrip().startswith("(") or m.group().lower() in KEYWORDS:
            continue  # a function or an aggregation, or an operator
        found.add(m.group())
    return found


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in GROUPING.findall(STRING.sub('""', expr))
            for label in group.split(",") if label.strip()}


def matchers(expr: str) -> list[tuple[str, str]]:
    """(series name, label name) of every label matcher attached to a series name."""
    masked = STRING.sub(lambda m: '"' + "x" * (len(m.group()) - 2) + '"', grafana_free(expr))
    return [(m.group(1), label) for m in SELECTOR.finditer(masked) for label in MATCHER.findall(m.group(2))]


def problems(expr: str, names: dict[str, frozenset[str]]) -> list[str]:
    """Why `expr` may not work against the gateway's series: unknown series, unknown labels."""
    found = series_names(expr)
    out = [f"unknown series {n}" for n in sorted(found - names.keys())]
    for series, label in matchers(expr):
        if series in names and label not in names[series]:
            out.append(f"{series} has no label {label}")
    available = set().union(*(names.get(n, frozenset()) for n in found)) if found else set()
    out += [f"no series of the query has label {label}" for label in sorted(grouping_labels(expr) - available)]
    return out


@pytest.mark.parametrize(("expr", "expected"), [
    ('sum by (endpoint) (rate(jumpgate_tokens_total{direction="prompt"}[5m]))', []),
    ("histogram_quantile(0.99, sum by (le) (rate(jumpgate_request_duration_seconds_bucket[$__rate_interval])))", []),
    ("jumpgate_token_total * 1e6", ["unknown series jumpgate_token_total"]),
    ('rate(jumpgate_requests_total{tenant="a"}[5m])', ["jumpgate_requests_total has no label tenant"]),
    ("sum by (accelerator) (rate(jumpgate_tokens_total[5m]))", ["no series of the query has label accelerator"]),
    ('sum(jumpgate_cost_usd_total{model=~"by (x)|foo{bar}"}) offset 1h', []),
])
def test_the_query_checker_finds_unknown_series_and_labels(expr: str, expected: list[str]) -> None:
    assert problems(expr, known()) == expected


def test_every_rule_names_existing_series_and_labels() -> None:
    bad = {r.get("record") or r["alert"]: p for r in rules() if (p := problems(r["expr"], known()))}
    assert bad == {}


# --- the dashboard --------------------------------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def panels() -> list[dict[str, Any]]:
    return [p for top in dashboard()["panels"] for p in [top, *top.get("panels", [])]]


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "jumpgate" and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    for p in panels():
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
    used = {v for p in panels() for t in p.get("targets", []) for v in re.findall(r"\$(\w+)", t["expr"])}
    assert used - {"__rate_interval"} <= variables.keys()


def test_dashboard_covers_the_issue() -> None:
    text = " ".join(t["expr"] for p in panels() for t in p.get("targets", []))
    for needle in ("jumpgate_requests_total", "jumpgate_request_duration_seconds_bucket",
                   "jumpgate_time_to_first_token_seconds_bucket", "jumpgate_time_per_output_token_seconds_bucket",
                   "jumpgate_tokens_total", "endpoint:jumpgate_cost_per_1m_tokens_usd:1h",
                   "accelerator:jumpgate_cost_per_1m_tokens_usd:1h"):
        assert needle in text
    assert any(p.get("repeat") == "accelerator" for p in panels())  # GPU vs Inferentia2 side by side


def test_every_dashboard_query_names_existing_series_and_labels() -> None:
    queries = [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]
    queries += [(v["name"], v["query"]["query"]) for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    bad = {}
    for title, expr in queries:
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr)
        if m:  # a variable's values: the series must have that label
            names = known()
            found = [] if m.group(2) in names.get(m.group(1), ()) else [f"{m.group(1)} has no label {m.group(2)}"]
        else:
            found = problems(expr, known())
        if found:
            bad[title] = found
    assert bad == {}


def test_a_panel_naming_an_unknown_series_fails_the_check() -> None:
    assert problems('sum(rate(jumpgate_tokens_totl{endpoint=~"$endpoint"}[$__rate_interval]))', known()) == [
        "unknown series jumpgate_tokens_totl"]
