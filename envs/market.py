"""Precomputed market arrays the environment reads in its hot path.

Everything that does not depend on the agent is computed once here: the bar
prices as per-bar Python lists (indexing a list of floats is several times
cheaper than indexing a numpy array one element at a time), the flattened
float32 features (an observation window is then one contiguous slice), the
per-bar slippage and impact factors of the cost model (from the rolling
volatility and reference volume), the sizing fractions, and the fees and
minimum order size of each instrument's exchange.

Every rolling estimate at bar ``t`` uses bars ``<= t`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.config import CostConfig
from envs.rolling import log_returns, rolling_mean, rolling_mean_std
from features.data.schema import DataError
from features.panel import OHLCV_FIELDS, FeaturePanel


def _check_prices(panel: FeaturePanel) -> None:
    bad = ~np.isfinite(panel.ohlcv)
    prices = panel.ohlcv[:, :, :4]
    if bad.any() or (prices <= 0).any() or (panel.ohlcv[:, :, 4] < 0).any():
        mask = bad.copy()
        mask[:, :, :4] |= prices <= 0
        mask[:, :, 4] |= panel.ohlcv[:, :, 4] < 0
        row, inst, col = (int(i) for i in np.argwhere(mask)[0])
        raise DataError(
            f"bar {OHLCV_FIELDS[col]} of {panel.keys[inst]} is {panel.ohlcv[row, inst, col]} at row {row} "
            f"({panel.timestamps[row]}): prices must be finite and > 0, volume finite and >= 0"
        )
    if not np.isfinite(panel.features).all():
        raise DataError("features hold NaN or infinite values: the panel must be causal and complete")


def _padded_features(panel: FeaturePanel) -> np.ndarray:
    """Flat features followed by room for the portfolio part of an observation.

    An observation is then one slice copy of ``market + portfolio`` floats whose
    tail is overwritten with the portfolio state, even at the last bar.
    """
    flat = np.ascontiguousarray(panel.features, dtype=np.float32).reshape(-1)
    return np.concatenate([flat, np.zeros(2 * len(panel.keys) + 2, dtype=np.float32)])


@dataclass(frozen=True)
class MarketData:
    """Arrays of one panel (or one episode's slice of it) ready for stepping."""

    panel: FeaturePanel
    offset: int  # bar index of row 0 in the panel the caller built the environment from
    features_flat: np.ndarray  # [T * N * F + 2N + 2] float32: C order of [T, N, F], then zero padding
    close_rows: list[list[float]]  # [T][N]
    # Everything the broker reads for a fill on bar t: the open, high and low of t ([N] each), and the
    # slippage fraction and impact factor of a market order decided at t - 1, where a market order of
    # notional x moves the price by min(cap, (x * impact) ** exponent).
    fill_rows: list[tuple[list[float], list[float], list[float], list[float], list[float]]]
    scale_rows: list[list[float]]  # sizing rule's fraction of equity at t
    maker: list[float]  # [N] fee fractions
    taker: list[float]
    min_notional: list[float]

    @classmethod
    def build(
        cls, panel: FeaturePanel, costs: CostConfig, fractions: np.ndarray | None = None, offset: int = 0
    ) -> MarketData:
        """Arrays for ``panel``; ``fractions`` [T, N] come from a sizing rule (default: all 1)."""
        _check_prices(panel)
        ohlcv = np.ascontiguousarray(panel.ohlcv, dtype=np.float64)
        close = ohlcv[:, :, 3]
        _, sigma = rolling_mean_std(log_returns(close), costs.vol_lookback)
        volume = rolling_mean(close * ohlcv[:, :, 4], costs.volume_lookback)
        # coef * (notional / volume) ** e == (notional * coef ** (1 / e) / volume) ** e; no volume -> the cap
        with np.errstate(divide="ignore"):
            impact = np.where(volume > 0, costs.impact_coef ** (1.0 / costs.impact_exponent) / volume, np.inf)
        exchanges = [key.exchange for key in panel.keys]
        rows = {name: ohlcv[:, :, k].tolist() for k, name in enumerate(("open", "high", "low", "close"))}
        slippage = (costs.slippage_bps / 1e4 + costs.slippage_vol_mult * sigma).tolist()
        impact_rows = (impact if costs.impact_coef > 0 else np.zeros_like(volume)).tolist()
        # Everything the broker reads for a fill on bar t, in one tuple (row 0 has no decision bar before it).
        fill_rows = list(zip(rows["open"], rows["high"], rows["low"], [slippage[0], *slippage[:-1]],
                             [impact_rows[0], *impact_rows[:-1]], strict=True))
        return cls(
            panel=panel,
            offset=offset,
            features_flat=_padded_features(panel),
            close_rows=rows["close"],
            fill_rows=fill_rows,
            scale_rows=(np.ones_like(close) if fractions is None else fractions).tolist(),
            maker=[costs.fees_for(e).maker for e in exchanges],
            taker=[costs.fees_for(e).taker for e in exchanges],
            min_notional=[costs.min_notional_for(e) for e in exchanges],
        )

    @property
    def n_bars(self) -> int:
        return self.panel.n_bars

    @property
    def n_instruments(self) -> int:
        return len(self.panel.keys)

    @property
    def n_features(self) -> int:
        return len(self.panel.feature_names)

    @property
    def close(self) -> np.ndarray:
        return self.panel.ohlcv[:, :, 3]


class MarketRow:
    """The market as an action scheme sees it at the close of one bar; updated in place each step."""

    __slots__ = ("bar", "close", "min_notional", "scale")

    def __init__(self, min_notional: list[float]) -> None:
        self.bar = 0
        self.close: list[float] = []
        self.scale: list[float] = []  # sizing rule's fraction of equity per instrument at this bar
        self.min_notional = min_notional
