"""The ledger table and the equity curve after an episode."""

from __future__ import annotations

import polars as pl

from envs import LEDGER_COLUMNS, EnvConfig, SchemeSpec, TradingEnv
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import SINGLE_BARS


def test_ledger_columns_types_and_nulls_for_unfilled_orders() -> None:
    env = TradingEnv(bar_panel({"binance:BTC/USDT": SINGLE_BARS}),
                     EnvConfig(window=2, mode="eval", costs=costs(), action=SchemeSpec("limit", {"max_offset": 0.02})))
    env.reset(seed=0)
    env.step([0.5, 0.0])  # expires
    env.step([0.5, -1.0])  # fills
    frame = env.ledger.to_frame()
    assert tuple(frame.columns) == LEDGER_COLUMNS
    assert frame.schema["decision_time"] == pl.Datetime("us", "UTC")
    assert frame.schema["fill_price"] == pl.Float64
    expired, filled = frame.row(0, named=True), frame.row(1, named=True)
    assert expired["fill_bar"] is None and expired["fill_time"] is None and expired["fill_price"] is None
    assert expired["filled_quantity"] == 0.0 and expired["notional"] == 0.0
    assert filled["fill_time"].isoformat() == "2024-01-01T03:00:00+00:00"
    assert filled["decision_time"].isoformat() == "2024-01-01T02:00:00+00:00"
    assert filled["notional"] == filled["filled_quantity"] * filled["fill_price"]
    assert env.ledger.fills_frame().height == 1


def test_equity_curve_is_indexed_by_bar_time() -> None:
    env = TradingEnv(bar_panel({"binance:BTC/USDT": SINGLE_BARS}), EnvConfig(window=2, mode="eval", costs=costs()))
    env.reset(seed=0)
    infos = [env.step(action)[4] for action in (1, 0, 0)]
    curve = env.ledger.equity_curve()
    assert curve.name == "net_worth" and str(curve.index.tz) == "UTC"
    assert curve.tolist() == [10_000.0] + [info["net_worth"] for info in infos]
    assert [t.hour for t in curve.index] == [1, 2, 3, 4]
    assert env.ledger.equity_frame()["bar"].to_list() == [1, 2, 3, 4]
