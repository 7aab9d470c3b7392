"""The live broker: real orders on an exchange through a ccxt client.

:class:`CcxtBroker` implements :class:`~serve.execution.brokers.ExecutionBroker` for one spot account.
Build it with :func:`make_ccxt_broker`, which refuses unless ``live=True`` and reads the keys only
from environment variables named after the exchange (``MFT_BINANCE_API_KEY``, ``MFT_BINANCE_API_SECRET``).

Idempotency.  Every order goes out under its client order id.  Binance only refuses a repeated id
while the first order is *open*, so ``submit`` looks the id up before it places anything, and again
after a timeout or dropped connection before it resends; a duplicate-order rejection also means
"already placed" and is answered by a lookup.  Exchange rejections (balance, filters) come back as
``REJECTED`` with the exchange's message; when the state cannot be determined it raises
:class:`~serve.execution.brokers.BrokerError`.

Fills.  ``on_bar`` polls the orders this broker placed or was asked about and reports each trade
once (by trade id) as a :class:`FillRecord`.  The fill quantity is the gross traded amount; the fee is
converted to the quote currency: as is when charged in the quote, ``cost * price`` when charged in
the base (Binance's default on buys, so the base units actually received are ``quantity - fee
units``; reconcile units with :meth:`CcxtBroker.account`).  A fee in a third currency (BNB discount)
is valued at that currency's last price against the quote (``fetch_ticker('BNB/USDT')``) when the fill
is read; if the exchange lists no such market or the price cannot be fetched, it is recorded as 0 with
a warning naming the trade, so keep third-currency fee payment off for live runs on such venues.

Every exchange call is timed and handed to ``on_api_call(method, seconds, ok)`` (``ok``: the call
returned without raising) for a latency histogram.  API keys never reach a log: a filter redacts
them from ccxt's debug request log and from this module's messages.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ccxt
import requests

from features.data.ccxt_source import make_exchange
from features.data.schema import DataError
from serve.execution.brokers import Account, BrokerError, BrokerEvents, ExecutionBroker, OrderUpdate
from serve.execution.records import BarRecord, FillRecord, OrderRecord, OrderStatus

log = logging.getLogger(__name__)

ApiCallHook = Callable[[str, float, bool], None]

OUR_CLIENT_IDS = "mft"  # prefix of records.client_order_id: marks orders this platform placed
AMOUNT_TOLERANCE = 1e-12

# ccxt's unified order statuses; an open order with fills is partially filled
CCXT_STATUS = {
    "open": OrderStatus.OPEN, "canceling": OrderStatus.OPEN, "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED, "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
}

# environment variable suffix per ccxt credential; the prefix is MFT_<EXCHANGE>_
CREDENTIAL_ENV = {
    "apiKey": "API_KEY", "secret": "API_SECRET", "password": "API_PASSWORD", "uid": "API_UID",
    "privateKey": "API_PRIVATE_KEY", "walletAddress": "API_WALLET_ADDRESS",
}
FORBIDDEN_OVERRIDES = (*CREDENTIAL_ENV, "verbose")  # keys come from the environment; verbose prints them


@dataclass(frozen=True)
class ClientIdDialect:
    """How a venue takes our client order id when placing, when querying or cancelling, and how it says 'duplicate'."""

    place_param: str = "clientOrderId"
    lookup_param: str = "clientOrderId"
    duplicate_markers: tuple[str, ...] = ()


BINANCE_DIALECT = ClientIdDialect("newClientOrderId", "origClientOrderId", ("Duplicate order sent",))
DIALECTS = {"binance": BINANCE_DIALECT, "binanceus": BINANCE_DIALECT}


@dataclass
class _Tracked:
    """An order we follow until it is final and all its fills are reported."""

    instrument: str
    symbol: str
    sign: float
    last: OrderUpdate  # the state the actor was last told
    traded: float = 0.0  # units of the order's trades seen so far (reported now or before)


class _Redact(logging.Filter):
    """Replaces secrets in a log record's message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class CcxtBroker(ExecutionBroker):
    """Spot orders on one exchange account through ``client`` (a synchronous ccxt exchange with keys).

    ``symbols`` maps instruments ('binance:BTC/USDT') to ccxt symbols ('BTC/USDT'); every symbol
    must be quoted in ``quote``, the account's cash currency.
    """

    mode = "live"

    def __init__(self, client: Any, symbols: Mapping[str, str], quote: str, *,
                 on_api_call: ApiCallHook | None = None, dialect: ClientIdDialect | None = None,
                 resend_attempts: int = 1) -> None:
        if not symbols:
            raise DataError("a live broker needs at least one instrument")
        for instrument, symbol in symbols.items():
            if symbol.partition("/")[2].partition(":")[0] != quote:
                raise DataError(f"instrument {instrument} ({symbol}) is not quoted in the account currency {quote}")
        self._client = client
        self.exchange_id: str = client.id
        self.symbols = dict(symbols)
        self.quote = quote
        self.on_api_call = on_api_call
        self.dialect = dialect or DIALECTS.get(self.exchange_id, ClientIdDialect())
        self.resend_attempts = resend_attempts
        self._instruments = {symbol: instrument for instrument, symbol in symbols.items()}
        self._tracked: dict[str, _Tracked] = {}
        self._seen_trades: set[str] = set()
        self._redact = _Redact(str(getattr(client, name, "") or "") for name in CREDENTIAL_ENV)
        for logger in (client.logger, log):
            logger.addFilter(self._redact)

    def __repr__(self) -> str:  # never the client: it holds the keys
        return f"CcxtBroker({self.exchange_id}, {sorted(self.symbols)})"

    # -- ExecutionBroker -------------------------------------------------------------------
    def _submit(self, order: OrderRecord, bar: BarRecord | None) -> OrderUpdate:
        symbol = self._symbol(order.instrument)
        cid = order.client_order_id
        known = self._lookup(cid, symbol)  # a closed order's id would be accepted again: never resend it
        if known is not None:
            return self._track(cid, known)
        try:
            self._ensure_markets()  # precision needs them
            amount, price = self._precise(order, symbol)
        except ccxt.InvalidOrder as err:
            return self._rejected(order, err)
        failure: BaseException | None = None
        for _ in range(1 + self.resend_attempts):
            try:
                placed = self._call("create_order", symbol, order.order_type, order.side, amount, price,
                                    {self.dialect.place_param: cid})
                known = self._complete(cid, symbol, placed)
                if known is None:
                    raise BrokerError(f"{self.exchange_id} accepted order {cid} but cannot find it")
                return self._track(cid, known)
            except ccxt.BaseError as err:
                if self._is_rejection(err) and not self._is_duplicate(err):
                    return self._rejected(order, err)
                failure = err
                log.warning("order %s on %s: %s; looking it up by client id", cid, self.exchange_id, err)
                known = self._lookup(cid, symbol)
                if known is not None:
                    return self._track(cid, known)
                if self._is_duplicate(err):
                    break
        raise BrokerError(f"{self.exchange_id}: order {cid} state unknown after {failure}") from failure

    def _on_bar(self, bars: Mapping[str, BarRecord]) -> BrokerEvents:
        fills: list[FillRecord] = []
        updates: list[OrderUpdate] = []
        failures: list[str] = []
        polled = list(self._tracked.items())
        for cid, tracked in polled:
            try:
                update, new_fills, traded = self._poll(cid, tracked)
            except BrokerError as err:
                failures.append(f"{cid}: {err}")
                continue
            fills.extend(new_fills)  # commit only what was fully read, so nothing is lost on a failure
            self._seen_trades.update(f.exchange_fill_id for f in new_fills)
            tracked.traded = traded
            if update != tracked.last:
                updates.append(update)
                tracked.last = update
            if update.status.is_final and tracked.traded >= abs(update.filled_quantity) - AMOUNT_TOLERANCE:
                del self._tracked[cid]
        if failures:
            log.warning("%s: could not poll %d order(s): %s", self.exchange_id, len(failures), "; ".join(failures))
            if len(failures) == len(polled):
                raise BrokerError(f"{self.exchange_id}: polling failed for every working order: {failures[0]}")
        return BrokerEvents(fills, updates)

    def cancel(self, client_order_id: str) -> OrderUpdate:
        tracked = self._tracked.get(client_order_id)
        symbol = tracked.symbol if tracked else self._find_symbol(client_order_id)
        if symbol is None:  # never placed, or archived by the exchange: nothing can fill any more
            return OrderUpdate(client_order_id, OrderStatus.CANCELLED, reason=f"{self.exchange_id} does not know it")
        params = {self.dialect.lookup_param: client_order_id}
        try:
            cancelled = self._call("cancel_order", client_order_id, symbol, params)
        except ccxt.OrderNotFound:
            cancelled = None  # already final (filled or cancelled): its state says which
        except ccxt.BaseError as err:
            raise BrokerError(f"{self.exchange_id}: cancelling {client_order_id} failed: {err}") from err
        cancelled = self._complete(client_order_id, symbol, cancelled)
        if cancelled is None:
            return OrderUpdate(client_order_id, OrderStatus.CANCELLED, reason=f"{self.exchange_id} does not know it")
        return self._track(client_order_id, cancelled)

    def order_state(self, client_order_id: str) -> OrderUpdate | None:
        tracked = self._tracked.get(client_order_id)
        symbols = [tracked.symbol] if tracked else list(self.symbols.values())
        for symbol in symbols:
            known = self._lookup(client_order_id, symbol)
            if known is not None:
                return self._track(client_order_id, known)  # followed from now on: its fills get reported
        return None

    def open_orders(self) -> Sequence[OrderUpdate]:
        working = []
        for symbol in self.symbols.values():
            for raw in self._checked("fetch_open_orders", symbol):
                cid = str(raw.get("clientOrderId") or "")
                if cid.startswith(OUR_CLIENT_IDS):
                    working.append(self._track(cid, raw))
        return working

    def account(self) -> Account:
        totals = self._checked("fetch_balance").get("total") or {}
        units = {}
        for instrument, symbol in self.symbols.items():
            units[instrument] = float(totals.get(symbol.partition("/")[0]) or 0.0)
        return Account(cash=float(totals.get(self.quote) or 0.0), units=units)

    def close(self) -> None:
        for logger in (self._client.logger, log):
            logger.removeFilter(self._redact)
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()

    # -- exchange calls --------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        """One timed exchange call; ccxt errors propagate."""
        if method != "load_markets":
            self._ensure_markets()
        started, ok = time.perf_counter(), False
        try:
            result = getattr(self._client, method)(*args)
            ok = True
            return result
        finally:
            if self.on_api_call is not None:
                try:
                    self.on_api_call(method, time.perf_counter() - started, ok)
                except Exception:  # a metrics hook must not stop trading
                    log.exception("on_api_call hook failed for %s", method)

    def _ensure_markets(self) -> None:
        if not self._client.markets:
            self._checked("load_markets")

    def _checked(self, method: str, *args: Any) -> Any:
        """An exchange call whose failure leaves us without an answer: BrokerError."""
        try:
            return self._call(method, *args)
        except ccxt.BaseError as err:
            raise BrokerError(f"{self.exchange_id}: {method} failed: {err}") from err

    def _lookup(self, cid: str, symbol: str) -> dict[str, Any] | None:
        """The exchange's order under client id ``cid``, None when it does not know it."""
        try:
            known: dict[str, Any] = self._call("fetch_order", cid, symbol, {self.dialect.lookup_param: cid})
            return known
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as err:
            raise BrokerError(f"{self.exchange_id}: looking up order {cid} failed: {err}") from err

    def _complete(self, cid: str, symbol: str, raw: dict[str, Any] | None) -> dict[str, Any] | None:
        """``raw`` if it tells status and side (venues may answer an order request with an id only), else a lookup."""
        if raw and raw.get("status") and raw.get("side"):
            return raw
        return self._lookup(cid, symbol)

    def _find_symbol(self, cid: str) -> str | None:
        for symbol in self.symbols.values():
            if self._lookup(cid, symbol) is not None:
                return symbol
        return None

    def _poll(self, cid: str, tracked: _Tracked) -> tuple[OrderUpdate, list[FillRecord], float]:
        """The order's state now, its trades not reported yet, and the units of all its trades."""
        update = tracked.last
        if not update.status.is_final:
            known = self._lookup(cid, tracked.symbol)
            if known is None:
                raise BrokerError(f"{self.exchange_id} no longer knows order {cid}")
            update = self._update(cid, known, tracked.sign)
        if abs(update.filled_quantity) <= tracked.traded + AMOUNT_TOLERANCE:
            return update, [], tracked.traded
        trades = self._checked("fetch_order_trades", update.exchange_order_id, tracked.symbol)
        fresh = [t for t in trades if str(t["id"]) not in self._seen_trades]
        fresh.sort(key=lambda t: t.get("timestamp") or 0)
        traded = sum(float(t["amount"]) for t in trades)
        return update, [self._fill(cid, tracked, t) for t in fresh], traded

    # -- translation -----------------------------------------------------------------------
    def _symbol(self, instrument: str) -> str:
        symbol = self.symbols.get(instrument)
        if symbol is None:
            raise DataError(f"{self.exchange_id} broker does not trade {instrument}; it trades {sorted(self.symbols)}")
        return symbol

    def _precise(self, order: OrderRecord, symbol: str) -> tuple[float, float | None]:
        """Amount and limit price rounded to the market's steps (ccxt refuses an amount that rounds to 0)."""
        amount = float(self._client.amount_to_precision(symbol, abs(order.quantity)))
        if order.limit_price is None:
            return amount, None
        return amount, float(self._client.price_to_precision(symbol, order.limit_price))

    def _track(self, cid: str, raw: Mapping[str, Any]) -> OrderUpdate:
        """Follow the order in ``raw`` and return its state (the state the actor now knows)."""
        symbol = str(raw.get("symbol"))
        if symbol not in self._instruments:
            raise BrokerError(f"{self.exchange_id} order {cid} is on {symbol}, which this broker does not trade")
        sign = 1.0 if raw.get("side") == "buy" else -1.0
        update = self._update(cid, raw, sign)
        tracked = self._tracked.get(cid)
        if tracked is None:
            self._tracked[cid] = _Tracked(self._instruments[symbol], symbol, sign, update)
        else:
            tracked.last = update
        return update

    def _update(self, cid: str, raw: Mapping[str, Any], sign: float) -> OrderUpdate:
        status = CCXT_STATUS.get(str(raw.get("status")))
        if status is None:
            raise BrokerError(f"{self.exchange_id} order {cid} has an unknown status {raw.get('status')!r}")
        filled = float(raw.get("filled") or 0.0)
        if status is OrderStatus.OPEN and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        final_reason = "" if status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED) else (
            f"{self.exchange_id} status {(raw.get('info') or {}).get('status', raw.get('status'))}")
        return OrderUpdate(cid, status, sign * filled, str(raw.get("id")), final_reason)

    def _fill(self, cid: str, tracked: _Tracked, trade: Mapping[str, Any]) -> FillRecord:
        price, amount = float(trade["price"]), float(trade["amount"])
        stamp = trade.get("timestamp")
        return FillRecord(
            exchange_fill_id=str(trade["id"]), client_order_id=cid, instrument=tracked.instrument,
            quantity=tracked.sign * amount, price=price, fee=self._fee_in_quote(trade, tracked.symbol, price),
            filled_at=datetime.fromtimestamp(stamp / 1000, UTC) if stamp else datetime.now(UTC),
        )

    def _fee_in_quote(self, trade: Mapping[str, Any], symbol: str, price: float) -> float:
        fee = trade.get("fee") or {}
        cost, currency = float(fee.get("cost") or 0.0), fee.get("currency")
        if cost == 0.0 or currency == self.quote:
            return cost
        if currency == symbol.partition("/")[0]:
            return cost * price
        rate, problem = self._last_price(f"{currency}/{self.quote}")
        if rate is not None:
            return cost * rate
        log.warning("%s trade %s: fee %s %s has no price in %s (%s); recorded as 0",
                    self.exchange_id, trade.get("id"), cost, currency, self.quote, problem)
        return 0.0

    def _last_price(self, symbol: str) -> tuple[float | None, str]:
        """The last traded price of ``symbol``, or None and why not."""
        if symbol not in (self._client.markets or {}):
            return None, f"{self.exchange_id} lists no {symbol} market"
        try:
            last = (self._call("fetch_ticker", symbol) or {}).get("last")
        except ccxt.BaseError as err:
            return None, f"fetch_ticker {symbol} failed: {self._message(err)}"
        if last is None or not math.isfinite(float(last)) or float(last) <= 0:
            return None, f"{symbol} ticker has no usable last price ({last!r})"
        return float(last), ""

    def _rejected(self, order: OrderRecord, err: BaseException) -> OrderUpdate:
        reason = self._message(err)
        log.info("%s rejected order %s: %s", self.exchange_id, order.client_order_id, reason)
        return OrderUpdate(order.client_order_id, OrderStatus.REJECTED, reason=reason)

    def _message(self, err: BaseException) -> str:
        """The exchange's own words: the 'msg' of a JSON error body, else the text without ccxt's prefix."""
        text = str(err).removeprefix(f"{self.exchange_id} ").strip()
        start = text.find("{")
        if start >= 0:
            try:
                body = json.loads(text[start:])
            except ValueError:
                body = None
            if isinstance(body, dict) and (body.get("msg") or body.get("message")):
                return str(body.get("msg") or body.get("message"))
        return text

    @staticmethod
    def _is_rejection(err: BaseException) -> bool:
        """The exchange answered no: an ExchangeError not caused by the transport (ccxt wraps some as such)."""
        cause = err.__cause__
        transport = isinstance(cause, requests.RequestException) and not isinstance(cause, requests.HTTPError)
        return isinstance(err, ccxt.ExchangeError) and not transport

    def _is_duplicate(self, err: BaseException) -> bool:
        return isinstance(err, ccxt.DuplicateOrderId) or any(m in str(err) for m in self.dialect.duplicate_markers)


