"""The bundled real data matches its provenance record, and the CLI on top of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.cli import main
from features.data.loader import write_bars
from features.data.registry import BUNDLED_DATASETS, load_dataset, provenance
from features.data.schema import BarKey, DataError, parse_timeframe


def test_every_bundled_series_matches_provenance() -> None:
    seen: set[BarKey] = set()
    for name in BUNDLED_DATASETS:
        result = load_dataset(name)
        for report in result.reports:
            assert report.key is not None
            if report.key in seen:
                continue
            seen.add(report.key)
            record = provenance()[report.key]
            frame = result.dataset[report.key]
            assert frame.height == int(record["rows"]), report.key
            assert len(report.gaps) == int(float(record["gaps"])), report.key
            span = (frame["timestamp"].max() - frame["timestamp"].min()) / parse_timeframe(report.key.timeframe)
            assert int(span) + 1 - frame.height == int(float(record["missing_bars"])), report.key
    assert len(seen) == len(provenance()) == 23


def test_at_least_the_required_sets_are_bundled() -> None:
    coins = {k.symbol for k in BUNDLED_DATASETS["binance_1h"]}
    assert coins == {"BTC/USDT", "ETH/USDT", "BNB/USDT", "LTC/USDT", "XRP/USDT", "ADA/USDT"}
    assert {k.timeframe for k in BUNDLED_DATASETS["binance_1d"]} == {"1d"}
    assert BUNDLED_DATASETS["bitstamp_btc_1h"][0].exchange == "bitstamp"
    assert BUNDLED_DATASETS["binanceus_btc_1m"][0].timeframe == "1m"


def test_symbol_selection_and_unknown_names() -> None:
    result = load_dataset("binance_1h", symbols=["ETH/USDT", "binance:BTC/USDT"])
    assert [k.symbol for k in result.dataset.keys] == ["BTC/USDT", "ETH/USDT"]
    with pytest.raises(DataError, match="no series 'DOGE/USDT'"):
        load_dataset("binance_1h", symbols=["DOGE/USDT"])
    with pytest.raises(DataError, match=r"unknown dataset 'binance_7h'.*binance_1h"):
        load_dataset("binance_7h")


def test_a_file_on_disk_loads_the_same_as_the_registry(tmp_path: Path) -> None:
    bundled = load_dataset("binance_eth_1h").dataset
    frame = bundled["ETH/USDT"]
    path = write_bars(frame, tmp_path / "binance" / "ETHUSDT_1h.csv.gz")
    from_file = load_dataset(path).dataset
    assert from_file.keys == bundled.keys
    assert from_file["ETH/USDT"].equals(frame)


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "validate", "binance_btc_1h", "--max-warnings", "1"]) == 0
    assert "27 warnings, no errors" in capsys.readouterr().out
    assert main(["data", "validate", "binance_btc_1h", "--strict"]) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,0.5,0.9,1,1\n"
                   "2024-01-01T01:00:00Z,1,2,0.9,1,1\n")
    assert main(["data", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "high below low (column 'high'): high < low at row 1" in err


def test_cli_info_lists_series(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "btc_two_venues_1h"]) == 0
    out = capsys.readouterr().out
    assert "bitstamp" in out and "BTC/USD " in out and "2018-05-15 06:00" in out
    assert main(["data", "info", "no/such/file.csv"]) == 2


def test_cli_resample_writes_valid_coarser_bars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "resample", "kraken_btc_5m", "--to", "1h", "--out", str(tmp_path)]) == 0
    hourly = load_dataset(tmp_path).dataset
    (key,) = hourly.keys
    assert (key.exchange, key.symbol, key.timeframe) == ("kraken", "BTC/USD", "1h")
    reference = load_dataset("kraken_btc_1h").dataset["BTC/USD"]
    # Kraken's own hourly bars equal our aggregation of its 5-minute bars on every complete hour.
    joined = hourly[key].join(reference, on="timestamp", suffix="_ref")
    assert joined.height > 2000
    for column in ("open", "high", "low", "close"):
        assert (joined[column] == joined[f"{column}_ref"]).all(), column
    assert ((joined["volume"] / joined["volume_ref"] - 1).abs() < 1e-12).all()
