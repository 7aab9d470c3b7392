"""The paper broker: hand-written bars and the fills the environment's rules give, and its durability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from envs import EnvConfig
from features.data.schema import BarKey
from serve.execution.paper_broker import PaperBroker
from serve.execution.records import BarRecord, OrderRecord, OrderStatus

KEY = BarKey("binance", "BTC/USDT", "1h")
NAME = KEY.instrument
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FEE = 0.001
# No slippage or impact: fill prices are the bar's open or the limit, so every figure is hand-checkable.
CONFIG = EnvConfig.from_dict({
    "initial_cash": 1000.0,
    "costs": {"slippage_bps": 0.0, "slippage_vol_mult": 0.0, "impact_coef": 0.0, "min_order_notional": 10.0,
              "default_fees": {"maker": FEE, "taker": FEE}},
})


def history(n: int = 3, price: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    rows = np.tile([price, price, price, price, 1000.0], (n, 1, 1)).astype(np.float64)
    times = np.array([np.datetime64(T0.replace(tzinfo=None) + timedelta(hours=h), "us") for h in range(n)])
    return rows, times


def bar(hour: int, o: float, h: float, lo: float, c: float) -> dict[str, BarRecord]:
    return {NAME: BarRecord(NAME, T0 + timedelta(hours=hour), o, h, lo, c, 1000.0)}


def broker(tmp_path: Path | None = None) -> PaperBroker:
    rows, times = history()
    state = None if tmp_path is None else tmp_path / "paper.json"
    return PaperBroker((KEY,), CONFIG, history=rows, times=times, state_path=state)


def order(cid: str, quantity: float, limit: float | None = None, ttl: int | None = None) -> OrderRecord:
    return OrderRecord(cid, NAME, quantity, limit, ttl_bars=None if limit is None else (ttl or 1))


# (case, order quantity, limit, ttl, next bars (open, high, low, close), expected status, fill price, filled qty)
SCENARIOS = [
    ("market buy fills at the next open", 2.0, None, None, [(101, 103, 100, 102)], OrderStatus.FILLED, 101.0, 2.0),
    ("buy limit under the range rests, then fills at the limit", 1.0, 99.0, 2,
     [(101, 102, 100, 100), (100, 100.5, 98.5, 99.5)], OrderStatus.FILLED, 99.0, 1.0),
    ("buy limit fills at the open when the bar opens through it", 1.0, 99.0, 1, [(97, 98, 96, 97)],
     OrderStatus.FILLED, 97.0, 1.0),
    ("sell limit never reached expires after its ttl", -1.0, 105.0, 1, [(101, 104, 100, 102)],
     OrderStatus.EXPIRED, None, 0.0),
    ("a buy larger than the cash is cut to what the cash pays", 20.0, None, None, [(100, 101, 99, 100)],
     OrderStatus.FILLED, 100.0, 1000.0 / (100.0 * (1 + FEE)) * (1 - 1e-12)),
    ("selling with nothing held is rejected (long only)", -1.0, None, None, [(100, 101, 99, 100)],
     OrderStatus.REJECTED, None, 0.0),
]


@pytest.mark.parametrize(("case", "quantity", "limit", "ttl", "bars", "status", "price", "filled"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_fills_follow_the_environment_rules(case: str, quantity: float, limit: float | None, ttl: int | None,
                                            bars: list[tuple[float, ...]], status: OrderStatus,
                                            price: float | None, filled: float) -> None:
    paper = broker()
    placed = paper.submit(order("o1", quantity, limit, ttl))
    assert placed.status is OrderStatus.OPEN
    fills = []
    for hour, ohlc in enumerate(bars, start=3):
        events = paper.on_bar(bar(hour, *ohlc))
        fills += list(events.fills)
    final = paper.order_state("o1")
    assert final is not None and final.status is status
    if price is None:
        assert fills == []
        assert paper.account().cash == pytest.approx(1000.0)
        return
    (fill,) = fills
    assert fill.price == pytest.approx(price) and fill.quantity == pytest.approx(filled, rel=1e-12)
    assert fill.fee == pytest.approx(filled * price * FEE)
    assert fill.filled_at == T0 + timedelta(hours=2 + len(bars))  # the bar it filled on, never the decision bar
    account = paper.account()
    assert account.units[NAME] == pytest.approx(filled)
    assert account.cash == pytest.approx(1000.0 - filled * price * (1 + FEE))
    assert account.cash >= 0.0


def test_orders_below_the_venue_minimum_are_refused_at_submit() -> None:
    paper = broker()
    update = paper.submit(order("tiny", 0.05))  # 5 USDT at the 100 close
    assert update.status is OrderStatus.REJECTED and "minimum" in update.reason
    assert paper.open_orders() == []


def test_cancel_and_the_same_client_id_twice_places_one_order() -> None:
    paper = broker()
    first = paper.submit(order("dup", 1.0, 90.0, 5))
    again = paper.submit(order("dup", 1.0, 90.0, 5))
    assert first == again and len(paper.open_orders()) == 1
    assert paper.cancel("dup").status is OrderStatus.CANCELLED
    assert paper.open_orders() == [] and paper.order_state("dup").status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert paper.order_state("never-sent") is None


def test_a_new_order_replaces_the_one_working_on_the_instrument() -> None:
    paper = broker()
    paper.submit(order("first", 2.0))
    paper.submit(order("second", 1.0, 99.0, 3))
    assert paper.order_state("first").status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert [u.client_order_id for u in paper.open_orders()] == ["second"]


def test_state_survives_a_restart_and_a_redelivered_bar_repeats_its_events(tmp_path: Path) -> None:
    paper = broker(tmp_path)
    paper.submit(order("m1", 2.0))
    events = paper.on_bar(bar(3, 101, 103, 100, 102))
    assert [f.client_order_id for f in events.fills] == ["m1"]
    paper.submit(order("l1", -1.0, 120.0, 10))  # a sell limit well above the market: it rests
    reopened = broker(tmp_path)  # a new process reads the snapshot
    assert reopened.account() == paper.account()
    assert [u.client_order_id for u in reopened.open_orders()] == ["l1"]
    assert reopened.on_bar(bar(3, 101, 103, 100, 102)) == events  # the bar it crashed on, again
    assert reopened.submit(order("m1", 2.0)).status is OrderStatus.FILLED  # known id: not placed again
    later = reopened.on_bar(bar(4, 119, 121, 118, 120))
    assert [f.client_order_id for f in later.fills] == ["l1"] and later.fills[0].price == 120.0
    assert reopened.account().units[NAME] == pytest.approx(1.0)
