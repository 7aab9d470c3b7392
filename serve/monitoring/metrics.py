"""Every Prometheus metric of live trading, in one dedicated registry.

:class:`TradingMetrics` owns its own ``CollectorRegistry`` (never the global
one), so several instances, and tests, never collide.  Expose it with
:meth:`TradingMetrics.serve` (an HTTP endpoint on 127.0.0.1 by default) or
:meth:`TradingMetrics.exposition` (the text format, e.g. for a REST route).

Metric names (counters gain ``_total`` in the exposition)::

    mft_equity                         gauge      quote currency
    mft_position                       gauge      units, by instrument
    mft_position_notional              gauge      quote currency, by instrument
    mft_orders_placed_total            counter    by instrument, side
    mft_orders_filled_total            counter    by instrument, side
    mft_orders_rejected_total          counter    by instrument, reason (risk rule or exchange)
    mft_orders_unfilled_total          counter    by instrument, status (cancelled, expired)
    mft_fees_total                     counter    quote currency, by instrument
    mft_rolling_sharpe                 gauge      annualised
    mft_drawdown                       gauge      fraction of peak equity
    mft_drift_score                    gauge      by instrument (1.0 = break alarm)
    mft_alerts_total                   counter    by kind
    mft_trading_state                  gauge      1 for the current state, by state
    mft_loop_latency_seconds           histogram  bar close to order sent
    mft_exchange_api_latency_seconds   histogram  by exchange, endpoint
    mft_exchange_api_errors_total      counter    by exchange, endpoint
    mft_telegram_requests_total        counter    by method
    mft_telegram_failures_total        counter    by method, reason
    mft_telegram_dropped_total         counter    messages dropped from a full queue
    mft_telegram_queue_size            gauge      messages waiting
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

LOOP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TradingMetrics:
    """The metrics of one trading process, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "mft") -> None:
        self.registry = registry or CollectorRegistry()
        reg: dict[str, Any] = {"registry": self.registry, "namespace": namespace}
        self.equity = Gauge("equity", "Net worth in the quote currency", **reg)
        self.position = Gauge("position", "Position in units of the instrument", ["instrument"], **reg)
        self.position_notional = Gauge(
            "position_notional", "Position value in the quote currency", ["instrument"], **reg
        )
        self.orders_placed = Counter(
            "orders_placed", "Orders sent to the broker", ["instrument", "side"], **reg
        )
        self.orders_filled = Counter(
            "orders_filled", "Orders completely filled", ["instrument", "side"], **reg
        )
        self.orders_rejected = Counter(
            "orders_rejected",
            "Orders refused by the risk limits or the exchange",
            ["instrument", "reason"],
            **reg,
        )
        self.orders_unfilled = Counter(
            "orders_unfilled", "Orders that ended without a complete fill", ["instrument", "status"], **reg
        )
        self.fees = Counter("fees", "Fees paid in the quote currency", ["instrument"], **reg)
        self.rolling_sharpe = Gauge("rolling_sharpe", "Annualised rolling Sharpe ratio of equity", **reg)
        self.drawdown = Gauge("drawdown", "Drawdown from the equity peak, fraction", **reg)
        self.drift_score = Gauge("drift_score", "Structural-break score, 1.0 = alarm", ["instrument"], **reg)
        self.alerts = Counter("alerts", "Alerts raised", ["kind"], **reg)
        self.trading_state = Gauge("trading_state", "1 for the current trading state", ["state"], **reg)
        self.loop_latency = Histogram(
            "loop_latency_seconds", "Bar close to order sent", buckets=LOOP_BUCKETS, **reg
        )
        self.exchange_latency = Histogram(
            "exchange_api_latency_seconds",
            "Exchange API call duration",
            ["exchange", "endpoint"],
            buckets=API_BUCKETS,
            **reg,
        )
        self.exchange_errors = Counter(
            "exchange_api_errors", "Failed exchange API calls", ["exchange", "endpoint"], **reg
        )
        self.telegram_requests = Counter("telegram_requests", "Bot API requests sent", ["method"], **reg)
        self.telegram_failures = Counter(
            "telegram_failures", "Bot API requests that failed", ["method", "reason"], **reg
        )
        self.telegram_dropped = Counter(
            "telegram_dropped", "Messages dropped from the full notification queue", **reg
        )
        self.telegram_queue = Gauge("telegram_queue_size", "Messages waiting to be sent to Telegram", **reg)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric in this registry."""
        return generate_latest(self.registry)

    def serve(self, port: int, address: str = "127.0.0.1") -> Any:
        """Serve /metrics over HTTP; returns the server (``.shutdown()`` stops it)."""
        server, _thread = start_http_server(port, address, registry=self.registry)
        return server

    def set_trading_state(self, state: str, all_states: Iterable[str]) -> None:
        for name in all_states:
            self.trading_state.labels(state=name).set(1.0 if name == state else 0.0)

    @contextmanager
    def exchange_call(self, exchange: str, endpoint: str) -> Iterator[None]:
        """Time one exchange API call; an exception counts as an error and propagates."""
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.exchange_errors.labels(exchange=exchange, endpoint=endpoint).inc()
            raise
        finally:
            self.exchange_latency.labels(exchange=exchange, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
