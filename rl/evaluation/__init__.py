"""Evaluation core: metrics, trade ledgers, Sharpe statistics, Monte Carlo, costs, regimes, reports.

Everything works on equity curves (net worth per bar on UTC bar timestamps),
per-bar returns and order/fill ledgers; docs/evaluation.md documents every formula.
"""

from rl.evaluation.metrics import compute_metrics, drawdown_series, equity_series, rolling_sharpe
from rl.evaluation.trades import round_trips

__all__ = ["compute_metrics", "drawdown_series", "equity_series", "rolling_sharpe", "round_trips"]
