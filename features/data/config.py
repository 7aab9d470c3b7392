"""Typed configuration of the data stage (Hydra group `data`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from features.data.schema import DataError


@dataclass
class DataConfig:
    """Which bars to use and how to treat them.

    name: a bundled dataset (``mft data list``) or a path to a file or folder of OHLCV files.
    symbols: keep only these series (e.g. ``["BTC/USDT"]``); empty keeps all.
    gap_policy: ``leave`` (default), ``ffill`` (flat bars flagged in ``is_filled``) or ``drop`` (longest span).
    start, end: optional ISO dates cutting the span (end exclusive), applied before the split.
    validation_days: length of the validation span at the end of the data (the last N days).
    """

    name: str = "binance_btc_1h"
    symbols: list[str] | None = None
    gap_policy: str = "leave"
    start: str | None = None
    end: str | None = None
    validation_days: float = 365.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"data config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)
