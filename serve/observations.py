"""From a request's latest bars (or a ready vector) to the observation a member was trained on.

The layout is the environment's (docs/envs.md): ``concat(market.ravel(), portfolio)`` with
``market`` the last ``window`` feature rows ``[window, N, F]`` and ``portfolio`` the ``2N + 2``
account values.  Features are rebuilt from the request's bars with the run's fitted pipeline and
feature selection (batch mode over the bars given), so the request must carry at least
``min_bars`` bars per instrument: the pipeline's warm-up plus the window.  Recursive indicators
(EMAs, Wilder averages) restart at the first bar given; ``recommended_bars`` more bars make them
match the training features to float32 precision (docs/serving.md has the measured difference).

The portfolio part comes from the request; the default is a flat account (no positions, all
cash, no unrealised PnL, 0 bars since the last trade: the state at the start of an episode).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from envs import EnvConfig
from envs.episodes import select_instruments
from features.data.schema import (
    OHLCV_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_DTYPE,
    BarKey,
    DataError,
    Dataset,
    parse_timeframe,
)
from features.data.validate import validate_bars
from features.panel import FeaturePanel
from features.pipeline import WARM
from rl.artifacts import AgentBundle

PROBE_BARS = 2_000  # synthetic bars used to measure the pipeline's warm-up


@dataclass(frozen=True)
class PortfolioState:
    """The account part of an observation, by instrument name ('exchange:SYMBOL')."""

    weights: Mapping[str, float] = field(default_factory=dict)  # signed position value / net worth
    cash_share: float | None = None  # default: 1 - sum(weights)
    unrealised_pnl: Mapping[str, float] = field(default_factory=dict)  # share of net worth
    bars_since_trade: int = 0  # bars since the last fill; 0 = an episode's start

    def vector(self, instruments: Sequence[str], window: int) -> np.ndarray:
        """``[weights..., cash_share, unrealised_pnl..., k / (k + window)]`` in ``instruments`` order."""
        lowered = [name.lower() for name in instruments]
        for what, values in (
            ("portfolio.weights", self.weights),
            ("portfolio.unrealised_pnl", self.unrealised_pnl),
        ):
            unknown = [name for name in values if name.lower() not in lowered]
            if unknown:
                raise DataError(
                    f"{what} names unknown instrument(s) {unknown}; this ensemble trades "
                    f"{', '.join(instruments)}"
                )
        weights = _by_instrument(self.weights, lowered)
        pnl = _by_instrument(self.unrealised_pnl, lowered)
        cash = 1.0 - float(sum(weights)) if self.cash_share is None else float(self.cash_share)
        idle = float(self.bars_since_trade)
        return np.array([*weights, cash, *pnl, idle / (idle + window)], dtype=np.float32)


def _by_instrument(values: Mapping[str, float], lowered: Sequence[str]) -> list[float]:
    given = {name.lower(): float(value) for name, value in values.items()}
    return [given.get(name, 0.0) for name in lowered]


@dataclass
class MarketInput:
    """What a bars request gives beyond the observation: the decision bar and its closes."""

    observation: np.ndarray
    timestamp: datetime  # open time of the decision bar
    closes: np.ndarray  # [N] closes of the decision bar, in the env's instrument order
    warnings: list[str]
    bars: FeaturePanel  # the request's bars, aligned, without features (for rule-based fallbacks)


class InputSpec:
    """How one run turns bars into observations; members with equal specs share one computation."""

    def __init__(self, bundle: AgentBundle) -> None:
        self.bundle = bundle
        env = EnvConfig.from_dict(bundle.env_settings)
        self.window = env.window
        self.timeframe = bundle.timeframe
        self.required = tuple(bundle.data_info["instruments"])  # what the pipeline was built on
        self.instruments = tuple(env.instruments) if env.instruments else self.required  # what the agent sees
        self.feature_names = tuple(bundle.feature_names)
        self.action_scheme = env.action.name
        self.warmup_rows = measure_warmup(bundle)
        self._step_us = int(parse_timeframe(self.timeframe).total_seconds() * 1_000_000)
        self.key = self._fingerprint(bundle)

    def _fingerprint(self, bundle: AgentBundle) -> str:
        state = {
            "pipeline": bundle.pipeline.state_dict(),
            "selection": self.feature_names,
            "instruments": self.instruments,
            "window": self.window,
            "timeframe": self.timeframe,
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def min_bars(self) -> int:
        return self.warmup_rows + self.window

    @property
    def recommended_bars(self) -> int:
        return self.min_bars + self.bundle.pipeline.lookback

    @property
    def observation_size(self) -> int:
        return self.window * len(self.instruments) * len(self.feature_names) + 2 * len(self.instruments) + 2

    def describe(self) -> dict[str, Any]:
        return {
            "instruments": list(self.required),
            "acting_on": list(self.instruments),
            "timeframe": self.timeframe,
            "window": self.window,
            "features": list(self.feature_names),
            "min_bars": self.min_bars,
            "recommended_bars": self.recommended_bars,
            "observation_size": self.observation_size,
            "action_scheme": self.action_scheme,
        }

    def from_vector(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        obs = np.asarray(values, dtype=np.float32).ravel()
        if obs.size != self.observation_size:
            raise DataError(
                f"observation has {obs.size} values; this ensemble expects {self.observation_size} "
                f"(window {self.window} x {len(self.instruments)} instrument(s) x "
                f"{len(self.feature_names)} features + {2 * len(self.instruments) + 2} portfolio values)"
            )
        if not np.isfinite(obs).all():
            raise DataError(f"observation value {int(np.flatnonzero(~np.isfinite(obs))[0])} is not finite")
        return obs

    def dataset(self, bars: Mapping[str, pl.DataFrame]) -> tuple[Dataset, list[str]]:
        """The request's bars as a validated dataset of the run's instruments; plus gap warnings."""
        wanted = {name.lower(): name for name in self.required}
        unknown = [name for name in bars if name.lower() not in wanted]
        if unknown:
            raise DataError(
                f"unknown instrument(s) {unknown}; this ensemble trades {', '.join(self.required)}"
            )
        given = {name.lower(): frame for name, frame in bars.items()}
        missing = [name for name in self.required if name.lower() not in given]
        if missing:
            raise DataError(
                f"bars for {', '.join(missing)} are missing; this ensemble needs {', '.join(self.required)}"
            )
        series: dict[BarKey, pl.DataFrame] = {}
        warnings: list[str] = []
        for name in self.required:
            frame = given[name.lower()]
            if frame.height < self.min_bars:
                raise DataError(
                    f"{name}: {frame.height} bars given, at least {self.min_bars} needed (feature warm-up "
                    f"{self.warmup_rows} + window {self.window}; {self.recommended_bars} for features "
                    f"equal to training)"
                )
            if not plain_bars(frame, self._step_us):  # only then the full validation, for its exact messages
                report = validate_bars(frame, f"{name} bars", self.timeframe)
                report.raise_for_errors()
                warnings += [f"{issue.format(report.source)}" for issue in report.warnings]
            exchange, symbol = name.split(":", 1)
            series[BarKey(exchange, symbol, self.timeframe)] = frame
        ends = {name: given[name.lower()][TIMESTAMP][-1] for name in self.required}
        if len(set(ends.values())) > 1:
            raise DataError(
                "bars end at different times: " + ", ".join(f"{n} at {t}" for n, t in ends.items())
            )
        return Dataset(series, name="request"), warnings

    def from_bars(self, bars: Mapping[str, pl.DataFrame], portfolio: PortfolioState) -> MarketInput:
        dataset, warnings = self.dataset(bars)
        panel = select_instruments(self.bundle.panel(dataset), list(self.instruments))
        if panel.n_bars < self.window:
            raise DataError(
                f"only {panel.n_bars} bars have every feature after the warm-up, the window needs "
                f"{self.window}: send more bars (at least {self.min_bars} per instrument)"
            )
        market = panel.features[-self.window :].ravel()
        obs = np.concatenate([market, portfolio.vector(self.instruments, self.window)]).astype(np.float32)
        last = panel.timestamps[-1].astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)
        return MarketInput(obs, last, panel.close[-1].copy(), warnings, bars_panel(dataset, self.instruments))


def plain_bars(frame: pl.DataFrame, step_us: int) -> bool:
    """True when the bars are finite, positive, consistent (low <= open, close <= high) and evenly spaced
    one bar apart: what :func:`validate_bars` would pass without an error or a gap, checked in numpy."""
    o, h, lo, c, v = (frame[col].to_numpy() for col in OHLCV_COLUMNS)
    prices = np.stack([o, h, lo, c])
    if not (np.isfinite(prices).all() and (prices > 0).all() and np.isfinite(v).all() and (v >= 0).all()):
        return False
    if not ((h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()):
        return False
    steps = np.diff(frame[TIMESTAMP].dt.epoch("us").to_numpy())
    return bool((steps == step_us).all())


def bars_panel(dataset: Dataset, instruments: Sequence[str]) -> FeaturePanel:
    """The dataset's bars on their common timestamps, no features: what rule-based baselines read."""
    keys = [dataset.key(name) for name in instruments]
    timeline = dataset[keys[0]].select(TIMESTAMP)
    for key in keys[1:]:
        timeline = timeline.join(dataset[key].select(TIMESTAMP), on=TIMESTAMP, how="inner")
    frames = [timeline.join(dataset[k], on=TIMESTAMP, how="left", maintain_order="left") for k in keys]
    ohlcv = np.stack([f.select(OHLCV_COLUMNS).to_numpy().astype(np.float64) for f in frames], axis=1)
    timestamps = timeline[TIMESTAMP].dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    return FeaturePanel(
        timestamps, tuple(keys), (), np.zeros((len(timestamps), len(keys), 0), np.float32), ohlcv
    )


