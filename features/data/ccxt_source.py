"""Exchange OHLCV through ccxt, with retries, pagination and a parquet cache.

:class:`CcxtSource` pages through ``fetch_ohlcv`` of any ccxt exchange (synchronous
client, ccxt's own rate limiter on), retries transient failures with exponential
backoff, drops the still-open last bar and returns frames in the project bar schema.
:class:`CachedSource` wraps any :class:`OhlcvSource` with one parquet file per
:class:`BarKey` and asks the wrapped source only for the bars it does not hold yet.
:func:`fetch_to_cache` is the entry point of ``mft data fetch``.

Venue differences (page size, ccxt options, whether ``fetch_ohlcv`` understands an
``until`` bound) are data in :data:`VENUES`, not branches in the code.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import ccxt
import polars as pl
from tqdm import tqdm

from features.data.loader import write_bars
from features.data.schema import (
    OHLCV_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_DTYPE,
    BarKey,
    DataError,
    empty_bars,
    parse_timeframe,
)
from features.data.source import OhlcvSource, as_utc, utc_now

log = logging.getLogger(__name__)
T = TypeVar("T")

# ccxt's NetworkError is the parent of these; they are listed to say which failures are worth a retry.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ccxt.RequestTimeout,
    ccxt.DDoSProtection,
    ccxt.RateLimitExceeded,
    ccxt.ExchangeNotAvailable,
    ccxt.NetworkError,
)
RATE_LIMIT_ERRORS: tuple[type[Exception], ...] = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)


@dataclass(frozen=True)
class VenueProfile:
    """What differs between exchanges when paging through OHLCV history."""

    page_limit: int = 500
    ccxt_config: Mapping[str, Any] = field(default_factory=dict)
    # ccxt's unified ``params={"until": ms}`` bound; only sent where the venue maps it to its API.
    accepts_until: bool = False


_SPOT_ONLY = {"options": {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot"}}
VENUES: dict[str, VenueProfile] = {
    "binance": VenueProfile(page_limit=1000, ccxt_config=_SPOT_ONLY, accepts_until=True),
    "binanceus": VenueProfile(page_limit=1000, ccxt_config=_SPOT_ONLY, accepts_until=True),
    "bitstamp": VenueProfile(page_limit=1000),
    "kraken": VenueProfile(page_limit=720),
}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: waits base, 2*base, 4*base, ... (capped), at most ``attempts`` tries."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise DataError(f"bad retry policy {self}: need attempts >= 1 and 0 <= base_delay <= max_delay")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = self.base_delay * 2 ** (attempt - 1)
        return min(self.max_delay, max(backoff, retry_after or 0.0))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict merge where ``override`` wins; used so test urls replace single api entries."""
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def make_exchange(exchange_id: str, config: Mapping[str, Any] | None = None) -> Any:
    """A synchronous ccxt client with its rate limiter on, venue defaults, then ``config`` on top."""
    exchange_class = getattr(ccxt, exchange_id, None)
    if exchange_id not in ccxt.exchanges or exchange_class is None:
        raise DataError(f"unknown exchange {exchange_id!r}: ccxt has no such exchange id")
    profile = VENUES.get(exchange_id, VenueProfile())
    settings = deep_merge({"enableRateLimit": True, **profile.ccxt_config}, config or {})
    return exchange_class(settings)


def _to_ms(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1000)


def _rows_to_frame(rows: list[list[Any]], origin: str) -> pl.DataFrame:
    """ccxt's [ms, open, high, low, close, volume] rows -> bar schema, deduplicated and sorted."""
    if not rows:
        return empty_bars()
    schema = {"ms": pl.Int64, **{c: pl.Float64 for c in OHLCV_COLUMNS}}
    frame = pl.DataFrame([row[:6] for row in rows], schema=schema, orient="row", strict=False)
    frame = frame.select(
        pl.from_epoch("ms", time_unit="ms").dt.replace_time_zone("UTC").cast(TIMESTAMP_DTYPE).alias(TIMESTAMP),
        *OHLCV_COLUMNS,
    )
    holes = frame.filter(pl.any_horizontal(pl.col(OHLCV_COLUMNS).is_null()))
    if holes.height:
        raise DataError(f"{origin}: exchange sent a bar with missing values at {holes[TIMESTAMP][0]}")
    return frame.unique(TIMESTAMP, keep="last").sort(TIMESTAMP)


