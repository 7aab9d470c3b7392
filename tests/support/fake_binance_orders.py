"""Signed Binance spot order endpoints on top of :class:`tests.support.fake_binance.FakeBinance`.

:class:`FakeBinanceOrders` adds to a running fake the private endpoints the real ccxt ``binance``
client calls to trade one spot account: ``POST/GET/DELETE /api/v3/order``, ``GET /api/v3/openOrders``,
``GET /api/v3/myTrades``, ``GET /api/v3/account`` and ``GET /sapi/v1/capital/config/getall`` (which
ccxt calls from ``load_markets`` once keys are set), plus the public ``GET /api/v3/ticker/24hr`` (last
price = the market-order fill price).  Every signed request must carry the
``X-MBX-APIKEY`` header and ``timestamp`` and ``signature`` parameters; the HMAC is not checked.

The account is in memory: market orders fill at once at :attr:`FakeBinanceOrders.prices` (default:
the last kline close), limit orders rest with their funds locked until a test fills them with
:meth:`FakeBinanceOrders.fill`.  Commission is charged like Binance without BNB: in the base asset
on buys, in the quote asset on sells.  As on Binance a client order id must be unique among *open*
orders only (-2010 "Duplicate order sent."); a closed order's id is accepted again.

Faults the order layer needs beyond ``FakeBinance.script`` (which answers *instead* of booking):
:meth:`FakeBinanceOrders.fail_next_order` books the next order and then drops the connection or
stalls past the client's timeout, so the caller cannot know whether the order exists (or answers
503 without booking it).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tests.support.fake_binance import FakeBinance, Handler, RecordedRequest, Response, binance_error

ORDER = "/api/v3/order"
API_KEY_HEADER = "X-MBX-APIKEY"
DUPLICATE = "Duplicate order sent."
INSUFFICIENT = "Account has insufficient balance for requested action."
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


@dataclass
class FakeOrder:
    order_id: int
    client_id: str
    symbol: str  # Binance market id, 'BTCUSDT'
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT
    quantity: float
    price: float  # limit price, 0 for market orders
    time_ms: int
    executed: float = 0.0
    quote_executed: float = 0.0
    status: str = "NEW"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        return round(self.quantity - self.executed, 8)


@dataclass(frozen=True)
class FakeTrade:
    trade_id: int
    order_id: int
    symbol: str
    is_buyer: bool
    price: float
    quantity: float
    commission: float
    commission_asset: str
    time_ms: int
    is_maker: bool


@dataclass(frozen=True)
class _Market:
    base: str
    quote: str
    step: float
    min_quantity: float
    min_notional: float


@dataclass
class _Balance:
    free: float = 0.0
    locked: float = 0.0


class _ThreadState(threading.local):
    """Per request (one server thread each): its headers, and whether its answer is to be dropped."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.drop = False


