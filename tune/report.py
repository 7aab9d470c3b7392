"""The sweep report: trials ranked by objective, the best configuration, its deflated Sharpe ratio and PBO.

* Every trial that evaluated at least one fold has an out-of-sample return series: its folds' per-bar
  test returns (mean over seeds), each fold used until the next fold's test starts, in time order.
* **Deflated Sharpe ratio** of the best complete trial (highest objective):
  :func:`rl.evaluation.statistics.deflated_sharpe_ratio_of` of its return series against the per-bar
  Sharpe ratios of all those trials (a flat series counts as Sharpe 0).  The number of trials and the
  variance of their Sharpe ratios set the bar a lucky maximum would clear.
* **PBO** by CSCV over the [T x N] matrix of the complete trials' return series (errored, stopped and
  unfinished trials are left out: they lack test bars), with ``tune.pbo_partitions`` blocks, fewer when
  the series are short.

Written as ``sweep_report.json`` and ``sweep_report.md`` (with ``test_returns.csv``, the PBO matrix)
in the experiment folder and logged to the sweep's parent MLflow run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rl.backtest import jsonable
from rl.evaluation.statistics import (
    deflated_sharpe_ratio_of,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
    return_moments,
)
from tune.trainable import AGENT_DIR, FOLDS_FILE, score

REPORT_JSON = "sweep_report.json"
REPORT_MD = "sweep_report.md"
RETURNS_CSV = "test_returns.csv"


@dataclass
class TrialSummary:
    """One trial as the report sees it: its sampled values and every evaluation it completed."""

    trial_id: str
    status: str  # Tune's: TERMINATED, ERROR, PENDING, ...
    params: dict[str, Any]
    records: list[dict[str, Any]]
    mlflow_run_id: str | None = None
    overrides: tuple[str, ...] = ()
    agent: Path | None = None  # run folder of its latest agent (in its checkpoint)

    @property
    def objective(self) -> float:
        return float(np.mean([score(r) for r in self.records])) if self.records else float("nan")

    def fold_sharpes(self) -> dict[int, float]:
        folds = sorted({int(r["fold"]) for r in self.records})
        return {f: float(np.mean([score(r) for r in self.records if r["fold"] == f])) for f in folds}


def stitched_returns(records: list[dict[str, Any]]) -> pd.Series:
    """Per-bar test returns in time order: the mean over seeds per fold, each fold used until the next
    fold's test starts."""
    by_fold: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_fold.setdefault(int(record["fold"]), []).append(record)
    folds = sorted(by_fold)
    parts = []
    for i, fold in enumerate(folds):
        runs = by_fold[fold]
        index = pd.DatetimeIndex(runs[0]["timestamps"])
        values = np.mean([np.asarray(r["returns"], dtype=float) for r in runs], axis=0)
        part = pd.Series(values, index=index)
        if i + 1 < len(folds):
            part = part[part.index < pd.Timestamp(by_fold[folds[i + 1]][0]["test_start"])]
        parts.append(part)
    return pd.concat(parts) if parts else pd.Series(dtype=float)


def per_bar_sharpe(returns: pd.Series) -> float:
    """Per-bar Sharpe ratio of a return series; 0 for a flat one (the agent stayed in cash)."""
    sharpe = return_moments(returns.to_numpy())[0]
    return sharpe if math.isfinite(sharpe) else 0.0


def returns_matrix(trials: list[TrialSummary]) -> pd.DataFrame:
    """[T x N] test returns of the given trials on their common bars."""
    return pd.concat({t.trial_id: stitched_returns(t.records) for t in trials}, axis=1, join="inner")


def deflated_sharpe(best: TrialSummary, tried: list[TrialSummary]) -> dict[str, Any]:
    returns = stitched_returns(best.records).to_numpy()
    sharpes = np.array([per_bar_sharpe(stitched_returns(t.records)) for t in tried])
    sharpe, n_obs, skew, kurtosis = return_moments(returns)
    out: dict[str, Any] = {"n_trials": len(sharpes), "n_obs": n_obs, "sharpe_per_bar": sharpe, "skew": skew,
                           "kurtosis": kurtosis}
    if len(sharpes) < 2:
        return out | {"value": None, "reason": "needs at least 2 trials with test returns"}
    variance = float(sharpes.var(ddof=1))
    return out | {"value": deflated_sharpe_ratio_of(returns, sharpes), "sharpe_variance": variance,
                  "expected_max_sharpe": expected_max_sharpe(len(sharpes), variance)}