class CcxtSource(OhlcvSource):
    """Closed OHLCV bars from one ccxt exchange, paged, retried and rate limited."""

    def __init__(
        self,
        exchange_id: str,
        config: Mapping[str, Any] | None = None,
        *,
        page_limit: int | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        progress: bool | None = None,
    ) -> None:
        self.exchange_id = exchange_id.strip().lower()
        self.profile = VENUES.get(self.exchange_id, VenueProfile())
        self.exchange = make_exchange(self.exchange_id, config)
        self.page_limit = page_limit or self.profile.page_limit
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._progress = sys.stderr.isatty() if progress is None else progress

    def fetch(self, key: BarKey, since: datetime, until: datetime | None = None) -> pl.DataFrame:
        if key.exchange != self.exchange_id:
            raise DataError(f"{key} asked of the {self.exchange_id} source")
        now_ms = _to_ms(self._clock())
        start_ms, end_ms = _to_ms(since), min(now_ms, _to_ms(until) if until else now_ms)
        if start_ms >= end_ms:
            return empty_bars()
        self._check_market(key)
        step_ms = int(parse_timeframe(key.timeframe).total_seconds() * 1000)
        rows = self._paginate(key, start_ms, end_ms, step_ms)
        closed = [row for row in rows if row[0] + step_ms <= now_ms]
        return _rows_to_frame(closed, str(key))

    def _check_market(self, key: BarKey) -> None:
        markets = self._call(f"load markets for {key}", self.exchange.load_markets)
        if key.symbol not in markets:
            quote = key.symbol.split("/")[-1]
            alike = sorted(s for s in markets if s.endswith("/" + quote))[:5]
            raise DataError(
                f"{self.exchange_id} has no market {key.symbol!r} ({len(markets)} markets loaded; "
                f"for example {', '.join(alike) or 'none'})"
            )
        if key.timeframe not in (self.exchange.timeframes or {}):
            offered = ", ".join(self.exchange.timeframes or {}) or "none"
            raise DataError(f"{self.exchange_id} has no {key.timeframe!r} bars for {key.symbol}; it offers {offered}")

    def _paginate(self, key: BarKey, start_ms: int, end_ms: int, step_ms: int) -> list[list[Any]]:
        """Page forward from ``start_ms`` past the last bar returned until ``end_ms`` or an empty page."""
        rows: list[list[Any]] = []
        cursor = start_ms
        expected = max(1, (end_ms - start_ms) // step_ms)
        with tqdm(total=expected, unit="bar", desc=str(key), disable=not self._progress, leave=False) as bar:
            while cursor < end_ms:
                page = [row for row in self._page(key, cursor, end_ms) if cursor <= row[0] < end_ms]
                if not page:
                    break
                rows.extend(page)
                bar.update(len(page))
                cursor = max(row[0] for row in page) + step_ms
        return rows

    def _page(self, key: BarKey, cursor: int, end_ms: int) -> list[list[Any]]:
        params = {"until": end_ms - 1} if self.profile.accepts_until else {}

        def request() -> list[list[Any]]:
            return self.exchange.fetch_ohlcv(
                key.symbol, key.timeframe, since=cursor, limit=self.page_limit, params=params
            )

        when = datetime.fromtimestamp(cursor / 1000, tz=UTC).isoformat()
        return self._call(f"fetch_ohlcv {key.symbol} {key.timeframe} since {when}", request)

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """Run one exchange request, retrying transient failures; other ccxt errors become DataError."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return request()
            except TRANSIENT_ERRORS as err:
                if attempt == self.retry.attempts:
                    raise DataError(
                        f"{self.exchange_id}: {what} still failing after {attempt} attempts: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                wait = self.retry.delay(attempt, self._retry_after(err))
                log.warning("%s: %s failed (%s), retry %d in %.3gs", self.exchange_id, what,
                            type(err).__name__, attempt, wait)
                self._sleep(wait)
            except ccxt.BaseError as err:
                raise DataError(f"{self.exchange_id}: {what} failed: {type(err).__name__}: {err}") from err
        raise AssertionError("unreachable: the last attempt either returns or raises")

    def _retry_after(self, err: Exception) -> float | None:
        """Seconds the exchange asked us to wait (Retry-After header) when it rate limited us."""
        if not isinstance(err, RATE_LIMIT_ERRORS):
            return None
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        try:
            return float(headers.get("Retry-After", ""))
        except ValueError:
            return None


def cache_path(cache_dir: Path, key: BarKey) -> Path:
    """cache_dir/exchange/BTC-USDT_1h.parquet (the bundled data's layout; '/' and ':' become '-')."""
    name = key.symbol.replace("/", "-").replace(":", "-")
    return Path(cache_dir) / key.exchange / f"{name}_{key.timeframe}.parquet"


def read_cache(path: Path) -> pl.DataFrame | None:
    """The cached bars at ``path``, ``None`` if there is no file; a damaged file is a DataError."""
    if not path.exists():
        return None
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars raises several kinds for a truncated or foreign file
        raise DataError(f"cache file {path} cannot be read ({err}); delete it to fetch again") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing or frame.schema[TIMESTAMP] != TIMESTAMP_DTYPE:
        raise DataError(f"cache file {path} is not a bar frame (missing {missing or 'none'}, "
                        f"timestamp type {frame.schema.get(TIMESTAMP)}); delete it to fetch again")
    return frame


class CachedSource(OhlcvSource):
    """One parquet per BarKey in ``cache_dir``; only bars outside the cached span are fetched.

    The cache always holds one contiguous fetched span (inner gaps are exchange outages), so
    a request is served by fetching before the first cached bar and after the last one.
    """

    def __init__(self, source: OhlcvSource, cache_dir: Path | str, clock: Callable[[], datetime] = utc_now):
        self.source = source
        self.cache_dir = Path(cache_dir)
        self._clock = clock

    def path_for(self, key: BarKey) -> Path:
        return cache_path(self.cache_dir, key)

    def fetch(self, key: BarKey, since: datetime, until: datetime | None = None) -> pl.DataFrame:
        return self.update(key, since, until)[0]

    def update(self, key: BarKey, since: datetime, until: datetime | None = None) -> tuple[pl.DataFrame, int]:
        """Bars of ``[since, until)`` and how many of them had to be fetched, cache refreshed on disk."""
        since, end = as_utc(since), as_utc(until) if until else self._clock()
        if since >= end:
            raise DataError(f"{key}: start {since.isoformat()} is not before end {end.isoformat()}")
        path = self.path_for(key)
        cached = read_cache(path)
        fresh = [self.source.fetch(key, start, stop) for start, stop in self._missing(key, cached, since, end)]
        merged = _merge(cached, fresh)
        added = merged.height - (cached.height if cached is not None else 0)
        if added or cached is None:
            write_bars(merged, path)
            log.info("%s: %d new bars, %d cached in %s", key, added, merged.height, path)
        span = merged.filter((pl.col(TIMESTAMP) >= since) & (pl.col(TIMESTAMP) < end))
        return span, added

    @staticmethod
    def _missing(key: BarKey, cached: pl.DataFrame | None, since: datetime, end: datetime
                 ) -> list[tuple[datetime, datetime]]:
        if cached is None or cached.is_empty():
            return [(since, end)]
        first, last = cast(datetime, cached[TIMESTAMP].min()), cast(datetime, cached[TIMESTAMP].max())
        after_last = last + parse_timeframe(key.timeframe)
        spans = []
        if since < first:
            spans.append((since, first))
        if end > after_last:
            spans.append((after_last, end))  # from the cache edge, so the cached span stays contiguous
        return spans


def _merge(cached: pl.DataFrame | None, fresh: list[pl.DataFrame]) -> pl.DataFrame:
    parts = [frame for frame in ([cached] if cached is not None else []) + fresh if not frame.is_empty()]
    if not parts:
        return cached if cached is not None else empty_bars()
    merged = pl.concat(parts, how="diagonal_relaxed")
    return merged.unique(TIMESTAMP, keep="first").sort(TIMESTAMP)


def fetch_to_cache(
    exchange_id: str,
    symbol: str,
    timeframe: str,
    since: datetime,
    until: datetime | None,
    cache_dir: Path,
    ccxt_config: dict[str, Any] | None = None,
) -> tuple[Path, pl.DataFrame, int]:
    """Bring the cache for (exchange, symbol, timeframe) up to ``[since, until)``.

    Returns the cache file, the bars of the span and how many bars were newly fetched.
    """
    key = BarKey(exchange_id, symbol, timeframe)
    cached = CachedSource(CcxtSource(key.exchange, ccxt_config), cache_dir)
    frame, added = cached.update(key, since, until)
    return cached.path_for(key), frame, added
