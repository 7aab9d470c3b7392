"""`mft backtest` and `mft compare` through their argument parsers, on bundled data and on files never seen."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from envs import EnvConfig, SchemeSpec
from features.data.loader import write_bars
from features.data.schema import DataError, Dataset
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline
from rl.backtest import backtest, evaluation_panel
from rl.cli import _baseline_names, register_backtest, register_compare
from rl.policy import Policy
from tests.rl.backtest_data import dataset, panel

START = "2022-07-01"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="mft")
    commands = parser.add_subparsers()
    register_backtest(commands)
    register_compare(commands)
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return dict(json.loads(run([*argv, "--json"], capsys)))


@pytest.fixture(scope="module")
def unseen_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled BTC/USDT hours written to a CSV file in a folder the project has never seen."""
    frame = dataset("binance_btc_1h").series[dataset("binance_btc_1h").keys[0]]
    return write_bars(frame, tmp_path_factory.mktemp("mystery") / "binance" / "BTCUSDT_1h.csv")


@pytest.mark.parametrize("policy", ["logistic", "donchian"])
def test_a_csv_file_gives_the_same_numbers_as_the_registry(
    policy: str, unseen_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from_file = run_json(["backtest", "--policy", policy, "--data", str(unseen_csv), "--start", START], capsys)
    from_registry = run_json(["backtest", "--policy", policy, "--data", "binance_btc_1h", "--start", START], capsys)
    assert from_file.pop("data") == str(unseen_csv) and from_registry.pop("data") == "binance_btc_1h"
    assert from_file == from_registry
    assert from_file["start"] == "2022-07-01T00:00:00+00:00" and from_file["n_trades"] > 0
    for key in ("total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                "win_rate", "profit_factor", "avg_trade_return", "n_trades", "exposure", "turnover",
                "unfilled_order_pct"):
        assert key in from_file and key in from_file["buy_and_hold"]


def test_fee_and_slippage_flags_set_the_costs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "env.yaml"
    env.write_text("window: 32\ncosts: {slippage_vol_mult: 0.0, impact_coef: 0.0}\n")
    out = run_json(["backtest", "--policy", "buy_and_hold", "--data", "binance_btc_1h", "--start", START,
                    "--end", "2022-09-01", "--env", str(env), "--fee", "0.002", "--slippage-bps", "10"], capsys)
    frame = dataset("binance_btc_1h").series[dataset("binance_btc_1h").keys[0]].to_pandas().set_index("timestamp")
    span = frame[(frame.index >= pd.Timestamp(START, tz="UTC")) & (frame.index < pd.Timestamp("2022-09-01", tz="UTC"))]
    expected = span["close"].iloc[-1] / (span["open"].iloc[0] * 1.001 * 1.002) - 1
    assert out["total_return"] == pytest.approx(expected, rel=1e-9)
    assert out["buy_and_hold"]["total_return"] == out["total_return"]
    assert out["end"] == "2022-08-31T23:00:00+00:00" and out["bars"] == len(span)


def test_report_directory_holds_the_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backtest", "--policy", "ma_crossover", "--params", '{"fast": 12, "slow": 48}', "--data", "binance_btc_1h",
            "--start", "2022-09-01", "--report", str(tmp_path / "report"), "--no-tearsheet"]
    printed = run(argv, capsys)
    assert "| total_return" in printed and "report written" in printed
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"ma_crossover", "buy and hold"} and metrics["ma_crossover"]["n_trades"] > 0
    assert (tmp_path / "report" / "equity_drawdown.png").stat().st_size > 0


def test_compare_prints_one_column_per_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "table.csv"
    printed = run(["compare", "--data", "binance_1h", "--symbols", "BTC/USDT", "ETH/USDT", "--start", START,
                   "--baselines", "ma_crossover,erc,equal_weight", "--csv", str(csv)], capsys)
    table = pd.read_csv(csv, index_col=0)
    assert list(table.columns) == ["buy_and_hold", "ma_crossover", "erc", "equal_weight"]
    assert table.loc["total_return", "buy_and_hold"] == pytest.approx(table.loc["total_return", "equal_weight"])
    assert "| sharpe" in printed and "erc" in printed.splitlines()[1]
    btc = panel("binance_btc_1h")
    assert "erc" not in _baseline_names("all", btc) and "knn" in _baseline_names("all", btc)


class BuyOnce(Policy):
    name = "fake-agent"

    def _reset(self, env: Any) -> None:
        self.first = True

    def _act(self, observation: np.ndarray) -> int:
        first, self.first = self.first, False
        return 1 if first else 0


@dataclass
class FakeBundle:
    policy: Policy
    env_config: EnvConfig
    timeframe: str = "1h"

    def panel(self, data: Dataset) -> FeaturePanel:
        return FeaturePipeline.from_config("minimal").panel(data)


def test_a_trained_agent_path_runs_with_its_own_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EnvConfig(mode="eval", action=SchemeSpec("discrete"))
    monkeypatch.setattr("rl.artifacts.load_agent", lambda path: FakeBundle(BuyOnce(), config))
    out = run_json(["backtest", "--policy", str(tmp_path), "--data", "binance_btc_1h", "--start", START], capsys)
    direct = backtest(BuyOnce(), evaluation_panel(panel("binance_btc_1h"), START, None, 32), config)
    assert out["policy"] == "fake-agent" and out["n_bars"] == len(direct.equity)
    assert out["total_return"] == pytest.approx(direct.metrics["total_return"], rel=1e-12)
    assert out["total_return"] == pytest.approx(out["buy_and_hold"]["total_return"], rel=1e-9)


@pytest.mark.parametrize(("argv", "message"), [
    (["--policy", "martingale"], "neither a baseline"),
    (["--policy", "erc"], "two instruments"),
    (["--policy", "ma_crossover", "--params", "[1]"], "JSON object"),
    (["--policy", "donchian", "--start", "2031-01-01"], "no bars to evaluate"),
])
def test_bad_requests_name_the_problem(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match=message):
        run(["backtest", "--data", "binance_btc_1h", *argv], capsys)


def test_the_mft_command_runs_backtests_and_reports_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    from features.cli import build_parser, main

    if "backtest" not in build_parser().format_help():
        pytest.skip("the mft entry points are not installed (pip install -e .)")
    assert main(["backtest", "--policy", "zscore_reversion", "--data", "binance_btc_1h", "--start", START,
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"] == "zscore_reversion"
    assert main(["backtest", "--policy", "martingale", "--data", "binance_btc_1h"]) == 2
    assert "neither a baseline" in capsys.readouterr().err
