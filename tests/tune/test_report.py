"""The sweep report on hand-made trials: stitching, ranking, deflated Sharpe ratio and PBO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rl.evaluation.statistics import deflated_sharpe_ratio_of, probability_of_backtest_overfitting
from tune.report import TrialSummary, build_report, stitched_returns, write_report
from tune.trainable import score, trial_metrics

START = pd.Timestamp("2022-01-01", tz="UTC")


def record(fold: int, seed: int, returns: list[float], first_bar: int, sharpe: float | None) -> dict:
    stamps = [START + pd.Timedelta(hours=first_bar + i) for i in range(len(returns))]
    return {"fold": fold, "seed": seed, "test_start": stamps[0].isoformat(), "sharpe": sharpe,
            "total_return": float(np.prod(1 + np.asarray(returns)) - 1), "max_drawdown": -0.1,
            "timestamps": [s.isoformat() for s in stamps], "returns": returns}


def test_stitching_averages_seeds_and_cuts_overlapping_folds() -> None:
    records = [record(0, 0, [0.01, 0.03, 0.5, 0.5], 0, 1.0), record(0, 1, [0.03, 0.01, 0.5, 0.5], 0, 2.0),
               record(1, 0, [-0.02, 0.04], 2, 3.0)]
    stitched = stitched_returns(records)
    # Fold 0 is used until fold 1's test starts (bar 2); its two seeds average to 0.02 per bar.
    assert stitched.to_numpy() == pytest.approx([0.02, 0.02, -0.02, 0.04])
    assert list(stitched.index) == [START + pd.Timedelta(hours=h) for h in range(4)]


def test_objective_treats_an_undefined_sharpe_as_zero() -> None:
    records = [record(0, 0, [0.0, 0.0], 0, None), record(1, 0, [0.01, 0.02], 2, 3.0)]
    metrics = trial_metrics(records)
    assert [score(r) for r in records] == [0.0, 3.0]
    assert metrics["objective"] == 1.5 and metrics["fold0.sharpe"] == 0.0 and metrics["fold1.sharpe"] == 3.0
    assert metrics["evaluations"] == 2 and metrics["fold"] == 1


def trial(trial_id: str, returns: np.ndarray, folds: int, fold_sharpes: list[float]) -> TrialSummary:
    half = len(returns) // 2
    records = [record(f, 0, returns[f * half:(f + 1) * half].tolist(), f * half, fold_sharpes[f])
               for f in range(folds)]
    return TrialSummary(trial_id, "TERMINATED", {"algo.lr": 1e-4}, records, overrides=("algo.lr=0.0001",))


@pytest.fixture
def trials() -> list[TrialSummary]:
    rng = np.random.default_rng(11)
    series = [rng.normal(mu, 0.01, 200) for mu in (0.002, 0.0, -0.001, 0.004)]
    return [trial("a", series[0], 2, [1.0, 3.0]), trial("b", series[1], 2, [0.5, 0.5]),
            trial("c", series[2], 2, [-1.0, 0.0]), trial("stopped", series[3], 1, [9.0])]


def test_report_ranks_complete_trials_and_deflates_the_best(trials: list[TrialSummary],
                                                            tmp_path: Path) -> None:
    report, matrix = build_report(trials, expected=2, partitions=16, name="demo")
    assert [row["trial_id"] for row in report["trials"]] == ["a", "b", "c", "stopped"]
    assert report["best"]["trial_id"] == "a" and report["best"]["objective"] == 2.0
    assert report["best"]["fold_sharpe"] == {"0": 1.0, "1": 3.0}
    assert report["n_trials"] == 4 and report["n_complete"] == 3
    # DSR: the best's stitched returns against the per-bar Sharpe ratios of every evaluated trial.
    series = [stitched_returns(t.records).to_numpy() for t in trials]
    sharpes = [np.mean(r) / np.std(r, ddof=1) for r in series]
    best = stitched_returns(trials[0].records).to_numpy()
    dsr = report["deflated_sharpe"]
    assert dsr["n_trials"] == 4 and dsr["n_obs"] == 200
    assert dsr["value"] == pytest.approx(deflated_sharpe_ratio_of(best, np.array(sharpes)), abs=1e-12)
    # PBO: the complete trials only (the stopped one lacks fold 1's bars), 16 blocks of 12 bars.
    assert list(matrix.columns) == ["a", "b", "c"] and matrix.shape == (200, 3)
    expected = probability_of_backtest_overfitting(matrix.to_numpy(), n_partitions=16)
    assert report["pbo"]["value"] == pytest.approx(expected.pbo) and report["pbo"]["n_splits"] == 12870
    files = write_report(tmp_path, report, matrix)
    assert json.loads(files[0].read_text())["best"]["overrides"] == ["algo.lr=0.0001"]
    assert "Deflated Sharpe ratio: **" in files[1].read_text()
    assert pd.read_csv(files[2], index_col=0).shape == (200, 3)


def test_pbo_needs_two_complete_trials_and_fewer_blocks_for_short_series(trials: list[TrialSummary]) -> None:
    report, _ = build_report(trials[:1] + trials[3:], expected=2, partitions=16)
    assert report["pbo"]["value"] is None and "needs >= 2 complete trials" in report["pbo"]["reason"]
    assert report["deflated_sharpe"]["n_trials"] == 2
    def first_bars(records: list[dict]) -> list[dict]:
        return [dict(r, returns=r["returns"][:5], timestamps=r["timestamps"][:5]) for r in records]

    short = [TrialSummary(t.trial_id, "TERMINATED", {}, first_bars(t.records)) for t in trials[:3]]
    report, matrix = build_report(short, expected=2, partitions=16)
    assert matrix.shape == (10, 3) and report["pbo"]["n_partitions"] == 4