def synthetic_bars(keys: Sequence[BarKey], n: int, seed: int = 0) -> Dataset:
    """A random walk of ``n`` bars per key: positive prices, volumes and consistent highs and lows."""
    rng = np.random.default_rng(seed)
    step = parse_timeframe(keys[0].timeframe)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    times = pl.datetime_range(
        start, start + step * (n - 1), step, eager=True, time_unit="us", time_zone="UTC"
    )
    series = {}
    for key in keys:
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0.0, 0.005, n)) * close
        series[key] = pl.DataFrame(
            {
                TIMESTAMP: times,
                "open": open_,
                "high": np.maximum(open_, close) + spread,
                "low": np.minimum(open_, close) - spread,
                "close": close,
                "volume": rng.uniform(10.0, 100.0, n),
            }
        ).with_columns(pl.col(TIMESTAMP).cast(TIMESTAMP_DTYPE))
    return Dataset(series, name="probe")


def measure_warmup(bundle: AgentBundle, n: int = PROBE_BARS) -> int:
    """Rows before the first one with every feature of every instrument, on synthetic bars."""
    pairs = [name.split(":", 1) for name in bundle.data_info["instruments"]]
    keys = [BarKey(exchange, symbol, bundle.timeframe) for exchange, symbol in pairs]
    frames = bundle.pipeline.transform(synthetic_bars(keys, n))
    warm = np.logical_and.reduce([frame[WARM].to_numpy() for frame in frames.values()])
    if not warm.any():
        raise DataError(f"{bundle.run}: the feature pipeline needs more than {n} bars of warm-up")
    return int(np.argmax(warm))