def pbo(complete: list[TrialSummary], partitions: int) -> tuple[dict[str, Any], pd.DataFrame]:
    matrix = returns_matrix(complete) if complete else pd.DataFrame()
    blocks = min(partitions, matrix.shape[0] // 2) // 2 * 2
    if matrix.shape[1] < 2 or blocks < 2:
        reason = (f"needs >= 2 complete trials and >= 4 test bars, got {matrix.shape[1]} trial(s) "
                  f"and {matrix.shape[0]} bars")
        return {"value": None, "reason": reason, "n_configs": matrix.shape[1]}, matrix
    result = probability_of_backtest_overfitting(matrix.to_numpy(), n_partitions=blocks)
    return {"value": result.pbo, "n_configs": matrix.shape[1], "n_bars": matrix.shape[0],
            "n_partitions": blocks, "n_splits": result.n_splits,
            "probability_of_loss": result.probability_of_loss,
            "degradation_slope": result.degradation_slope}, matrix


def trial_row(trial: TrialSummary, expected: int) -> dict[str, Any]:
    return {"trial_id": trial.trial_id, "status": trial.status, "evaluations": len(trial.records),
            "complete": len(trial.records) == expected, "objective": trial.objective,
            "fold_sharpe": {str(k): v for k, v in trial.fold_sharpes().items()}, "params": trial.params,
            "overrides": list(trial.overrides), "mlflow_run_id": trial.mlflow_run_id,
            "agent": str(trial.agent) if trial.agent else None}


def build_report(trials: list[TrialSummary], expected: int, partitions: int, name: str = ""
                 ) -> tuple[dict[str, Any], pd.DataFrame]:
    """The report dict and the PBO returns matrix; a trial with ``expected`` evaluations (folds x seeds)
    is complete."""
    tried = [t for t in trials if t.records]
    complete = [t for t in tried if len(t.records) == expected]
    # Complete trials first: a trial stopped after its first folds has a mean over fewer folds.
    ranked = sorted(tried, key=lambda t: (len(t.records) == expected, t.objective), reverse=True)
    report: dict[str, Any] = {
        "experiment": name, "objective": "mean walk-forward test Sharpe (annualised) over folds and seeds",
        "evaluations_per_trial": expected, "n_trials": len(trials), "n_tried": len(tried),
        "n_complete": len(complete),
        "n_errored": sum(t.status == "ERROR" for t in trials),
        "trials": [trial_row(t, expected) for t in ranked], "best": None, "deflated_sharpe": None,
    }
    pbo_section, matrix = pbo(complete, partitions)
    report["pbo"] = pbo_section
    if complete:
        best = max(complete, key=lambda t: t.objective)
        report["best"] = trial_row(best, expected)
        report["deflated_sharpe"] = deflated_sharpe(best, tried)
    return jsonable(report), matrix


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """A human summary of the report."""
    lines = [f"# Sweep {report['experiment']}", "",
             f"{report['n_trials']} trials, {report['n_tried']} evaluated, {report['n_complete']} complete "
             f"({report['evaluations_per_trial']} fold evaluations each), {report['n_errored']} errored.",
             f"Objective: {report['objective']}.", "",
             "| rank | trial | status | evaluations | objective | fold Sharpe | params |",
             "|---|---|---|---|---|---|---|"]
    for rank, row in enumerate(report["trials"], 1):
        folds = ", ".join(f"{k}: {_number(v, 2)}" for k, v in row["fold_sharpe"].items())
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row["params"].items())
        lines.append(f"| {rank} | {row['trial_id']} | {row['status']} | {row['evaluations']} | "
                     f"{_number(row['objective'])} | {folds} | {params} |")
    best, dsr, pbo_section = report["best"], report["deflated_sharpe"], report["pbo"]
    if best is not None:
        lines += ["", f"## Best: {best['trial_id']} (objective {_number(best['objective'])})", "",
                  "Overrides: `" + " ".join(best["overrides"]) + "`"]
    if dsr is not None:
        lines += ["", f"Deflated Sharpe ratio: **{_number(dsr.get('value'))}** over {dsr['n_trials']} trials "
                  f"and {dsr['n_obs']} test bars (probability that the best Sharpe beats the best of that "
                  "many unskilled trials; below 0.95 the selection may be luck)."]
    lines += ["", f"Probability of backtest overfitting: **{_number(pbo_section.get('value'))}** over "
              f"{pbo_section.get('n_configs', 0)} complete configurations "
              f"({pbo_section.get('reason') or str(pbo_section.get('n_splits')) + ' CSCV splits'}; "
              "above 0.5 the "
              "in-sample winner tends to rank below the median out of sample)."]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, report: dict[str, Any], matrix: pd.DataFrame) -> list[Path]:
    """sweep_report.json, sweep_report.md and test_returns.csv in ``folder``."""
    files = [folder / REPORT_JSON, folder / REPORT_MD, folder / RETURNS_CSV]
    files[0].write_text(json.dumps(report, indent=1))
    files[1].write_text(markdown(report))
    matrix.rename_axis("timestamp").to_csv(files[2])
    return files


def load_trial(trial: Any) -> TrialSummary:
    """A Tune trial (of ``tune.ExperimentAnalysis``) with the evaluations in its latest checkpoint."""
    state: dict[str, Any] = {}
    agent = None
    checkpoint = trial.checkpoint
    if checkpoint is not None and (Path(checkpoint.path) / FOLDS_FILE).exists():
        state = json.loads((Path(checkpoint.path) / FOLDS_FILE).read_text())
        agent = Path(checkpoint.path) / AGENT_DIR
    return TrialSummary(trial.trial_id, str(trial.status), dict(trial.config), list(state.get("records", [])),
                        state.get("mlflow_run_id"), tuple(state.get("overrides", [])), agent)


def collect_trials(experiment: Path) -> list[TrialSummary]:
    """Every trial of a Tune experiment folder, in creation order."""
    from ray import tune as ray_tune

    analysis = ray_tune.ExperimentAnalysis(str(experiment))
    return [load_trial(trial) for trial in analysis.trials]
