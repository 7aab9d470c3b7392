"""Tests for rl.evaluation.reports: report directory contents, offline HTML, comparison tables, MLflow."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.data.schema import DataError
from features.data.synthetic import GeometricBrownianMotion
from rl.evaluation.metrics import compute_metrics
from rl.evaluation.reports import compare_table, write_report
from tests.rl.evaluation.toy import ToyBacktest, noisy_equity, sma_backtest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BARS = GeometricBrownianMotion(drift=0.5, volatility=0.6).simulate(24 * 25, "1h", seed=21)


@pytest.fixture(scope="module")
def toy() -> ToyBacktest:
    return sma_backtest(BARS, 24, fee=0.001)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, toy: ToyBacktest) -> Path:
    directory = tmp_path_factory.mktemp("report")
    write_report(directory, toy.equity, "1h", benchmark=toy.benchmark, prices=BARS, ledger=toy.ledger)
    return directory


def test_report_directory_holds_every_file(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    pictures = {"equity_drawdown.png", "trades.png", "rolling_sharpe.png", "returns.png"}
    pages = {"metrics.json", "comparison.md", "comparison.csv", "tearsheet.html", "report.html"}
    assert pictures | pages <= names
    for picture in pictures:
        data = (report_dir / picture).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_metrics_json_equals_compute_metrics(report_dir: Path, toy: ToyBacktest) -> None:
    payload = json.loads((report_dir / "metrics.json").read_text())
    ours = compute_metrics(toy.equity, "1h", ledger=toy.ledger)
    strategy = payload["metrics"]["strategy"]
    for key, value in ours.items():
        stored = strategy[key]
        expected = None if math.isnan(value) else ("inf" if math.isinf(value) else value)
        assert stored == (pytest.approx(expected) if isinstance(expected, float) else expected), key
    assert payload["metrics"]["buy and hold"]["total_return"] == pytest.approx(
        BARS["close"][-1] / BARS["close"][0] - 1
    )
    assert payload["costs"]["fees_paid"] == pytest.approx(toy.ledger["fee"].sum())
    assert payload["start"] == toy.equity.index[0].isoformat()


def test_comparison_files_hold_the_table(report_dir: Path, toy: ToyBacktest) -> None:
    table = pd.read_csv(report_dir / "comparison.csv", index_col="metric")
    assert list(table.columns) == ["strategy", "buy and hold"]
    assert table.loc["sharpe", "strategy"] == pytest.approx(compute_metrics(toy.equity, "1h")["sharpe"])
    markdown = (report_dir / "comparison.md").read_text()
    assert markdown.startswith("| metric") and "| sharpe" in markdown


def test_html_pages_are_offline(report_dir: Path) -> None:
    for page in ("report.html", "tearsheet.html"):
        text = (report_dir / page).read_text(encoding="utf-8")
        assert "<script" not in text.lower()
        assert not re.search(r'(src|href)="(https?:)?//', text.replace('href="http://quantstats.io"', ""))
    report = (report_dir / "report.html").read_text(encoding="utf-8")
    assert report.count("<svg") >= 5 and report.count("<title>") > 100  # hover tooltips of the equity chart


def test_tearsheet_numbers_match_ours(report_dir: Path, toy: ToyBacktest) -> None:
    text = (report_dir / "tearsheet.html").read_text(encoding="utf-8")

    def row(name: str) -> list[str]:
        match = re.search(rf"<tr><td>{name}</td><td>([^<]*)</td><td>([^<]*)</td></tr>", text)
        assert match, name
        return [match.group(1), match.group(2)]  # benchmark first, then strategy

    ours, theirs = compute_metrics(toy.equity, "1h"), compute_metrics(toy.benchmark, "1h")
    assert row("Max Drawdown") == [
        f"{100 * theirs['max_drawdown']:.2f}%",
        f"{100 * ours['max_drawdown']:.2f}%",
    ]
    sharpe = [float(x) for x in row("Sharpe")]
    assert sharpe == pytest.approx([theirs["sharpe"], ours["sharpe"]], abs=0.011)


def test_compare_table_mixes_curves_and_metric_dicts() -> None:
    curve = noisy_equity(500, 1)
    table = compare_table({"agent": curve, "given": {"sharpe": 1.5}}, "1h", metrics=("sharpe", "n_trades"))
    assert table.loc["sharpe", "agent"] == pytest.approx(compute_metrics(curve, "1h")["sharpe"])
    assert table.loc["sharpe", "given"] == 1.5 and math.isnan(table.loc["n_trades", "given"])
    with pytest.raises(DataError, match="timeframe"):
        compare_table({"agent": curve})


def test_report_input_errors(tmp_path: Path) -> None:
    curve = noisy_equity(100, 2)
    with pytest.raises(DataError, match="UTC timestamps"):
        write_report(tmp_path, curve.to_numpy(), "1h", tearsheet=False)
    with pytest.raises(DataError, match="exactly the strategy's timestamps"):
        write_report(tmp_path, curve, "1h", benchmark=curve.iloc[1:], tearsheet=False)


def test_report_logs_to_an_active_mlflow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv(
        "MLFLOW_ALLOW_FILE_STORE", "true"
    )  # the file store is fast; a new sqlite db takes seconds
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        curve = noisy_equity(200, 3)
        with mlflow.start_run() as run:
            report = write_report(tmp_path / "report", curve, "1h", tearsheet=False)
        assert report.logged_to_mlflow
        client = mlflow.tracking.MlflowClient()
        logged = client.get_run(run.info.run_id).data.metrics
        assert logged["sharpe"] == pytest.approx(compute_metrics(curve, "1h")["sharpe"])
        artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
        assert {"metrics.json", "report.html", "equity_drawdown.png"} <= artifacts
        outside = write_report(tmp_path / "again", curve, "1h", tearsheet=False)
        assert not outside.logged_to_mlflow
    finally:
        mlflow.set_tracking_uri(previous)


def test_nan_and_inf_metrics_are_valid_json(tmp_path: Path) -> None:
    flat = pd.Series(np.full(50, 100.0), index=noisy_equity(50, 4).index)
    write_report(tmp_path, flat, "1h", tearsheet=False)
    strategy = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["strategy"]
    assert strategy["sharpe"] is None and strategy["total_return"] == 0.0
