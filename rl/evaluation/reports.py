"""A report directory per backtest, and side-by-side comparison tables.

:func:`write_report` writes into one directory:

* ``metrics.json``: strategy and benchmark metrics, cost breakdown, stress windows
  (NaN is written as null and infinities as the strings "inf"/"-inf");
* ``comparison.md`` / ``comparison.csv``: strategy next to buy-and-hold;
* ``equity_drawdown.png``, ``trades.png`` (with prices), ``rolling_sharpe.png``, ``returns.png``;
* ``tearsheet.html``: the QuantStats tear sheet against the benchmark, made offline
  (the benchmark is passed as returns, never a ticker; the external favicon link is removed);
* ``report.html``: a self-contained, JavaScript-free interactive page.

When MLflow is imported and a run is active, the metrics and the directory are logged to it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import polars as pl
from matplotlib import style as matplotlib_style

from features.data.schema import DataError, bars_per_year, parse_timeframe
from rl.evaluation import html as html_page
from rl.evaluation import plots
from rl.evaluation import trades as ledger_tools
from rl.evaluation.costs import ledger_cost_breakdown
from rl.evaluation.metrics import EquityLike, Metrics, compute_metrics, equity_series
from rl.evaluation.regimes import metrics_by_window

COMPARE_METRICS: tuple[str, ...] = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "psr",
    "win_rate",
    "profit_factor",
    "avg_trade_return",
    "n_trades",
    "exposure",
    "annual_turnover",
)
ROLLING_WINDOW_DAYS = 30


@dataclass
class ReportFiles:
    """Where a report went: ``metrics`` is the content of metrics.json, ``files`` every file by role."""

    directory: Path
    metrics: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    logged_to_mlflow: bool = False


def close_series(prices: pd.Series | pl.DataFrame) -> pd.Series:
    """Close prices on a UTC DatetimeIndex from a bar frame or a price Series."""
    if isinstance(prices, pl.DataFrame):
        index = pd.DatetimeIndex(prices["timestamp"].to_pandas())
        return pd.Series(prices["close"].to_numpy(), index=index, name="close")
    return equity_series(prices).rename("close")


def compare_table(
    named_results: Mapping[str, EquityLike | Mapping[str, float]],
    timeframe: str | None = None,
    metrics: Sequence[str] = COMPARE_METRICS,
) -> pd.DataFrame:
    """Metrics (rows) of several named results (columns): each an equity curve or an existing metrics dict."""
    columns = {}
    for name, result in named_results.items():
        if isinstance(result, Mapping):
            values = result
        elif timeframe is None:
            raise DataError(f"compare_table needs the timeframe to compute metrics of equity curve {name!r}")
        else:
            values = compute_metrics(result, timeframe)
        columns[name] = [float(values.get(m, math.nan)) for m in metrics]
    return pd.DataFrame(columns, index=pd.Index(list(metrics), name="metric"))


def write_comparison(table: pd.DataFrame, directory: Path, stem: str = "comparison") -> dict[str, Path]:
    """The table as Markdown and CSV files."""
    markdown, csv = directory / f"{stem}.md", directory / f"{stem}.csv"
    markdown.write_text(table.to_markdown(floatfmt=".4f") + "\n")
    table.to_csv(csv)
    return {"comparison_md": markdown, "comparison_csv": csv}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float | np.floating):
        x = float(value)
        return None if math.isnan(x) else (("inf" if x > 0 else "-inf") if math.isinf(x) else x)
    if isinstance(value, np.integer):
        return int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _tearsheet_returns(equity: pd.Series) -> pd.Series:
    """Per-bar returns for QuantStats, starting with a 0 return at the first equity timestamp.

    QuantStats' drawdown_details misses a drawdown that starts on the first row and never recovers
    (its blank benchmark rows in the tear sheet), so the starting capital is given as a flat first bar.
    The index is naive UTC: QuantStats compares its naive working index with the benchmark's, and a
    tz-aware one makes it re-align the benchmark on a daily calendar, which fails on intraday bars.
    """
    values = equity.to_numpy(dtype=float)
    returns = np.concatenate([[0.0], values[1:] / values[:-1] - 1.0])
    return pd.Series(returns, index=pd.DatetimeIndex(equity.index).tz_convert("UTC").tz_localize(None))


@cache
def _quantstats() -> tuple[ModuleType, Any]:
    """QuantStats and the matplotlib style it installs on import, kept out of the global rcParams.

    Importing QuantStats applies a seaborn theme and the Arial font to the process-wide
    rcParams; we capture that style for its tear sheets and restore everyone else's.
    """
    matplotlib.use("Agg")
    with matplotlib.rc_context():
        import quantstats

        style = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    return quantstats, style


def write_tearsheet(
    path: Path,
    equity: pd.Series,
    timeframe: str,
    benchmark: pd.Series | None = None,
    title: str = "",
    **names: str,
) -> Path:
    """QuantStats HTML tear sheet of the equity's per-bar returns, annualised with bars_per_year."""
    qs, style = _quantstats()
    periods = bars_per_year(timeframe)
    bench = _tearsheet_returns(benchmark) if benchmark is not None else None
    font_logger = logging.getLogger("matplotlib.font_manager")
    level = font_logger.level
    font_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), matplotlib.rc_context(style):
            warnings.simplefilter("ignore")
            qs.reports.html(
                _tearsheet_returns(equity),
                benchmark=bench,
                output=str(path),
                title=title or "MFT backtest",
                periods_per_year=int(periods) if float(periods).is_integer() else periods,
                match_dates=False,
                **names,
            )
    finally:
        font_logger.setLevel(level)
    page = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r'<link rel="shortcut icon"[^>]*>', "", page), encoding="utf-8")
    return path


