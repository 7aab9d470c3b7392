"""`mft features build` on a bundled dataset and on an OHLCV file in the standard schema."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
import pytest

from features.data.loader import write_bars
from features.data.schema import DataError, Dataset
from features.pipeline.cli import register


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mft")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_build_on_a_bundled_dataset(tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    assert run("features", "build", "--data", "binance_btc_1h", "--out", str(out), "--config", "minimal") == 0
    table = pl.read_parquet(out)
    assert table.height == 45_013
    assert table["symbol"].unique().to_list() == ["BTC/USDT"] and table["exchange"][0] == "binance"
    assert table.width == 3 + 6 + 16 + 1  # keys, timestamp + OHLCV, features, warm
    assert table["warm"].sum() == 45_013 - (33 + 199)
    assert table.filter(pl.col("warm")).null_count().sum_horizontal()[0] == 0


def test_build_on_a_csv_file(btc_eth: Dataset, tmp_path: Path) -> None:
    csv = write_bars(btc_eth["ETH/USDT"].head(400), tmp_path / "kraken" / "ETHUSD_1h.csv")
    out = tmp_path / "eth.parquet"
    code = run("features", "build", "--data", str(csv), "--out", str(out), "--config", "minimal", "--raw",
               "--drop-warmup")
    assert code == 0
    table = pl.read_parquet(out)
    assert table.height == 400 - 33 and table["warm"].all()  # raw values: only the MACD warm-up is cut
    assert table["symbol"][0] == "ETH/USD" and table["exchange"][0] == "kraken"
    expected = btc_eth["ETH/USDT"].head(400)["close"].tail(367).to_list()
    assert table["close"].to_list() == expected


def test_list_prints_every_feature(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("features", "list", "--config", "minimal") == 0
    printed = capsys.readouterr().out
    assert "macd_signal_12_26_9" in printed and "look-back 202 bars" in printed


def test_unknown_data_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        run("features", "build", "--data", "nowhere_1h", "--out", str(tmp_path / "x.parquet"))
