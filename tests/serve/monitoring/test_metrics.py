"""Prometheus metrics: one dedicated registry per instance, every metric exposed."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import REGISTRY

from serve.monitoring.metrics import TradingMetrics

NAMES = [
    "mft_equity",
    "mft_position",
    "mft_position_notional",
    "mft_orders_placed_total",
    "mft_orders_filled_total",
    "mft_orders_rejected_total",
    "mft_orders_unfilled_total",
    "mft_fees_total",
    "mft_rolling_sharpe",
    "mft_drawdown",
    "mft_drift_score",
    "mft_alerts_total",
    "mft_trading_state",
    "mft_loop_latency_seconds",
    "mft_exchange_api_latency_seconds",
    "mft_exchange_api_errors_total",
    "mft_telegram_requests_total",
    "mft_telegram_failures_total",
    "mft_telegram_dropped_total",
    "mft_telegram_queue_size",
]


def touch_everything(metrics: TradingMetrics) -> None:
    btc = "binance:BTC/USDT"
    metrics.equity.set(10_000.0)
    metrics.position.labels(instrument=btc).set(0.5)
    metrics.position_notional.labels(instrument=btc).set(21_000.0)
    metrics.orders_placed.labels(instrument=btc, side="buy").inc()
    metrics.orders_filled.labels(instrument=btc, side="buy").inc()
    metrics.orders_rejected.labels(instrument=btc, reason="position").inc()
    metrics.orders_unfilled.labels(instrument=btc, status="expired").inc()
    metrics.fees.labels(instrument=btc).inc(1.25)
    metrics.rolling_sharpe.set(1.4)
    metrics.drawdown.set(0.03)
    metrics.drift_score.labels(instrument=btc).set(0.4)
    metrics.alerts.labels(kind="drift").inc()
    metrics.set_trading_state("running", ["running", "paused", "flattening", "frozen"])
    metrics.loop_latency.observe(0.12)
    metrics.telegram_requests.labels(method="sendMessage").inc()
    metrics.telegram_failures.labels(method="sendMessage", reason="network").inc()
    metrics.telegram_dropped.inc()
    metrics.telegram_queue.set(3)
    with pytest.raises(ConnectionError), metrics.exchange_call("binance", "create_order"):
        raise ConnectionError("exchange down")


def test_exposition_contains_every_metric_name() -> None:
    metrics = TradingMetrics()
    touch_everything(metrics)
    text = metrics.exposition().decode()
    for name in NAMES:
        assert f"\n{name}" in text or text.startswith(name), name
    assert 'mft_fees_total{instrument="binance:BTC/USDT"} 1.25' in text
    assert 'mft_trading_state{state="paused"} 0.0' in text


def test_instances_have_separate_registries_and_skip_the_global_one() -> None:
    first, second = TradingMetrics(), TradingMetrics()
    first.equity.set(5.0)
    assert "mft_equity 5.0" in first.exposition().decode()
    assert "mft_equity 0.0" in second.exposition().decode()
    assert REGISTRY.get_sample_value("mft_equity") is None


def test_exchange_calls_are_timed_and_errors_counted() -> None:
    metrics = TradingMetrics()
    with metrics.exchange_call("kraken", "fetch_ohlcv"):
        pass
    with pytest.raises(TimeoutError), metrics.exchange_call("kraken", "fetch_ohlcv"):
        raise TimeoutError("exchange timeout")
    labels = {"exchange": "kraken", "endpoint": "fetch_ohlcv"}
    assert metrics.registry.get_sample_value("mft_exchange_api_latency_seconds_count", labels) == 2.0
    assert metrics.registry.get_sample_value("mft_exchange_api_errors_total", labels) == 1.0


def test_metrics_are_served_over_http_on_loopback() -> None:
    metrics = TradingMetrics()
    metrics.equity.set(1234.5)
    server = metrics.serve(0)  # ephemeral port on 127.0.0.1
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "mft_equity 1234.5" in body
