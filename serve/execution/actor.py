"""The execution actor: a Ray actor running one :class:`TradingSession`, restarted by Ray after a crash.

``start_actor`` creates it with ``max_restarts`` and ``max_task_retries``: when its process dies
mid-cycle (a crash, an OOM kill, a node loss), Ray starts a new one with the same arguments, the
constructor recovers from the journal (:meth:`TradingSession.open`), and the interrupted ``run``
call is retried and carries on from the first unprocessed bar.  The actor is threaded, so operator
commands (status, pause, kill switch...) are answered while ``run`` trades.  It asks for no CPU:
it mostly waits for bars, the policy service and the exchange.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from features.data.schema import DataError
from serve.commands import ControlResult, PnlReport, PositionReport, StatusReport
from serve.execution.brokers import ExecutionBroker
from serve.execution.config import ExecutionConfig
from serve.execution.deciders import HttpDecider
from serve.execution.paper_broker import PaperBroker
from serve.execution.risk import KillMode
from serve.execution.session import TradingSession, paper_state_path
from serve.execution.sources import BarSource, CcxtBarSource, ReplaySource
from serve.execution.spec import TradingSpec
from serve.execution.trader_hooks import CrashDrill, HookChain, MonitoringHooks, TraderHooks
from serve.monitoring.anomalies import BarAnomalyMonitor
from serve.monitoring.config import AlertsConfig
from serve.monitoring.drift import DriftMonitor
from serve.monitoring.metrics import TradingMetrics
from serve.monitoring.performance import PerformanceMonitor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySpec:
    """A stored dataset to replay: a registry name or a file, optional symbols and a span."""

    data: str
    start: datetime
    end: datetime | None = None
    symbols: tuple[str, ...] | None = None


ApiCallHook = Callable[[str, float, bool], None]


def api_call_metrics(metrics: TradingMetrics, exchange: str) -> ApiCallHook:
    """Export every exchange API call's latency (the research plan's 50 ms budget) and failures."""

    def observe(method: str, seconds: float, ok: bool) -> None:
        metrics.exchange_latency.labels(exchange=exchange, endpoint=method).observe(seconds)
        if not ok:
            metrics.exchange_errors.labels(exchange=exchange, endpoint=method).inc()

    return observe


def make_source(config: ExecutionConfig, spec: TradingSpec, replay: ReplaySpec | None,
                on_api_call: ApiCallHook | None = None) -> BarSource:
    if replay is not None:
        from features.data.registry import load_dataset

        dataset = load_dataset(replay.data, symbols=list(replay.symbols) if replay.symbols else None).dataset
        return ReplaySource(dataset, spec.keys, replay.start, replay.end)
    import ccxt

    exchange = config.exchange.id or spec.keys[0].exchange
    client = getattr(ccxt, exchange)({"enableRateLimit": True, **config.exchange.options})
    return CcxtBarSource(client, spec.keys, history_bars=config.exchange.history_bars, on_api_call=on_api_call)


def make_broker(config: ExecutionConfig, spec: TradingSpec, rows: np.ndarray, times: np.ndarray, *,
                live: bool, on_api_call: ApiCallHook | None = None) -> ExecutionBroker:
    """The paper broker unless ``live`` (an explicit opt-in) and the config both say live."""
    if config.mode == "live" or live:
        if not (config.mode == "live" and live):
            raise DataError("live trading needs both mode: live in the execution config and the --live flag")
        from serve.execution.ccxt_broker import make_ccxt_broker

        exchange = config.exchange.id or spec.keys[0].exchange
        return make_ccxt_broker(exchange, spec.instruments, live=True, config_overrides=config.exchange.options,
                                on_api_call=on_api_call)
    cash = config.initial_cash if config.initial_cash is not None else spec.env_config.initial_cash
    return PaperBroker(spec.keys, spec.env_config, history=rows, times=times, initial_cash=cash,
                       state_path=paper_state_path(config))


def make_hooks(config: ExecutionConfig, spec: TradingSpec, metrics: TradingMetrics
               ) -> tuple[TraderHooks, list[Any]]:
    """Monitoring hooks from the alerts config, the recovery drill if configured; and things to close."""
    alerts = AlertsConfig.load(config.alerts)
    closers: list[Any] = []
    if alerts.metrics.enabled:
        closers.append(metrics.serve(alerts.metrics.port, alerts.metrics.address))
    reporter = _telegram_reporter(alerts, metrics, closers)
    performance = PerformanceMonitor(dataclasses.replace(alerts.performance, timeframe=spec.timeframe))
    drift = {name: DriftMonitor(alerts.drift, name) for name in spec.instruments}
    anomalies = {k.instrument: BarAnomalyMonitor(k.instrument, k.timeframe, alerts.anomalies) for k in spec.keys}
    hooks: TraderHooks = MonitoringHooks(metrics, reporter, performance, drift, anomalies)
    faults = config.faults
    if faults.crash_after_bars is not None:
        marker = faults.marker or str(paper_state_path(config).with_suffix(".crashed"))
        hooks = HookChain(hooks, CrashDrill(faults.crash_after_bars, faults.crash_at, marker))
    return hooks, closers


def _telegram_reporter(alerts: Any, metrics: Any, closers: list[Any]) -> Any:
    if not alerts.telegram.is_enabled():
        return None
    from serve.notify.reporter import ActivityReporter
    from serve.notify.telegram import TelegramNotifier

    notifier = TelegramNotifier(alerts.telegram.token() or "", alerts.telegram.all_chat_ids(), alerts.telegram,
                                metrics).start()
    closers.append(notifier)
    return ActivityReporter(notifier, alerts.telegram.daily_summary_hour_utc)


class ExecutionActor:
    """The body of the Ray actor (also usable in-process, which is what ``--no-ray`` does)."""

    def __init__(self, config: ExecutionConfig, replay: ReplaySpec | None = None, live: bool = False) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if not config.policy_run:
            raise DataError("policy_run is empty: name the training run to trade (mft trade --policy runs/<name>)")
        spec = TradingSpec.from_run(config.policy_run)
        self.decider = HttpDecider(config.serve_url)
        self.metrics = TradingMetrics()
        hooks, self._closers = make_hooks(config, spec, self.metrics)
        api_calls = api_call_metrics(self.metrics, config.exchange.id or spec.keys[0].exchange)
        self.session = TradingSession.open(
            config, spec, make_source(config, spec, replay, api_calls), self.decider,
            lambda rows, times: make_broker(config, spec, rows, times, live=live, on_api_call=api_calls),
            hooks=hooks)
        self.session.trader.journal.record_event("actor_started", {"mode": self.session.trader.broker.mode,
                                                                   "replay": replay.data if replay else None})
        self._command_bot = self._start_command_bot()

    def _start_command_bot(self) -> Any:
        from serve.monitoring.config import AlertsConfig

        telegram = AlertsConfig.load(self.session.config.alerts).telegram
        if not telegram.is_enabled():
            return None
        from serve.commands import Allowlist, CommandHandler
        from serve.notify.telegram_bot import TelegramCommandBot

        handler = CommandHandler(self.session, Allowlist(telegram.all_chat_ids(), transport="telegram"))
        return TelegramCommandBot(handler, telegram.token() or "", telegram).start()

    def run(self, max_bars: int | None = None) -> dict[str, Any]:
        summary = self.session.run(max_bars)
        return dataclasses.asdict(summary)

    def stop(self) -> None:
        self.session.stop()

    def status(self) -> StatusReport:
        return self.session.status()

    def positions(self) -> list[PositionReport]:
        return self.session.positions()

    def pnl(self) -> PnlReport:
        return self.session.pnl()

    def pause(self) -> ControlResult:
        return self.session.pause()

    def resume(self) -> ControlResult:
        return self.session.resume()

    def kill_switch(self, mode: str) -> ControlResult:
        return self.session.kill_switch(KillMode(mode))

    def close(self) -> None:
        if self._command_bot is not None:
            self._command_bot.stop()
        for closer in self._closers:
            for name in ("close", "shutdown"):
                if hasattr(closer, name):
                    getattr(closer, name)()
                    break
        self.decider.close()
        self.session.trader.broker.close()


def start_actor(config: ExecutionConfig, replay: ReplaySpec | None = None, *, live: bool = False,
                max_restarts: int = 3) -> Any:
    """The actor on the connected Ray cluster, named ``mft-trader-<run_id>``; Ray restarts it on a crash."""
    import ray

    remote = ray.remote(ExecutionActor).options(  # type: ignore[attr-defined]
        name=f"mft-trader-{config.run_id}", max_restarts=max_restarts, max_task_retries=max_restarts,
        max_concurrency=4, num_cpus=0,
    )
    return remote.remote(config, replay, live)