def credential_variables(exchange_id: str, names: Iterable[str]) -> dict[str, str]:
    """Environment variable per ccxt credential name: MFT_BINANCE_API_KEY for ('binance', 'apiKey')."""
    prefix = f"MFT_{exchange_id.upper()}_"
    return {name: prefix + CREDENTIAL_ENV.get(name, f"API_{name.upper()}") for name in names}


def make_ccxt_broker(exchange_id: str, instruments: Iterable[str], *, live: bool,
                     env: Mapping[str, str] = os.environ, config_overrides: Mapping[str, Any] | None = None,
                     on_api_call: ApiCallHook | None = None) -> CcxtBroker:
    """A live broker for ``instruments`` ('binance:BTC/USDT', ...): real money, so ``live=True`` is required."""
    if live is not True:
        raise DataError(f"refusing to build a live {exchange_id} broker: pass live=True to trade real orders")
    overrides = dict(config_overrides or {})
    forbidden = sorted(set(overrides) & set(FORBIDDEN_OVERRIDES))
    if forbidden:
        raise DataError(f"config_overrides may not set {forbidden}: keys come from the environment only")
    symbols = _symbols_of(exchange_id, instruments)
    quotes = {symbol.partition("/")[2].partition(":")[0] for symbol in symbols.values()}
    if len(quotes) != 1:
        raise DataError(f"a live broker trades one quote currency, got {sorted(quotes)} for {sorted(symbols)}")
    client = make_exchange(exchange_id, overrides)
    required = [name for name, needed in client.requiredCredentials.items() if needed]
    variables = credential_variables(exchange_id, required)
    missing = [variables[name] for name in required if not env.get(variables[name])]
    if missing:
        raise DataError(f"live {exchange_id} broker needs the environment variables {missing} (not set or empty)")
    for name in required:
        setattr(client, name, env[variables[name]])
    return CcxtBroker(client, symbols, quotes.pop(), on_api_call=on_api_call)


def _symbols_of(exchange_id: str, instruments: Iterable[str]) -> dict[str, str]:
    symbols = {}
    for instrument in instruments:
        venue, _, symbol = instrument.partition(":")
        if venue != exchange_id or "/" not in symbol:
            raise DataError(f"instrument {instrument!r} is not '{exchange_id}:BASE/QUOTE'")
        symbols[instrument] = symbol
    if not symbols:
        raise DataError(f"a live {exchange_id} broker needs at least one instrument")
    return symbols
