"""The one seam between MFT and wherever bars come from (an exchange API, a cache, a file)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime

import polars as pl

from features.data.schema import BarKey


class OhlcvSource(ABC):
    """Something that can produce closed OHLCV bars for a :class:`BarKey`."""

    @abstractmethod
    def fetch(self, key: BarKey, since: datetime, until: datetime | None = None) -> pl.DataFrame:
        """Closed bars with ``since <= bar open < until`` (``until=None`` means now), in the bar schema,
        sorted by time, without duplicates.  Missing bars (exchange outages) are left missing."""


def as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime; a naive one is taken to already be in UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