def _dec(value: float) -> str:
    return f"{value:.8f}"


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeBinanceOrders:
    """One spot account behind ``fake``'s signed order endpoints; ``balances`` are free units per asset."""

    def __init__(self, fake: FakeBinance, balances: Mapping[str, float], *,
                 prices: Mapping[str, float] | None = None, fee_rate: float = 0.001,
                 api_key: str | None = None) -> None:
        self.fake = fake
        self.prices = dict(prices or {})  # unified symbol -> market order fill price
        self.fee_rate = fee_rate
        self.api_key = api_key  # when set, the header must carry exactly this key
        self.orders: list[FakeOrder] = []
        self.trades: list[FakeTrade] = []
        self._balances = {asset: _Balance(free) for asset, free in balances.items()}
        self._markets = self._read_markets()
        self._ids = itertools.count(1001)
        self._trade_ids = itertools.count(70001)
        self._lock = threading.RLock()
        self._faults: deque[tuple[str, float]] = deque()
        self._stalled = 0
        self._idle = threading.Condition(self._lock)
        self._thread = _ThreadState()
        self._capture_headers()
        routes: dict[tuple[str, str], Handler] = {
            ("POST", ORDER): self._new_order, ("GET", ORDER): self._query_order,
            ("DELETE", ORDER): self._cancel_order, ("GET", "/api/v3/openOrders"): self._open_orders,
            ("GET", "/api/v3/myTrades"): self._my_trades, ("GET", "/api/v3/account"): self._account,
            ("GET", "/sapi/v1/capital/config/getall"): self._coins,
        }
        for (method, path), handler in routes.items():
            fake.add_route(method, path, self._signed(handler))
        fake.add_route("GET", "/api/v3/ticker/24hr", self._ticker)  # public: no signature

    # -- test controls ---------------------------------------------------------------------
    def fill(self, client_id: str, quantity: float, price: float | None = None, *,
             commission: float | None = None, commission_asset: str | None = None) -> FakeTrade:
        """Execute ``quantity`` of the open order ``client_id`` as maker (default: at its limit price)."""
        with self._lock:
            order = self._open_by_client_id(client_id)
            if order is None:
                raise KeyError(f"no open order with client id {client_id!r}")
            if quantity <= 0 or quantity > order.remaining + 1e-12:
                raise ValueError(f"cannot fill {quantity} of order {client_id}: {order.remaining} remaining")
            return self._execute(order, quantity, price or order.price, True, commission, commission_asset)

    def fail_next_order(self, mode: Literal["drop", "stall", "unavailable"], stall_seconds: float = 1.0) -> None:
        """The next order request fails: ``drop`` and ``stall`` book the order, then drop the connection or
        answer after ``stall_seconds`` (past the client's timeout); ``unavailable`` answers 503 unbooked."""
        with self._lock:
            self._faults.append((mode, stall_seconds))

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until stalled answers are done, so their requests are recorded."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._stalled == 0, timeout):
                raise TimeoutError("fake binance: a stalled order answer is still pending")

    def balance(self, asset: str) -> tuple[float, float]:
        """(free, locked) units of ``asset``."""
        with self._lock:
            entry = self._balances.get(asset, _Balance())
            return entry.free, entry.locked

    def order(self, client_id: str) -> FakeOrder:
        """The latest order booked under ``client_id``."""
        with self._lock:
            return next(o for o in reversed(self.orders) if o.client_id == client_id)

    def order_posts(self) -> list[RecordedRequest]:
        return [r for r in self.fake.requests_to(ORDER) if r.method == "POST"]

    # -- plumbing --------------------------------------------------------------------------
    def _read_markets(self) -> dict[str, _Market]:
        info = self.fake.routes[("GET", "/api/v3/exchangeInfo")](RecordedRequest("GET", "", {}, 0)).body
        markets = {}
        for entry in info["symbols"]:
            filters = {f["filterType"]: f for f in entry["filters"]}
            markets[entry["symbol"]] = _Market(
                entry["baseAsset"], entry["quoteAsset"], float(filters["LOT_SIZE"]["stepSize"]),
                float(filters["LOT_SIZE"]["minQty"]), float(filters["NOTIONAL"]["minNotional"]),
            )
        return markets

    def _capture_headers(self) -> None:
        """Wrap the fake's handler class so routes can see request headers (FakeBinance records none).

        The answer is buffered, so a fault can swallow it and close the socket: the client sees a
        dropped connection after the order was booked.
        """
        base: Any = self.fake._server.RequestHandlerClass
        state = self._thread

        class _Buffer:
            """Collects the answer so it leaves in one write (two small writes wait ~40 ms on delayed ACKs)."""

            def __init__(self) -> None:
                self.chunks: list[bytes] = []

            def write(self, data: bytes) -> int:
                self.chunks.append(bytes(data))
                return len(data)

            def flush(self) -> None:
                return

        class _WithHeaders(base):  # type: ignore[misc, valid-type]
            def _capturing(self: Any) -> None:
                state.headers, state.drop = dict(self.headers.items()), False
                real, buffer = self.wfile, _Buffer()
                self.wfile = buffer
                try:
                    base._serve(self)
                finally:
                    self.wfile = real
                if state.drop:  # the client never hears back: close without an answer
                    self.close_connection = True
                else:
                    real.write(b"".join(buffer.chunks))

            do_GET = do_POST = do_DELETE = do_PUT = _capturing

        self.fake._server.RequestHandlerClass = _WithHeaders

    def _signed(self, handler: Handler) -> Handler:
        def checked(request: RecordedRequest) -> Response:
            key = self._thread.headers.get(API_KEY_HEADER)
            if not key or (self.api_key is not None and key != self.api_key):
                return binance_error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            for name in ("timestamp", "signature"):
                if not request.params.get(name):
                    return binance_error(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                                     "or malformed.")
            with self._lock:
                return handler(request)
        return checked

    def _after_booking(self) -> None:
        """Apply a queued fault to the order just booked (called with the lock held)."""
        if not self._faults:
            return
        mode, seconds = self._faults.popleft()
        self._thread.drop = True
        if mode == "stall":
            self._stalled += 1
            self._lock.release()  # let the client's lookup in while this answer hangs
            try:
                time.sleep(seconds)
            finally:
                self._lock.acquire()
                self._stalled -= 1
                self._idle.notify_all()

    # -- endpoints -------------------------------------------------------------------------
    def _new_order(self, request: RecordedRequest) -> Response:
        if self._faults and self._faults[0][0] == "unavailable":
            self._faults.popleft()
            return Response(503, "Service Unavailable")
        p = request.params
        market = self._markets.get(p.get("symbol", ""))
        if market is None:
            return binance_error(400, -1121, "Invalid symbol.")
        side, kind, client_id = p.get("side", ""), p.get("type", ""), p.get("newClientOrderId", "")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT") or not client_id:
            return binance_error(400, -1102, "Mandatory parameter was not sent, was empty/null, or malformed.")
        quantity, price = float(p.get("quantity", "0")), float(p.get("price", "0"))
        if kind == "LIMIT" and (price <= 0 or p.get("timeInForce") != "GTC"):
            return binance_error(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        fill_price = price if kind == "LIMIT" else self._market_price(p["symbol"])
        refusal = self._refusal(market, client_id, side, quantity, fill_price)
        if refusal is not None:
            return refusal
        order = FakeOrder(next(self._ids), client_id, p["symbol"], side, kind, quantity, price, _now_ms())
        self.orders.append(order)
        trades = []
        if kind == "MARKET":
            trades.append(self._execute(order, quantity, fill_price, False, None, None))
        else:
            self._lock_funds(market, side, quantity * price, quantity, sign=1)
        self._after_booking()
        fills = [{"price": _dec(t.price), "qty": _dec(t.quantity), "commission": _dec(t.commission),
                  "commissionAsset": t.commission_asset, "tradeId": t.trade_id} for t in trades]
        return Response(200, {**self._order_json(order), "transactTime": order.time_ms, "fills": fills})

    def _refusal(self, market: _Market, client_id: str, side: str, quantity: float, price: float) -> Response | None:
        if self._open_by_client_id(client_id) is not None:
            return binance_error(400, -2010, DUPLICATE)
        steps = quantity / market.step
        if quantity < market.min_quantity or not math.isclose(steps, round(steps), abs_tol=1e-6):
            return binance_error(400, -1013, "Filter failure: LOT_SIZE")
        if quantity * price < market.min_notional:
            return binance_error(400, -1013, "Filter failure: NOTIONAL")
        asset, needed = (market.quote, quantity * price) if side == "BUY" else (market.base, quantity)
        if self._balances.get(asset, _Balance()).free + 1e-12 < needed:
            return binance_error(400, -2010, INSUFFICIENT)
        return None

    def _query_order(self, request: RecordedRequest) -> Response:
        order = self._find(request.params)
        if order is None:
            return binance_error(400, -2013, "Order does not exist.")
        return Response(200, self._order_json(order))

    def _cancel_order(self, request: RecordedRequest) -> Response:
        order = self._find(request.params)
        if order is None or not order.is_open:
            return binance_error(400, -2011, "Unknown order sent.")
        market = self._markets[order.symbol]
        remaining = order.remaining
        self._lock_funds(market, order.side, remaining * order.price, remaining, sign=-1)
        order.status = "CANCELED"
        body = self._order_json(order)
        body.update(origClientOrderId=order.client_id, clientOrderId=f"cancel{order.order_id}",
                    transactTime=_now_ms())
        return Response(200, body)

    def _open_orders(self, request: RecordedRequest) -> Response:
        symbol = request.params.get("symbol")
        return Response(200, [self._order_json(o) for o in self.orders
                              if o.is_open and symbol in (None, o.symbol)])

    def _my_trades(self, request: RecordedRequest) -> Response:
        p = request.params
        if p.get("symbol") not in self._markets:
            return binance_error(400, -1121, "Invalid symbol.")
        order_id = p.get("orderId")
        chosen = [t for t in self.trades if t.symbol == p["symbol"] and order_id in (None, str(t.order_id))]
        return Response(200, [self._trade_json(t) for t in chosen[: int(p.get("limit", 500))]])

    def _account(self, _: RecordedRequest) -> Response:
        balances = [{"asset": asset, "free": _dec(b.free), "locked": _dec(b.locked)}
                    for asset, b in sorted(self._balances.items())]
        return Response(200, {"makerCommission": 10, "takerCommission": 10, "canTrade": True,
                              "canWithdraw": False, "canDeposit": False, "updateTime": _now_ms(),
                              "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"]})

    def _coins(self, _: RecordedRequest) -> Response:
        assets = sorted({a for m in self._markets.values() for a in (m.base, m.quote)} | set(self._balances))
        return Response(200, [{"coin": asset, "name": asset, "trading": True, "isLegalMoney": False,
                               "free": "0", "locked": "0", "networkList": []} for asset in assets])

    def _ticker(self, request: RecordedRequest) -> Response:
        market_id = request.params.get("symbol", "")
        if market_id not in self._markets:
            return binance_error(400, -1121, "Invalid symbol.")
        last, now = _dec(self._market_price(market_id)), _now_ms()
        return Response(200, {
            "symbol": market_id, "priceChange": "0", "priceChangePercent": "0", "weightedAvgPrice": last,
            "prevClosePrice": last, "lastPrice": last, "lastQty": "0", "bidPrice": last, "bidQty": "0",
            "askPrice": last, "askQty": "0", "openPrice": last, "highPrice": last, "lowPrice": last,
            "volume": "0", "quoteVolume": "0", "openTime": now - 86_400_000, "closeTime": now,
            "firstId": 0, "lastId": 0, "count": 0})

    # -- book keeping ----------------------------------------------------------------------
    def _market_price(self, market_id: str) -> float:
        market = self._markets[market_id]
        unified = f"{market.base}/{market.quote}"
        if unified in self.prices:
            return self.prices[unified]
        klines = self.fake.routes[("GET", "/api/v3/klines")](RecordedRequest(
            "GET", "/api/v3/klines", {"symbol": market_id, "interval": self.fake.interval, "limit": "1"}, 0))
        return float(klines.body[-1][4])

    def _execute(self, order: FakeOrder, quantity: float, price: float, is_maker: bool,
                 commission: float | None, commission_asset: str | None) -> FakeTrade:
        market = self._markets[order.symbol]
        buying = order.side == "BUY"
        if commission_asset is None:
            commission_asset = market.base if buying else market.quote
            commission = quantity * self.fee_rate * (1.0 if buying else price)
        commission = round(commission or 0.0, 8)
        if order.type == "LIMIT":  # release what was locked at the limit price
            self._lock_funds(market, order.side, quantity * order.price, quantity, sign=-1)
        paid, received = (market.quote, market.base) if buying else (market.base, market.quote)
        self._add(paid, -(quantity * price if buying else quantity))
        self._add(received, quantity if buying else quantity * price)
        self._add(commission_asset, -commission)
        trade = FakeTrade(next(self._trade_ids), order.order_id, order.symbol, buying, price, quantity,
                          commission, commission_asset, _now_ms(), is_maker)
        self.trades.append(trade)
        order.executed = round(order.executed + quantity, 8)
        order.quote_executed = round(order.quote_executed + quantity * price, 8)
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        return trade

    def _lock_funds(self, market: _Market, side: str, quote_amount: float, base_amount: float, *,
                    sign: int) -> None:
        """Lock (sign=1) or unlock (sign=-1) what a resting order of ``side`` commits."""
        asset, amount = (market.quote, quote_amount) if side == "BUY" else (market.base, base_amount)
        entry = self._balances.setdefault(asset, _Balance())
        entry.free = round(entry.free - sign * amount, 8)
        entry.locked = round(entry.locked + sign * amount, 8)

    def _add(self, asset: str, amount: float) -> None:
        entry = self._balances.setdefault(asset, _Balance())
        entry.free = round(entry.free + amount, 8)

    def _open_by_client_id(self, client_id: str) -> FakeOrder | None:
        return next((o for o in self.orders if o.client_id == client_id and o.is_open), None)

    def _find(self, params: Mapping[str, str]) -> FakeOrder | None:
        symbol, client_id, order_id = params.get("symbol"), params.get("origClientOrderId"), params.get("orderId")
        for order in reversed(self.orders):  # Binance answers with the latest order under a reused id
            if order.symbol == symbol and (order.client_id == client_id or str(order.order_id) == order_id):
                return order
        return None

    def _order_json(self, order: FakeOrder) -> dict[str, Any]:
        return {
            "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1, "clientOrderId": order.client_id,
            "price": _dec(order.price), "origQty": _dec(order.quantity), "executedQty": _dec(order.executed),
            "cummulativeQuoteQty": _dec(order.quote_executed), "status": order.status,
            "timeInForce": "GTC", "type": order.type, "side": order.side, "stopPrice": "0.00000000",
            "icebergQty": "0.00000000", "time": order.time_ms, "updateTime": _now_ms(),
            "isWorking": True, "workingTime": order.time_ms, "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    @staticmethod
    def _trade_json(trade: FakeTrade) -> dict[str, Any]:
        return {
            "symbol": trade.symbol, "id": trade.trade_id, "orderId": trade.order_id, "orderListId": -1,
            "price": _dec(trade.price), "qty": _dec(trade.quantity), "quoteQty": _dec(trade.price * trade.quantity),
            "commission": _dec(trade.commission), "commissionAsset": trade.commission_asset,
            "time": trade.time_ms, "isBuyer": trade.is_buyer, "isMaker": trade.is_maker, "isBestMatch": True,
        }
