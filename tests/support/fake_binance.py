"""A local fake of the Binance spot REST API, so the real ccxt client can be tested offline.

The server binds 127.0.0.1 on an ephemeral port and answers, from bars you give it, the
public endpoints ccxt's ``binance`` class calls to load spot markets and page through
klines.  Every request is recorded (method, path, query parameters, status served) so
tests can assert pagination and cache reuse, and a queue of scripted responses injects
faults (HTTP 503, 429 with Retry-After, ...) ahead of the normal answers.

Endpoints live in a route table keyed by (method, path); later layers add their own
(for example order endpoints) with :meth:`FakeBinance.add_route`.
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import polars as pl

from features.data.schema import TIMESTAMP, parse_timeframe

MAX_KLINES = 1000
DEFAULT_KLINES = 500


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server saw, with the HTTP status it answered."""

    method: str
    path: str
    params: dict[str, str]
    status: int


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ScriptedResponse:
    """A canned answer served instead of the normal one; ``path=None`` matches any path."""

    response: Response
    path: str | None = None


Handler = Callable[[RecordedRequest], Response]


def binance_error(status: int, code: int, msg: str) -> Response:
    """Binance's error shape: HTTP 4xx with ``{"code": -1121, "msg": "Invalid symbol."}``."""
    return Response(status, {"code": code, "msg": msg})


def _number(value: float) -> str:
    """Binance sends decimals as fixed 8-place strings; fall back to repr if that would round."""
    text = f"{value:.8f}"
    return text if float(text) == value else repr(value)


def _market_id(symbol: str) -> str:
    return symbol.replace("/", "")


class FakeBinance:
    """Threaded fake Binance spot server serving ``bars[symbol]`` (unified 'BTC/USDT') at one interval."""

    def __init__(self, bars: Mapping[str, pl.DataFrame], interval: str = "1h",
                 clock: Callable[[], datetime] | None = None) -> None:
        self.interval = interval
        self.clock = clock  # with a clock, only bars opened by its time exist (the last one still forming)
        self._interval_ms = int(parse_timeframe(interval).total_seconds() * 1000)
        self._symbols = {_market_id(symbol): symbol for symbol in bars}
        self._open_ms = {_market_id(s): _open_times_ms(f) for s, f in bars.items()}
        self._rows = {_market_id(s): f for s, f in bars.items()}
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripted: deque[ScriptedResponse] = deque()
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/api/v3/ping"): lambda _: Response(200, {}),
            ("GET", "/api/v3/time"): lambda _: Response(200, {"serverTime": int(time.time() * 1000)}),
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/klines"): self._klines,
        }
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-binance", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeBinance:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- test controls ---------------------------------------------------------------------
    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def script(self, status: int, body: Any = "", headers: dict[str, str] | None = None,
               path: str | None = None, times: int = 1) -> None:
        """Queue ``times`` canned responses served, in order, before normal answers on ``path``."""
        with self._lock:
            for _ in range(times):
                self._scripted.append(ScriptedResponse(Response(status, body, headers or {}), path))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        """Forget recorded requests and drop any scripted responses not yet served."""
        with self._lock:
            self._requests.clear()
            self._scripted.clear()

    @property
    def pending_scripted(self) -> int:
        with self._lock:
            return len(self._scripted)

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, str]) -> Response:
        request = RecordedRequest(method, path, params, status=0)
        response = self._take_scripted(path)
        if response is None:
            response = self._route(request)
        with self._lock:
            self._requests.append(RecordedRequest(method, path, params, response.status))
        return response

    def _route(self, request: RecordedRequest) -> Response:
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return binance_error(404, -1000, f"unknown path {request.path}")
        try:
            return handler(request)
        except Exception as err:  # a broken route must answer, not drop the connection
            return Response(500, f"fake binance: {request.path} handler failed: {err!r}")

    def _take_scripted(self, path: str) -> Response | None:
        with self._lock:
            for scripted in self._scripted:
                if scripted.path in (None, path):
                    self._scripted.remove(scripted)
                    return scripted.response
        return None

    # -- endpoints -------------------------------------------------------------------------
    def _exchange_info(self, _: RecordedRequest) -> Response:
        symbols = [_spot_symbol(market_id, unified) for market_id, unified in self._symbols.items()]
        return Response(200, {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        })

    def _klines(self, request: RecordedRequest) -> Response:
        params = request.params
        market_id = params.get("symbol", "")
        if market_id not in self._rows:
            return binance_error(400, -1121, "Invalid symbol.")
        if params.get("interval") != self.interval:
            return binance_error(400, -1120, "Invalid interval.")
        limit = int(params.get("limit", DEFAULT_KLINES))
        if not 1 <= limit <= MAX_KLINES:
            return binance_error(400, -1130, "Data sent for parameter 'limit' is not valid.")
        end = params.get("endTime")
        if self.clock is not None:  # the exchange's "now": later bars have not happened yet
            now_ms = str(int(self.clock().timestamp() * 1000))
            end = now_ms if end is None or int(end) > int(now_ms) else end
        lo, hi = self._window(market_id, params.get("startTime"), end, limit)
        frame = self._rows[market_id].slice(lo, hi - lo)
        return Response(200, [self._kline(row) for row in frame.iter_rows(named=True)])

    def _window(self, market_id: str, start: str | None, end: str | None, limit: int) -> tuple[int, int]:
        """Row range Binance serves: the first ``limit`` bars from startTime, else the last before endTime."""
        opens = self._open_ms[market_id]
        lo = 0 if start is None else bisect_left(opens, int(start))
        hi = len(opens) if end is None else bisect_right(opens, int(end))
        if start is None:
            return max(lo, hi - limit), hi
        return lo, max(lo, min(hi, lo + limit))

    def _kline(self, row: dict[str, Any]) -> list[Any]:
        open_ms = int(row[TIMESTAMP].timestamp() * 1000)
        return [
            open_ms, _number(row["open"]), _number(row["high"]), _number(row["low"]),
            _number(row["close"]), _number(row["volume"]), open_ms + self._interval_ms - 1,
            _number(row.get("quote_volume", 0.0)), int(row.get("trades", 0)),
            _number(row.get("taker_buy_volume", 0.0)), _number(row.get("taker_buy_quote_volume", 0.0)), "0",
        ]


