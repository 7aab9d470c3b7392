"""The environments on the bundled real Binance bars, with features computed here."""

from __future__ import annotations

import time

import numpy as np
import pytest

from envs import EnvConfig, SchemeSpec, TradingEnv, run_policy
from tests.envs.helpers import costs, real_panel


@pytest.fixture(scope="module")
def panel():  # type: ignore[no-untyped-def]
    return real_panel(("BTC", "ETH"), last=3000)


def test_buy_and_hold_btc_ends_at_units_times_the_last_close(panel) -> None:  # type: ignore[no-untyped-def]
    config = EnvConfig(window=32, mode="eval", costs=costs(), instruments=("binance:BTC/USDT",))
    env = TradingEnv(panel, config)
    result = run_policy(env, lambda obs, info: 1 if info["bar"] == 31 else 0)
    first = panel.ohlcv[32, 0]  # the buy decided at bar 31 fills at bar 32's open
    price = first[0] * 1.001
    units = 10_000 / (price * 1.001)
    assert result.ledger["filled_quantity"][0] == pytest.approx(units, rel=1e-9)
    assert result.final_net_worth == pytest.approx(units * panel.ohlcv[-1, 0, 3], rel=1e-9)
    assert len(result.equity) == panel.n_bars - 31
    assert result.equity.index[-1].to_datetime64() == panel.timestamps[-1]


def test_random_trading_on_two_coins_keeps_exact_books(panel) -> None:  # type: ignore[no-untyped-def]
    env = TradingEnv(panel, EnvConfig(mode="eval", action=SchemeSpec("weights", {"rebalance_threshold": 0.02})))
    env.action_space.seed(0)
    result = run_policy(env, lambda obs, info: env.action_space.sample(), seed=0)
    fills = result.ledger.filter(result.ledger["status"] == "filled")
    assert fills.height > 100 and (fills["fee"] > 0).all() and (fills["slippage"] > 0).all()
    last = result.infos[-1]
    close = panel.close[last["bar"]]
    assert last["net_worth"] == pytest.approx(last["cash"] + float(np.dot(last["positions"], close)), rel=1e-12)
    assert last["cash"] >= 0 and min(last["positions"]) >= 0
    spent = sum(float(fills[column].sum()) for column in ("fee", "slippage", "impact"))
    assert result.totals["fees"] + result.totals["slippage"] + result.totals["impact"] == pytest.approx(spent)


def test_construction_on_45000_real_bars_is_quick() -> None:
    full = real_panel(("BTC",), last=44_900)
    started = time.perf_counter()
    env = TradingEnv(full, EnvConfig())
    elapsed = time.perf_counter() - started
    assert full.n_bars == 44_900
    assert elapsed < 3.0  # typically ~0.2 s; generous for a shared machine
    env.reset(seed=0)
    for _ in range(100):
        env.step(env.action_space.sample())