def log_to_mlflow(directory: Path, metrics: Metrics, artifact_path: str = "evaluation") -> bool:
    """Log finite metrics and the report directory to the active MLflow run; False when there is none."""
    mlflow = sys.modules.get("mlflow")  # no run can be active if MLflow was never imported
    if mlflow is None or mlflow.active_run() is None:
        return False
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if math.isfinite(float(v))})
    mlflow.log_artifacts(str(directory), artifact_path)
    return True


def _positions(
    curve: pd.Series, ledger: pl.DataFrame | None, positions: Sequence[float] | None
) -> pd.Series | None:
    if positions is not None:
        return pd.Series(np.asarray(positions, dtype=float), index=curve.index)
    if ledger is not None and ledger_tools.BAR_COL in ledger.columns:
        return pd.Series(ledger_tools.positions_from_ledger(ledger, len(curve)), index=curve.index)
    return None


def _rolling_window(timeframe: str, n_points: int) -> int:
    window = round(timedelta(days=ROLLING_WINDOW_DAYS) / parse_timeframe(timeframe))
    return max(2, min(window, n_points // 4))


def _figures(
    curve: pd.Series,
    bench: pd.Series | None,
    timeframe: str,
    prices: pd.Series | None,
    ledger: pl.DataFrame | None,
    positions: pd.Series | None,
    title: str,
) -> dict[str, Any]:
    figures = {
        "equity_drawdown": plots.equity_drawdown_figure(curve, bench, title),
        "rolling_sharpe": plots.rolling_sharpe_figure(
            curve, timeframe, _rolling_window(timeframe, len(curve)), bench
        ),
        "returns": plots.return_distribution_figure(curve, bench),
    }
    if prices is not None:
        figures["trades"] = plots.trades_figure(prices, ledger, positions)
    return figures


def _payload(
    curve: pd.Series,
    bench: pd.Series | None,
    timeframe: str,
    ledger: pl.DataFrame | None,
    held: pd.Series | None,
    names: tuple[str, str],
    title: str,
) -> dict[str, Any]:
    """Everything metrics.json holds: metrics of both curves, stress windows, costs."""
    metrics = compute_metrics(
        curve, timeframe, ledger=ledger, positions=None if held is None else held.to_numpy()
    )
    results: dict[str, Mapping[str, float]] = {names[0]: metrics}
    if bench is not None:
        results[names[1]] = compute_metrics(bench, timeframe)
    stress = metrics_by_window(curve, timeframe, benchmark=bench)
    payload: dict[str, Any] = {
        "title": title,
        "timeframe": timeframe,
        "start": curve.index[0],
        "end": curve.index[-1],
        "metrics": results,
        "stress_windows": stress[stress["n_bars"] > 0].to_dict(orient="index"),
    }
    if ledger is not None:
        payload["costs"] = ledger_cost_breakdown(ledger, float(curve.iloc[0]), float(curve.iloc[-1]))
    return payload


def write_report(
    directory: str | Path,
    equity: EquityLike,
    timeframe: str,
    *,
    benchmark: EquityLike | None = None,
    prices: pd.Series | pl.DataFrame | None = None,
    ledger: pl.DataFrame | None = None,
    positions: Sequence[float] | None = None,
    title: str = "MFT backtest",
    names: tuple[str, str] = ("strategy", "buy and hold"),
    tearsheet: bool = True,
) -> ReportFiles:
    """Write every report file of one backtest (equity on UTC timestamps) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    curve = equity_series(equity)
    if not isinstance(curve.index, pd.DatetimeIndex):
        raise DataError("write_report needs an equity curve indexed by UTC timestamps")
    bench = equity_series(benchmark) if benchmark is not None else None
    if bench is not None and not bench.index.equals(curve.index):
        raise DataError("benchmark equity must have exactly the strategy's timestamps")
    held = _positions(curve, ledger, positions)
    report = ReportFiles(out, _payload(curve, bench, timeframe, ledger, held, names, title))
    report.files["metrics_json"] = out / "metrics.json"
    report.files["metrics_json"].write_text(json.dumps(_jsonable(report.metrics), indent=2) + "\n")
    table = compare_table(report.metrics["metrics"])
    report.files.update(write_comparison(table, out))
    price_series = close_series(prices) if prices is not None else None
    with matplotlib_style.context("default"):  # same look whatever styles others (QuantStats) installed
        figures = _figures(curve, bench, timeframe, price_series, ledger, held, title)
        for name, figure in figures.items():
            report.files[name] = plots.save_png(figure, out / f"{name}.png")
        svgs = {name: plots.svg_text(figure) for name, figure in figures.items()}
    if tearsheet:
        titles = {"strategy_title": names[0], "benchmark_title": names[1]}
        report.files["tearsheet"] = write_tearsheet(
            out / "tearsheet.html", curve, timeframe, bench, title, **titles
        )
    stress = pd.DataFrame.from_dict(report.metrics["stress_windows"], orient="index")
    report.files["report_html"] = _write_page(
        out / "report.html", curve, bench, names, table, stress, svgs, title
    )
    report.logged_to_mlflow = log_to_mlflow(out, report.metrics["metrics"][names[0]])
    return report


def _write_page(
    path: Path,
    curve: pd.Series,
    bench: pd.Series | None,
    names: tuple[str, str],
    table: pd.DataFrame,
    stress: pd.DataFrame,
    svgs: Mapping[str, str],
    title: str,
) -> Path:
    curves = {names[0]: curve}
    if bench is not None:
        curves[names[1]] = bench / bench.iloc[0] * curve.iloc[0]
    sections = [
        ("Equity (hover for values)", html_page.equity_svg(curves)),
        ("Metrics", html_page.table_html(table)),
    ]
    if not stress.empty:
        sections.append(("Stress windows", html_page.table_html(stress.drop(columns=["description"]))))
    sections += [(name.replace("_", " ").capitalize(), svg) for name, svg in svgs.items()]
    subtitle = f"{curve.index[0]:%Y-%m-%d %H:%M} to {curve.index[-1]:%Y-%m-%d %H:%M} UTC, {len(curve)} bars"
    path.write_text(html_page.report_page(title, subtitle, sections), encoding="utf-8")
    return path