def _open_times_ms(frame: pl.DataFrame) -> list[int]:
    opens = frame[TIMESTAMP].dt.epoch("ms").to_list()
    if opens != sorted(set(opens)):
        raise ValueError("fake binance bars must have strictly increasing timestamps")
    return opens


def _spot_symbol(market_id: str, unified: str) -> dict[str, Any]:
    base, quote = unified.split("/")
    return {
        "symbol": market_id, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
             "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
             "stepSize": "0.00001000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"},
        ],
    }


def _make_handler(fake: FakeBinance) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params = dict(parse_qsl(parts.query)) | dict(parse_qsl(body))
            response = fake.handle(self.command, parts.path, params)
            is_text = isinstance(response.body, str)
            payload = (response.body if is_text else json.dumps(response.body)).encode()
            self.send_response(response.status)
            self.send_header("Content-Type", "text/plain" if is_text else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return _Handler


def local_api_urls(base_url: str) -> dict[str, str]:
    """Every entry of ccxt's binance ``urls['api']`` re-pointed at ``base_url`` (same paths)."""
    defaults: dict[str, str] = ccxt.binance().urls["api"]
    return {name: base_url + urlsplit(url).path for name, url in defaults.items()}


def ccxt_config(server: FakeBinance, rate_limit_ms: int = 1) -> dict[str, Any]:
    """ccxt constructor config aimed at ``server``: spot markets only, local urls, a tiny rate limit."""
    return {
        "urls": {"api": local_api_urls(server.url)},
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        "enableRateLimit": True,
        "rateLimit": rate_limit_ms,
        "timeout": 5000,
    }


def binance_client(server: FakeBinance, rate_limit_ms: int = 1) -> ccxt.binance:
    """A real ``ccxt.binance`` client that talks only to ``server``."""
    return ccxt.binance(ccxt_config(server, rate_limit_ms))
