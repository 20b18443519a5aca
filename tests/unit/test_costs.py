"""Cost formulas, token sources, and the metrics recorded per request (fresh registry per test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from service.canonical import Decoded, TokenSource, Usage
from service.config.demo import demo_config_data
from service.config.model import parse_config
from service.pipeline.catalog import build_catalog
from service.pipeline.results import attributed_cost
from service.pipeline.tokens import LocalTokenizer, estimate_tokens, resolve_usage
from service.telemetry.amortized import TokenWindow
from service.telemetry.metrics import Metrics
from service.telemetry.trace import Trace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attributed_cost_formula() -> None:
    ep = build_catalog(parse_config(demo_config_data("http://x"), source="t")).endpoints["llama2-13b-inf2"]
    # price x count / 3600 x upstream seconds / concurrency slots
    assert attributed_cost(ep, 2.0) == pytest.approx(ep.price_per_hour * 1 / 3600 * 2.0 / 4)


def test_amortized_window_spreads_the_price_over_tokens() -> None:
    clock = Clock()
    window = TokenWindow(window_s=3600, bucket_s=60, clock=clock)
    assert window.cost_per_million("a", 3.6) is None
    clock.now += 1800
    window.add("a", 500_000)
    window.add("a", 500_000)
    # half an hour covered at $3.6/h = $1.8 for 1M tokens
    assert window.cost_per_million("a", 3.6) == pytest.approx(1.8)
    clock.now += 7200  # the tokens leave the window
    assert window.tokens("a") == 0 and window.cost_per_million("a", 3.6) is None


def test_estimate_rule() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


def test_backend_counts_win_and_the_weakest_source_is_reported() -> None:
    assert resolve_usage(Decoded((), 5, 7), "p", ["c"]).source is TokenSource.BACKEND
    mixed = resolve_usage(Decoded((), None, 7), "abcdefgh", ["c"])
    assert (mixed.prompt_tokens, mixed.completion_tokens, mixed.source) == (2, 7, TokenSource.ESTIMATE)


def test_local_tokenizer_counts_with_tokenizer_json(tmp_path: Path) -> None:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]"])
    tok.train_from_iterator(["the sea is blue and the sky is grey"], trainer)
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    counter = LocalTokenizer(path)
    usage = resolve_usage(Decoded((), None, None), "the sea is blue", ["the sky is grey today"], counter)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.source) == (4, 5, TokenSource.TOKENIZER)


def test_record_counts_once_per_request_with_bounded_labels() -> None:
    metrics = Metrics(CollectorRegistry())
    t = Trace("chat", started=10.0, finished=10.5, model="llama3-8b", endpoint="llama3-8b-g5", schema="tgi",
              accelerator="gpu", upstream_seconds=0.4, usage=Usage(11, 22, TokenSource.BACKEND), cost_usd=0.001)
    metrics.record(t)
    get = metrics.registry.get_sample_value
    labels = {"model": "llama3-8b", "endpoint": "llama3-8b-g5"}
    assert get("jumpgate_requests_total", {**labels, "api": "chat", "status": "200"}) == 1
    assert get("jumpgate_tokens_total", {**labels, "direction": "prompt", "source": "backend"}) == 11
    assert get("jumpgate_tokens_total", {**labels, "direction": "completion", "source": "backend"}) == 22
    assert get("jumpgate_cost_usd_total", {**labels, "tenant": "anonymous"}) == 0.001
    assert get("jumpgate_overhead_seconds_sum", {"api": "chat"}) == pytest.approx(0.1)
    assert metrics.window.tokens("llama3-8b-g5") == 33


def test_rejected_request_counts_as_rejected_without_endpoint() -> None:
    metrics = Metrics(CollectorRegistry())
    t = Trace("chat", started=1.0, finished=1.0, status=400, rejected="unsupported_parameter", model="llama3-8b")
    metrics.record(t)
    get = metrics.registry.get_sample_value
    assert get("jumpgate_rejected_total", {"model": "llama3-8b", "reason": "unsupported_parameter"}) == 1
    assert get("jumpgate_requests_total", {"model": "llama3-8b", "endpoint": "none", "api": "chat",
                                           "status": "400"}) == 1
