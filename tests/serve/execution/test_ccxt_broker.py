"""CcxtBroker with the real ccxt binance client against the local fake Binance order endpoints.

The fake's last BTC/USDT close is 42250.5 (market orders fill there), ETH/USDT 2250.0; the account
starts with 10000 USDT, 0.5 BTC and 2 ETH; commission is 0.1 % (base asset on buys, quote on sells).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
import polars as pl
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.data.schema import TIMESTAMP, DataError
from serve.execution.brokers import Account, BrokerError
from serve.execution.ccxt_broker import CcxtBroker, make_ccxt_broker
from serve.execution.records import FillRecord, OrderRecord, OrderStatus, client_order_id
from tests.support.fake_binance import FakeBinance, ccxt_config
from tests.support.fake_binance_orders import FakeBinanceOrders

API_KEY = "k3y-Zq8XvT2mN9pL4rW7sJ1fH6dC5bA0eG"
SECRET = "s3cr3t-Vn4Qw8Er2Ty6Ui0Op3As7Df1Gh5Jk9L"
ENV = {"MFT_BINANCE_API_KEY": API_KEY, "MFT_BINANCE_API_SECRET": SECRET}
BTC, ETH = "binance:BTC/USDT", "binance:ETH/USDT"
BTC_CLOSE = 42250.5
START = datetime(2024, 3, 1, tzinfo=UTC)


def hourly_bars(closes: list[float]) -> pl.DataFrame:
    times = [START + timedelta(hours=i) for i in range(len(closes))]
    return pl.DataFrame({
        TIMESTAMP: times, "open": closes, "high": closes, "low": closes, "close": closes, "volume": [1.0] * len(closes),
    }).with_columns(pl.col(TIMESTAMP).cast(pl.Datetime("us", "UTC")))


@dataclass
class Venue:
    server: FakeBinance
    book: FakeBinanceOrders
    brokers: list[CcxtBroker] = field(default_factory=list)

    def broker(self, timeout_ms: int = 5000, **kwargs: Any) -> CcxtBroker:
        config = {**ccxt_config(self.server), "timeout": timeout_ms}
        broker = make_ccxt_broker("binance", [BTC, ETH], live=True, env=ENV, config_overrides=config, **kwargs)
        self.brokers.append(broker)
        return broker

    def order_gets(self) -> int:
        return sum(r.method == "GET" for r in self.server.requests_to("/api/v3/order"))


@pytest.fixture
def venue() -> Iterator[Venue]:
    bars = {"BTC/USDT": hourly_bars([42000.0, 42100.0, BTC_CLOSE]), "ETH/USDT": hourly_bars([2200.0, 2240.0, 2250.0])}
    with FakeBinance(bars) as server:
        venue = Venue(server, FakeBinanceOrders(server, {"USDT": 10000.0, "BTC": 0.5, "ETH": 2.0}, api_key=API_KEY))
        yield venue
        for broker in venue.brokers:
            broker.close()


def order(quantity: float, limit: float | None = None, leg: int = 0, instrument: str = BTC) -> OrderRecord:
    cid = client_order_id("test-run", START, instrument, leg)
    return OrderRecord(cid, instrument, quantity, limit_price=limit)


@pytest.mark.parametrize(("quantity", "fee", "cash", "btc"), [
    (0.01, 0.00001 * BTC_CLOSE, 10000 - 422.505, 0.5 + 0.01 - 0.00001),  # fee in BTC, valued at the fill price
    (-0.02, 0.001 * 845.01, 10000 + 845.01 - 0.84501, 0.48),  # fee in USDT
])
def test_market_order_fills_at_last_close_and_is_reported_once(
    venue: Venue, quantity: float, fee: float, cash: float, btc: float
) -> None:
    broker, placed = venue.broker(), order(quantity)
    update = broker.submit(placed)
    assert (update.status, update.filled_quantity, update.exchange_order_id) == (OrderStatus.FILLED, quantity, "1001")
    (post,) = venue.book.order_posts()
    assert post.params["newClientOrderId"] == placed.client_order_id
    assert (post.params["side"], post.params["type"], float(post.params["quantity"])) == (
        placed.side.upper(), "MARKET", abs(quantity))
    events = broker.on_bar({})
    assert events.updates == []
    (fill,) = events.fills
    assert (fill.exchange_fill_id, fill.client_order_id, fill.instrument) == ("70001", placed.client_order_id, BTC)
    assert (fill.quantity, fill.price) == (quantity, BTC_CLOSE)
    assert fill.fee == pytest.approx(fee, rel=1e-9)
    assert not broker.on_bar({})
    account = broker.account()
    assert account.cash == pytest.approx(cash, abs=1e-8)
    assert account.units == pytest.approx({BTC: btc, ETH: 2.0}, abs=1e-8)


def test_limit_order_rests_then_partial_and_full_fills_are_reported_once_each(venue: Venue) -> None:
    broker, placed = venue.broker(), order(0.030004, limit=41000.123)  # rounded to the 1e-5 lot and 0.01 tick
    opened = broker.submit(placed)
    assert (opened.status, opened.filled_quantity) == (OrderStatus.OPEN, 0.0)
    (post,) = venue.book.order_posts()
    assert (post.params["quantity"], post.params["price"], post.params["timeInForce"]) == ("0.03", "41000.12", "GTC")
    assert venue.book.balance("USDT") == pytest.approx((10000 - 1230.0036, 1230.0036))
    assert not broker.on_bar({})

    venue.book.fill(placed.client_order_id, 0.01)
    partial = broker.on_bar({})
    assert [(f.exchange_fill_id, f.quantity, f.price) for f in partial.fills] == [("70001", 0.01, 41000.12)]
    assert partial.fills[0].fee == pytest.approx(0.00001 * 41000.12)
    assert [(u.status, u.filled_quantity) for u in partial.updates] == [(OrderStatus.PARTIALLY_FILLED, 0.01)]
    assert not broker.on_bar({})

    venue.book.fill(placed.client_order_id, 0.02)
    done = broker.on_bar({})
    assert [(f.exchange_fill_id, f.quantity) for f in done.fills] == [("70002", 0.02)]
    assert [(u.status, u.filled_quantity) for u in done.updates] == [(OrderStatus.FILLED, pytest.approx(0.03))]
    requests_before = len(venue.server.requests)
    assert not broker.on_bar({})
    assert len(venue.server.requests) == requests_before  # a final, fully reported order is no longer polled


@pytest.mark.parametrize(("quantity", "reason", "posts"), [
    (0.3, "Account has insufficient balance for requested action.", 1),  # 0.3 * 42250.5 > 10000 USDT
    (0.0001, "Filter failure: NOTIONAL", 1),  # 4.23 USDT < 5
    (0.000004, "must be greater than minimum amount precision", 0),  # rounds to 0 lots: never sent
])
def test_rejections_carry_the_exchange_message(venue: Venue, quantity: float, reason: str, posts: int) -> None:
    broker = venue.broker()
    update = broker.submit(order(quantity))
    assert update.status is OrderStatus.REJECTED
    assert reason in update.reason
    assert len(venue.book.order_posts()) == posts
    assert venue.book.orders == []
    assert not broker.on_bar({})


def test_timeout_after_booking_looks_up_instead_of_placing_twice(venue: Venue) -> None:
    broker, placed = venue.broker(timeout_ms=150), order(0.01, limit=41000.0)
    venue.book.fail_next_order("stall", stall_seconds=0.6)  # booked, answered after the client gave up
    update = broker.submit(placed)
    assert (update.status, update.exchange_order_id) == (OrderStatus.OPEN, "1001")
    assert broker.submit(placed) == update  # the actor's retry
    assert venue.broker().submit(placed) == update  # a restarted process
    venue.book.wait_idle()
    assert len(venue.book.order_posts()) == 1
    assert [o.client_id for o in venue.book.orders] == [placed.client_order_id]


def test_dropped_connection_after_booking_finds_the_filled_order(venue: Venue) -> None:
    broker, placed = venue.broker(), order(0.01)
    venue.book.fail_next_order("drop")
    update = broker.submit(placed)
    assert (update.status, update.filled_quantity) == (OrderStatus.FILLED, 0.01)
    # Binance would accept the id of a closed order again: only the lookup stops a second fill
    assert venue.broker().submit(placed).status is OrderStatus.FILLED
    assert len(venue.book.order_posts()) == 1
    assert len(venue.book.orders) == 1
    assert [f.exchange_fill_id for f in broker.on_bar({}).fills] == ["70001"]


def test_unavailable_exchange_is_retried_once_then_raises(venue: Venue) -> None:
    broker = venue.broker()
    venue.book.fail_next_order("unavailable")
    assert broker.submit(order(0.01)).status is OrderStatus.FILLED  # not booked, so resent once
    assert (len(venue.book.order_posts()), len(venue.book.orders)) == (2, 1)
    for _ in range(2):
        venue.book.fail_next_order("unavailable")
    with pytest.raises(BrokerError, match="state unknown"):
        broker.submit(order(0.01, leg=1))
    assert len(venue.book.orders) == 1
    venue.server.script(503, path="/api/v3/order")  # the lookup itself fails: nothing is sent
    with pytest.raises(BrokerError, match="looking up order"):
        broker.submit(order(0.01, leg=2))
    assert len(venue.book.order_posts()) == 4


def test_duplicate_rejection_is_answered_with_the_existing_order(venue: Venue) -> None:
    placed = order(0.01, limit=41000.0)
    first = venue.broker().submit(placed)
    venue.server.script(400, {"code": -2013, "msg": "Order does not exist."}, path="/api/v3/order")  # a stale lookup
    again = venue.broker().submit(placed)
    assert again == first
    assert [r.status for r in venue.book.order_posts()] == [200, 400]  # the second POST was refused as a duplicate
    assert len(venue.book.orders) == 1


def test_cancel_returns_the_final_state_and_late_fills_still_arrive(venue: Venue) -> None:
    broker, placed = venue.broker(), order(0.02, limit=41000.0)
    broker.submit(placed)
    venue.book.fill(placed.client_order_id, 0.005)
    cancelled = broker.cancel(placed.client_order_id)
    assert (cancelled.status, cancelled.filled_quantity) == (OrderStatus.CANCELLED, 0.005)
    assert cancelled.reason == "binance status CANCELED"
    assert venue.book.order(placed.client_order_id).status == "CANCELED"
    assert venue.book.balance("USDT") == pytest.approx((10000 - 205.0, 0.0))  # the rest is unlocked
    events = broker.on_bar({})
    assert ([f.quantity for f in events.fills], events.updates) == ([0.005], [])
    assert broker.cancel(placed.client_order_id) == cancelled  # cancelling a final order returns its state
    unknown = broker.cancel("mft-never-sent")
    assert (unknown.status, unknown.reason) == (OrderStatus.CANCELLED, "binance does not know it")


def test_a_restarted_broker_recovers_our_open_orders_and_their_fills(venue: Venue) -> None:
    placed = order(-0.1, limit=45000.0)
    venue.broker().submit(placed)
    manual = ccxt.binance({**ccxt_config(venue.server), "apiKey": API_KEY, "secret": SECRET})
    manual.create_order("BTC/USDT", "limit", "buy", 0.001, 40000.0, {"clientOrderId": "web_manual_1"})
    restarted = venue.broker()
    (working,) = restarted.open_orders()  # only ids we generate
    assert (working.client_order_id, working.status, working.filled_quantity) == (
        placed.client_order_id, OrderStatus.OPEN, 0.0)
    assert restarted.order_state(placed.client_order_id) == working
    assert restarted.order_state("mft-never-sent") is None
    venue.book.fill(placed.client_order_id, 0.1)
    events = restarted.on_bar({})
    assert [(f.quantity, f.fee) for f in events.fills] == [(-0.1, pytest.approx(4.5))]  # 0.1 % of 4500 USDT
    assert [u.status for u in events.updates] == [OrderStatus.FILLED]


def test_account_counts_free_and_locked_balances(venue: Venue) -> None:
    broker = venue.broker()
    assert broker.account() == Account(cash=10000.0, units={BTC: 0.5, ETH: 2.0})
    broker.submit(order(0.1, limit=40000.0))
    broker.submit(order(-1.5, limit=3000.0, instrument=ETH))
    assert venue.book.balance("ETH") == (0.5, 1.5)
    assert broker.account() == Account(cash=10000.0, units={BTC: 0.5, ETH: 2.0})


def test_fee_in_a_third_currency_is_valued_at_its_last_price() -> None:
    bars = {"BTC/USDT": hourly_bars([42000.0, BTC_CLOSE]), "BNB/USDT": hourly_bars([598.0, 600.25])}
    with FakeBinance(bars) as server:
        venue = Venue(server, FakeBinanceOrders(server, {"USDT": 10000.0, "BTC": 0.5, "BNB": 1.0}, api_key=API_KEY))
        config = {**ccxt_config(server), "timeout": 5000}
        broker = make_ccxt_broker("binance", [BTC], live=True, env=ENV, config_overrides=config)
        try:
            placed = order(0.01, limit=41000.0)
            broker.submit(placed)
            venue.book.fill(placed.client_order_id, 0.01, commission=0.0003, commission_asset="BNB")
            (fill,) = broker.on_bar({}).fills
        finally:
            broker.close()
    assert fill.fee == pytest.approx(0.0003 * 600.25, rel=1e-12)
    assert [r.params["symbol"] for r in server.requests_to("/api/v3/ticker/24hr")] == ["BNBUSDT"]


def test_fee_in_a_currency_without_a_quote_market_is_recorded_as_zero_with_a_warning(
    venue: Venue, caplog: pytest.LogCaptureFixture
) -> None:
    broker, placed = venue.broker(), order(0.01, limit=41000.0)
    broker.submit(placed)
    venue.book.fill(placed.client_order_id, 0.01, commission=0.0003, commission_asset="BNB")
    with caplog.at_level(logging.WARNING, logger="serve.execution.ccxt_broker"):
        (fill,) = broker.on_bar({}).fills
    assert fill.fee == 0.0
    assert "fee 0.0003 BNB has no price in USDT (binance lists no BNB/USDT market)" in caplog.text


def test_api_calls_are_timed_through_the_hook(venue: Venue) -> None:
    calls: list[tuple[str, float, bool]] = []
    broker = venue.broker(on_api_call=lambda *call: calls.append(call))
    broker.submit(order(0.01))
    assert [(name, ok) for name, _, ok in calls] == [
        ("load_markets", True), ("fetch_order", False), ("create_order", True)]  # the lookup found nothing
    assert all(0.0 <= seconds < 2.0 for _, seconds, _ in calls)


def test_the_fake_requires_the_api_key_header_and_a_signature(venue: Venue) -> None:
    url = venue.server.url + "/api/v3/account"
    assert requests.get(url, params={"timestamp": "1", "signature": "x"}, timeout=5).json()["code"] == -2015
    missing = requests.get(url, params={"timestamp": "1"}, headers={"X-MBX-APIKEY": API_KEY}, timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (400, -1102)
    wrong_key = {**ENV, "MFT_BINANCE_API_KEY": "not-the-key"}
    broker = make_ccxt_broker("binance", [BTC], live=True, env=wrong_key, config_overrides=ccxt_config(venue.server))
    with pytest.raises(BrokerError, match="Invalid API-key"):
        broker.submit(order(0.01))
    assert venue.book.orders == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"live": False}, "pass live=True"),
    ({"live": True, "env": {}}, "['MFT_BINANCE_API_KEY', 'MFT_BINANCE_API_SECRET']"),
    ({"live": True, "env": {"MFT_BINANCE_API_KEY": API_KEY}}, "['MFT_BINANCE_API_SECRET']"),
    ({"live": True, "env": ENV, "config_overrides": {"secret": SECRET}}, "keys come from the environment"),
    ({"live": True, "env": ENV, "instruments": ["kraken:BTC/USD"]}, "is not 'binance:BASE/QUOTE'"),
    ({"live": True, "env": ENV, "instruments": [BTC, "binance:ETH/BTC"]}, "one quote currency"),
])
def test_factory_refuses_without_opt_in_keys_or_one_quote(kwargs: dict[str, Any], message: str) -> None:
    instruments = kwargs.pop("instruments", [BTC])
    with pytest.raises(DataError) as refused:
        make_ccxt_broker("binance", instruments, **kwargs)
    assert message in str(refused.value)
    assert API_KEY not in str(refused.value) and SECRET not in str(refused.value)


def test_keys_never_reach_a_log_or_a_repr(venue: Venue, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        broker = venue.broker(timeout_ms=150)
        venue.book.fail_next_order("stall", stall_seconds=0.4)
        broker.submit(order(0.01, limit=41000.0))
        broker.submit(order(0.3, leg=1))  # rejected
        venue.book.fill(order(0.01, limit=41000.0).client_order_id, 0.01)
        broker.on_bar({})
        venue.book.wait_idle()
    assert "X-MBX-APIKEY" in caplog.text  # ccxt logged its request headers ...
    assert API_KEY not in caplog.text and SECRET not in caplog.text  # ... with the key redacted
    assert API_KEY not in repr(broker) and SECRET not in repr(broker)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lots=st.lists(st.integers(1, 400), min_size=1, max_size=4))
def test_every_split_of_an_order_is_reported_exactly_once(venue: Venue, lots: list[int]) -> None:
    """However an order fills, the fills sum to its filled quantity and no trade id repeats."""
    broker, placed = venue.broker(), order(sum(lots) * 1e-5, limit=41000.0, leg=len(venue.book.orders))
    if placed.quantity * 41000.0 < 5.0:  # below the exchange's minimum notional
        assert broker.submit(placed).status is OrderStatus.REJECTED
        return
    broker.submit(placed)
    reported: list[FillRecord] = []
    for lot in lots:
        venue.book.fill(placed.client_order_id, round(lot * 1e-5, 8))
        reported += broker.on_bar({}).fills
    reported += broker.on_bar({}).fills
    assert len({f.exchange_fill_id for f in reported}) == len(reported) == len(lots)
    assert sum(f.quantity for f in reported) == pytest.approx(placed.quantity, abs=1e-12)
    assert broker.order_state(placed.client_order_id).status is OrderStatus.FILLED  # type: ignore[union-attr]
