"""Backtest-spec style scenarios: hand-written bars, a list of actions, the exact expected outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from envs import EnvConfig, TradingEnv
from features.panel import FeaturePanel

# One instrument: decisions start at bar 1 (window 2); bar 2 opens above bar 1's close.
SINGLE_BARS = [
    # open,  high,  low,   close, volume
    (100.0, 101.0, 99.0, 100.0, 1e6),  # 0
    (100.0, 102.0, 99.0, 101.0, 1e6),  # 1  first decision
    (102.0, 104.0, 101.0, 103.0, 1e6),  # 2
    (103.0, 105.0, 100.0, 104.0, 1e6),  # 3
    (104.0, 106.0, 102.0, 105.0, 1e6),  # 4
    (106.0, 108.0, 104.0, 107.0, 1e6),  # 5
    (107.0, 109.0, 105.0, 108.0, 1e6),  # 6
    (108.0, 110.0, 106.0, 109.0, 1e6),  # 7
]

# Two venues: bar 2 opens below bar 1's close on both, so two half-size buys both fit in the cash.
BINANCE_BARS = [
    (100.0, 101.0, 99.0, 100.0, 1e6),
    (100.0, 102.0, 99.0, 101.0, 1e6),
    (100.5, 103.0, 100.0, 102.0, 1e6),
    (102.0, 104.0, 101.0, 103.0, 1e6),
    (103.0, 105.0, 102.0, 104.0, 1e6),
    (104.0, 106.0, 103.0, 105.0, 1e6),
]
BITSTAMP_BARS = [
    (50.0, 51.0, 49.0, 50.0, 1e6),
    (50.0, 51.0, 49.0, 50.5, 1e6),
    (50.25, 52.0, 50.0, 51.0, 1e6),
    (51.0, 52.0, 50.0, 51.5, 1e6),
    (51.5, 53.0, 51.0, 52.0, 1e6),
    (52.0, 53.0, 51.0, 52.5, 1e6),
]

CASH = 10_000.0
SLIP = 0.001  # 10 bps
TAKER = 0.001
MAKER = 0.0005


@dataclass
class Fill:
    """One expected ledger row."""

    decision_bar: int
    side: str
    quantity: float
    price: float | None = None  # None: the order did not fill
    fee: float = 0.0
    slippage: float = 0.0
    status: str = "filled"
    instrument: str = "binance:BTC/USDT"
    fill_bar: int | None = None  # default: decision_bar + 1 when filled

    def row(self) -> dict[str, Any]:
        filled = self.status == "filled"
        return {
            "decision_bar": self.decision_bar, "instrument": self.instrument, "side": self.side,
            "status": self.status, "fill_bar": (self.fill_bar or self.decision_bar + 1) if filled else None,
            "filled_quantity": self.quantity if filled else 0.0, "fill_price": self.price,
            "fee": self.fee, "slippage": self.slippage,
        }


@dataclass
class Step:
    """Expected account after one step (at the close of the bar it filled on)."""

    cash: float
    units: Sequence[float]
    net_worth: float
    placed: int = 0
    filled: int = 0
    unfilled: int = 0
    fees: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run(env: TradingEnv, actions: Sequence[Any]) -> list[dict[str, Any]]:
    """Step through ``actions``; a callable action is called with the env first (to change it mid-run)."""
    _, info = env.reset(seed=0)
    infos = [info]
    for action in actions:
        _, _, terminated, _, info = env.step(action(env) if callable(action) else action)
        infos.append(info)
        assert not terminated
    return infos


def check(
    env: TradingEnv, actions: Sequence[Any], steps: Sequence[Step], fills: Sequence[Fill]
) -> list[dict[str, Any]]:
    """Run ``actions``, compare every step's info and every ledger row with the expectations; returns the infos."""
    infos = run(env, actions)
    assert len(infos) == len(steps) + 1
    for number, (info, want) in enumerate(zip(infos[1:], steps, strict=True), start=1):
        where = f"step {number}"
        assert info["cash"] == pytest.approx(want.cash, rel=1e-9, abs=1e-6), where
        assert list(info["positions"]) == pytest.approx(list(want.units), rel=1e-9, abs=1e-9), where
        assert info["net_worth"] == pytest.approx(want.net_worth, rel=1e-9), where
        counts = (info["orders_placed"], info["orders_filled"], info["orders_unfilled"])
        assert counts == (want.placed, want.filled, want.unfilled), where
        assert info["fees_paid"] == pytest.approx(want.fees, rel=1e-9, abs=1e-12), where
        for key, value in want.extra.items():
            assert info[key] == pytest.approx(value, rel=1e-9, abs=1e-12), f"{where}: {key}"
    ledger = env.ledger.to_frame()
    assert ledger.height == len(fills)
    for row, fill in zip(ledger.iter_rows(named=True), fills, strict=True):
        expected = fill.row()
        got = {key: row[key] for key in expected}
        for key in ("filled_quantity", "fee", "slippage"):
            assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), f"order {row['order_id']}: {key}"
        if expected["fill_price"] is not None:
            assert got["fill_price"] == pytest.approx(expected["fill_price"], rel=1e-12), f"order {row['order_id']}"
        else:
            assert got["fill_price"] is None
        for key in ("decision_bar", "instrument", "side", "status", "fill_bar"):
            assert got[key] == expected[key], f"order {row['order_id']}: {key}"
    return infos


def make(panel: FeaturePanel, **config: Any) -> TradingEnv:
    config.setdefault("window", 2)
    config.setdefault("mode", "eval")
    config.setdefault("initial_cash", CASH)
    return TradingEnv(panel, EnvConfig(**config))
