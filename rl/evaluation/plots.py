"""Figures of a backtest: equity and drawdown, trades on price, rolling Sharpe, return distribution.

Figures are built with the object-oriented ``matplotlib.figure.Figure`` API (no
pyplot state, no display needed; rendering goes through Agg for PNG and the SVG
backend for inline SVG).  Long series are thinned to at most ``max_points``
points by keeping each bucket's minimum and maximum, so peaks and troughs
(drawdowns) survive the thinning.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from matplotlib.figure import Figure

from rl.evaluation import trades as ledger_tools
from rl.evaluation.metrics import drawdown_series, rolling_sharpe, simple_returns

MAX_POINTS = 4_000
STRATEGY_COLOR = "#1f5fa8"
BENCHMARK_COLOR = "#9a9a9a"


def thin(series: pd.Series, max_points: int = MAX_POINTS) -> pd.Series:
    """At most ~``max_points`` points: each bucket's min and max, in time order."""
    if len(series) <= max_points:
        return series
    buckets = np.array_split(np.arange(len(series)), max_points // 2)
    values = series.to_numpy()
    keep = sorted(
        {int(b[np.argmin(values[b])]) for b in buckets} | {int(b[np.argmax(values[b])]) for b in buckets}
    )
    return series.iloc[keep]


def equity_drawdown_figure(equity: pd.Series, benchmark: pd.Series | None = None, title: str = "") -> Figure:
    """Equity (both curves rebased to the strategy's start value) above their drawdowns."""
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    curves = [("strategy", equity, STRATEGY_COLOR)]
    if benchmark is not None:
        rebased = benchmark / benchmark.iloc[0] * equity.iloc[0]
        curves.append(("buy and hold", rebased, BENCHMARK_COLOR))
    for label, curve, color in curves:
        top.plot(thin(curve).index, thin(curve).to_numpy(), label=label, color=color, lw=1.2)
        drawdown = thin(drawdown_series(curve))
        bottom.fill_between(
            drawdown.index, drawdown.to_numpy() * 100, 0, color=color, alpha=0.35, label=label
        )
    values = np.concatenate([curve.to_numpy() for _, curve, _ in curves])
    if values.max() / values.min() > 10:  # a log axis keeps early moves of a long compounding curve visible
        top.set_yscale("log")
    top.set_ylabel("equity")
    top.set_title(title or "Equity")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    return figure


def trades_figure(
    prices: pd.Series, ledger: pl.DataFrame | None = None, positions: pd.Series | None = None
) -> Figure:
    """Price with buy (^) and sell (v) fills, above the position held."""
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    shown = thin(prices)
    top.plot(shown.index, shown.to_numpy(), color="black", lw=0.8, label="close")
    if ledger is not None and ledger.height:
        fills = ledger_tools.filled(ledger)
        size = 36 if fills.height < 300 else 12
        for side, marker, color in (("buy", "^", "#1a9850"), ("sell", "v", "#d73027")):
            rows = fills.filter(pl.col(ledger_tools.SIDE_COL).str.to_lowercase() == side)
            times = pd.DatetimeIndex(rows[ledger_tools.TIMESTAMP_COL].to_pandas())
            top.scatter(
                times,
                rows[ledger_tools.PRICE_COL].to_numpy(),
                marker=marker,
                color=color,
                s=size,
                label=f"{side} ({rows.height})",
                zorder=3,
            )
    top.set_ylabel("price")
    top.set_title("Trades on price")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    if positions is not None:
        bottom.step(positions.index, positions.to_numpy(), where="post", color=STRATEGY_COLOR, lw=1.0)
        bottom.fill_between(
            positions.index, positions.to_numpy(), 0, step="post", color=STRATEGY_COLOR, alpha=0.25
        )
    bottom.set_ylabel("position")
    bottom.grid(alpha=0.3)
    return figure


def rolling_sharpe_figure(
    equity: pd.Series, timeframe: str, window: int, benchmark: pd.Series | None = None
) -> Figure:
    """Annualised Sharpe over a trailing window of ``window`` bars."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    axes = figure.subplots()
    curves = [("strategy", equity, STRATEGY_COLOR)]
    if benchmark is not None:
        curves.append(("buy and hold", benchmark, BENCHMARK_COLOR))
    for label, curve, color in curves:
        values = thin(rolling_sharpe(simple_returns(curve), window, timeframe).dropna())
        axes.plot(values.index, values.to_numpy(), label=label, color=color, lw=1.0)
    axes.axhline(0, color="black", lw=0.6)
    axes.set_title(f"Rolling Sharpe ({window} bars of {timeframe})")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    return figure


def return_distribution_figure(equity: pd.Series, benchmark: pd.Series | None = None) -> Figure:
    """Histogram of per-bar returns in percent."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    curves = [("strategy", equity, STRATEGY_COLOR)]
    if benchmark is not None:
        curves.append(("buy and hold", benchmark, BENCHMARK_COLOR))
    returns = [simple_returns(curve).to_numpy() * 100 for _, curve, _ in curves]
    low, high = np.percentile(np.concatenate(returns), [0.5, 99.5])
    bins: int | list[float] = np.linspace(low, high, 80).tolist() if high > low else 20
    for (label, _, color), values in zip(curves, returns, strict=True):
        axes.hist(values, bins=bins, color=color, alpha=0.5, label=label)
    axes.set_xlabel("per-bar return % (0.5%..99.5% range shown)")
    axes.set_title("Return distribution")
    axes.legend()
    axes.grid(alpha=0.3)
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=100)
    return path


def svg_text(figure: Figure) -> str:
    """The figure as an inline <svg> element (XML header stripped)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]
