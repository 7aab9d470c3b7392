"""The whole stack on a local Ray: the execution actor, the policy service over HTTP and the paper broker.

A replay of stored bars gives the same trades and equity as ``mft backtest`` of the same trained
policy on the same span; killing the actor's process mid-cycle loses and repeats nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from features.data.registry import load_dataset
from rl import cli as backtest_cli
from serve.execution.actor import ReplaySpec, start_actor
from serve.execution.config import ExecutionConfig
from serve.execution.journal import Journal

START = datetime(2022, 8, 20, tzinfo=UTC)  # inside the tiny runs' validation span (never trained on)
END = datetime(2022, 8, 25, tzinfo=UTC)
BARS = 5 * 24


@pytest.fixture(scope="module")
def quiet_alerts(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("alerts") / "alerts.yaml"
    path.write_text("metrics: {enabled: false}\ntelegram: {enabled: false}\n")
    return str(path)


@pytest.fixture(scope="module")
def port(serve_ray: None) -> Iterator[int]:
    """Serve keeps the HTTP port of its first start: every deployment of this module uses one, and Serve
    stops at the end so the next module's service gets its own port."""
    from ray import serve

    from serve.http_proxy import free_port

    yield free_port()
    serve.shutdown()


def service_for(run: Path, port: int) -> str:
    from serve.trade_cli import start_policy_service

    return start_policy_service(str(run), port)


def replay(run: Path, url: str, folder: Path, alerts: str, **extra: Any) -> tuple[dict[str, Any], Journal]:
    import ray

    folder.mkdir(parents=True, exist_ok=True)
    config = ExecutionConfig.from_dict({
        "run_id": "replay", "policy_run": str(run), "serve_url": url, "state_dir": str(folder), "alerts": alerts,
        "journal": {"url": f"sqlite:///{folder / 'journal.db'}"}, **extra})
    actor = start_actor(config, ReplaySpec("binance_btc_1h", START, END))
    try:
        summary = ray.get(actor.run.remote(), timeout=600)
    finally:
        ray.kill(actor)
    return summary, Journal(config.journal.url)


def backtest(run: Path) -> Any:
    dataset = load_dataset("binance_btc_1h").dataset
    policy, setup = backtest_cli.load_trained(str(run), argparse.Namespace(fee=None, slippage_bps=None), dataset)
    return backtest_cli.run_on_span(policy, setup, backtest_cli.Span(START, END), "backtest")


def outcome(journal: Journal) -> dict[str, Any]:
    return {"orders": [(o.client_order_id, o.quantity, o.status, o.filled_quantity) for o in journal.orders()],
            "fills": [(f.exchange_fill_id, f.quantity, f.price, f.fee) for f in journal.fills()],
            "equity": [v for _, v in journal.equity_curve()]}


# Every action space gives identical trades: discrete, recurrent (stream memory in the service), continuous.
@pytest.mark.parametrize("member", ["ppo_mlp", "ppo_lstm", "ppo_weights"])
def test_replay_through_the_service_equals_the_backtest(member: str,
                                                        tiny_runs: dict[str, Path], quiet_alerts: str,
                                                        port: int, tmp_path: Path) -> None:
    run = tiny_runs[member]
    url = service_for(run, port)
    summary, journal = replay(run, url, tmp_path / member, quiet_alerts)
    assert summary["bars"] == BARS + 1 and summary["decisions"] == BARS
    expected = backtest(run)
    equity = np.array([v for _, v in journal.equity_curve()])
    np.testing.assert_array_equal(equity, expected.equity.to_numpy())
    filled = expected.ledger.filter(expected.ledger["status"] == "filled")
    fills = journal.fills()
    assert len(fills) == filled.height
    for fill, row in zip(fills, filled.iter_rows(named=True), strict=True):
        assert (fill.price, abs(fill.quantity), fill.fee) == (row["fill_price"], row["filled_quantity"], row["fee"])


def test_killing_the_actor_mid_cycle_loses_and_repeats_nothing(tiny_runs: dict[str, Path], quiet_alerts: str,
                                                              port: int, tmp_path: Path) -> None:
    run = tiny_runs["ppo_mlp"]
    url = service_for(run, port)
    _, whole = replay(run, url, tmp_path / "whole", quiet_alerts)
    marker = tmp_path / "crashed.txt"
    faults = {"crash_after_bars": 30, "crash_at": "order_journaled", "marker": str(marker)}
    summary, recovered = replay(run, url, tmp_path / "killed", quiet_alerts, faults=faults)
    assert marker.exists(), "the drill never crashed the actor"
    assert len(recovered.events("actor_started")) == 2  # Ray restarted the process once
    assert recovered.events("reconciliation") == []
    assert outcome(recovered) == outcome(whole)
    assert summary["bars"] > 0


def test_the_http_decider_against_the_service(tiny_runs: dict[str, Path], port: int) -> None:
    """The actor's client: a bad observation is refused with the problem named, not retried; memory resets."""
    from serve.execution.deciders import DecisionError, HttpDecider

    url = service_for(tiny_runs["ppo_lstm"], port)
    decider = HttpDecider(url, attempts=3, backoff_s=0.0)
    with pytest.raises(DecisionError, match=r"refused the request: HTTP 422.*observation has 7 values"):
        decider.decide("desk-1", np.zeros(7, dtype=np.float32))
    decider.reset("desk-1")  # a structural break: the stream starts with fresh memory
    decider.close()
