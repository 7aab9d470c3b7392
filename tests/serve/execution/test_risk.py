"""Risk limits: each limit blocks the right order with a reason; the kill switch state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from features.data.schema import DataError
from serve.execution.records import OrderIntent, PortfolioState
from serve.execution.risk import KillMode, KillSwitch, RiskLimits, RiskManager, StateChange, TradingState

BTC, ETH = "binance:BTC/USDT", "binance:ETH/USDT"
MORNING = datetime(2024, 3, 1, 1, tzinfo=UTC)


def state(equity: float = 10_000.0, btc: float = 0.0, time: datetime = MORNING) -> PortfolioState:
    return PortfolioState(time, equity, {BTC: btc, ETH: 0.0}, {BTC: 50_000.0, ETH: 2_000.0})


def order(quantity: float, instrument: str = BTC, price: float = 50_000.0) -> OrderIntent:
    return OrderIntent(instrument, quantity, price)


LIMITS = RiskLimits(
    max_position_notional=5_000.0,
    position_limits={ETH: 1_000.0},
    max_order_notional=2_000.0,
    max_daily_loss=300.0,
    max_daily_loss_fraction=0.05,
    on_daily_loss="block",
)


def test_order_within_every_limit_is_allowed() -> None:
    decision = RiskManager(LIMITS).check(order(0.02), state())  # 1,000 notional
    assert decision.allowed and decision.rule == "ok"


def test_max_order_notional_blocks_with_the_figures() -> None:
    decision = RiskManager(LIMITS).check(order(0.05), state())  # 2,500 > 2,000
    assert (decision.allowed, decision.rule) == (False, "order_notional")
    assert decision.reason == "order notional 2500.00 exceeds max_order_notional 2000.00"


def test_position_limit_blocks_growth_beyond_the_cap() -> None:
    decision = RiskManager(LIMITS).check(order(0.03), state(btc=0.08))  # (0.08 + 0.03) * 50k = 5,500 > 5,000
    assert (decision.allowed, decision.rule) == (False, "position")
    assert decision.reason == f"position notional after the order 5500.00 exceeds the limit 5000.00 for {BTC}"


def test_per_instrument_position_limit_overrides_the_default() -> None:
    manager = RiskManager(LIMITS)
    assert not manager.check(order(0.6, ETH, 2_000.0), state()).allowed  # 1,200 > ETH cap 1,000
    assert manager.check(order(0.6, BTC, 2_000.0), state()).allowed  # same notional is fine on BTC


def test_shrinking_a_position_above_the_cap_is_allowed() -> None:
    manager = RiskManager(LIMITS)
    assert manager.check(order(-0.02), state(btc=0.2)).allowed  # 10,000 held, cap 5,000: reducing passes
    reduced = manager.check(order(-0.03), state(btc=0.08))  # 0.08 -> 0.05 BTC: shrinks, allowed
    assert reduced.allowed


def test_daily_loss_is_measured_from_the_utc_days_first_equity() -> None:
    manager = RiskManager(LIMITS)
    assert manager.check(order(0.01), state(10_000.0)).allowed  # sets the day's start equity
    decision = manager.check(order(0.01), state(9_700.0, time=MORNING + timedelta(hours=5)))  # lost 300
    assert (decision.allowed, decision.rule) == (False, "daily_loss")
    assert decision.reason.startswith("daily loss 300.00 reached the limit 300.00")
    assert manager.check(order(-0.01), state(9_700.0, btc=0.05, time=MORNING + timedelta(hours=5))).allowed
    next_day = MORNING + timedelta(days=1)
    assert manager.check(order(0.01), state(9_700.0, time=next_day)).allowed  # new day, new start equity
    assert manager.day_start_equity == 9_700.0


def test_daily_loss_fraction_limit() -> None:
    manager = RiskManager(RiskLimits(max_daily_loss_fraction=0.05))
    manager.check(order(0.01), state(2_000.0))
    assert manager.check(order(0.001), state(1_901.0)).allowed  # lost 99 < 5% of 2,000
    decision = manager.check(order(0.001), state(1_900.0))
    assert decision.rule == "daily_loss" and "5.0% of the day's starting equity 2000.00" in decision.reason


def test_restored_day_start_equity_survives_a_restart() -> None:
    manager = RiskManager(LIMITS)
    manager.restore_day(MORNING.replace(hour=0), 10_000.0)
    assert manager.check(order(0.01), state(9_650.0, time=MORNING + timedelta(hours=3))).rule == "daily_loss"


@pytest.mark.parametrize(
    ("mode", "frozen_rule_allows_reduce"), [(KillMode.FREEZE, False), (KillMode.FLATTEN, True)]
)
def test_kill_switch_blocks_new_exposure(mode: KillMode, frozen_rule_allows_reduce: bool) -> None:
    manager = RiskManager(LIMITS)
    manager.switch.kill(mode)
    grow, reduce = manager.check(order(0.01), state(btc=0.05)), manager.check(order(-0.01), state(btc=0.05))
    assert (grow.allowed, grow.rule) == (False, "state")
    assert reduce.allowed is frozen_rule_allows_reduce


def test_flattening_refuses_an_order_that_crosses_zero() -> None:
    manager = RiskManager(LIMITS)
    manager.switch.kill(KillMode.FLATTEN)
    assert manager.check(order(-0.02), state(btc=0.02)).allowed
    assert not manager.check(order(-0.03), state(btc=0.02)).allowed


def test_paused_blocks_every_order() -> None:
    manager = RiskManager(LIMITS)
    manager.switch.pause()
    decision = manager.check(order(-0.01), state(btc=0.05))
    assert (decision.allowed, decision.reason) == (False, "trading is paused")


def test_kill_switch_transitions_and_listeners() -> None:
    switch, seen = KillSwitch(), []
    switch.subscribe(lambda change: seen.append((change.previous, change.current)))
    assert switch.pause() is not None and switch.pause() is None
    assert switch.resume() is not None
    assert switch.kill(KillMode.FLATTEN) is not None
    assert switch.resume() is None  # flattening must finish (or be frozen) first
    assert switch.flattened() is not None
    assert switch.resume() is not None
    s = TradingState
    assert seen == [
        (s.RUNNING, s.PAUSED),
        (s.PAUSED, s.RUNNING),
        (s.RUNNING, s.FLATTENING),
        (s.FLATTENING, s.FROZEN),
        (s.FROZEN, s.RUNNING),
    ]


def test_observe_trips_once_per_day_and_freezes_once_flat() -> None:
    limits = RiskLimits(max_daily_loss=100.0, on_daily_loss="flatten")
    manager, changes = RiskManager(limits), list[StateChange]()
    manager.switch.subscribe(changes.append)
    assert manager.observe(state(10_000.0, btc=0.1)) is None
    tripped = manager.observe(state(9_850.0, btc=0.1))
    assert isinstance(tripped, StateChange) and tripped.current is TradingState.FLATTENING
    assert manager.observe(state(9_850.0, btc=0.1)) is None  # still flattening
    assert manager.observe(state(9_850.0, btc=0.0)).current is TradingState.FROZEN  # type: ignore[union-attr]
    manager.switch.resume()
    assert (
        manager.observe(state(9_800.0, btc=0.0)) is None
    )  # same day: does not re-trip after an operator resume
    assert manager.check(order(0.001), state(9_800.0)).rule == "daily_loss"  # but still blocks new exposure
    assert [c.current for c in changes] == [
        TradingState.FLATTENING,
        TradingState.FROZEN,
        TradingState.RUNNING,
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_order_notional": 0.0},
        {"max_daily_loss_fraction": 1.5},
        {"position_limits": {BTC: -1.0}},
        {"on_daily_loss": "panic"},
    ],
)
def test_invalid_limits_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(DataError):
        RiskLimits(**bad)  # type: ignore[arg-type]


@given(position=st.floats(-5, 5, allow_nan=False), quantity=st.floats(-5, 5, allow_nan=False))
def test_while_flattening_exactly_the_orders_that_move_toward_zero_pass(
    position: float, quantity: float
) -> None:
    assume(quantity != 0)
    manager = RiskManager(RiskLimits())
    manager.switch.kill(KillMode.FLATTEN)
    allowed = manager.check(OrderIntent(BTC, quantity, 100.0), state(btc=position)).allowed
    assert allowed == (position * quantity < 0 and abs(quantity) <= abs(position) * (1 + 1e-9))
