"""Each validation error, from a small hand-made bad file, names file, row and column."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.data.loader import SeriesHint, read_bars, write_bars
from features.data.schema import DataError
from features.data.validate import GapPolicy, apply_gap_policy, validate_bars

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ROWS = [
    "2024-01-01T00:00:00Z,100,110,95,105,10",
    "2024-01-01T01:00:00Z,105,112,101,110,12",
    "2024-01-01T02:00:00Z,110,115,108,109,9",
    "2024-01-01T03:00:00Z,109,111,100,101,11",
]


def write_csv(tmp_path: Path, rows: list[str], name: str = "BTCUSDT_1h.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def replace_row(index: int, text: str) -> list[str]:
    rows = list(GOOD_ROWS)
    rows[index] = text
    return rows


def test_good_file_reads_with_inferred_key(tmp_path: Path) -> None:
    dataset, reports = read_bars(write_csv(tmp_path, GOOD_ROWS))
    (key,) = dataset.keys
    assert (key.symbol, key.timeframe, key.exchange) == ("BTC/USDT", "1h", tmp_path.name.lower())
    frame = dataset[key]
    assert frame["close"].to_list() == [105.0, 110.0, 109.0, 101.0]
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert reports[0].ok and not reports[0].warnings


BAD_CASES = [
    # (rows, expected kind, column, data row)
    (replace_row(2, "2024-01-01T02:00:00Z,110,115,108,109,-1"), "negative volume", "volume", 3),
    (replace_row(1, "2024-01-01T01:00:00Z,105,100,101,102,12"), "high below low", "high", 2),
    (replace_row(1, "2024-01-01T01:00:00Z,105,104,101,102,12"), "high below open/close", "high", 2),
    (replace_row(3, "2024-01-01T03:00:00Z,109,111,102,101,11"), "low above open/close", "low", 4),
    (replace_row(0, "2024-01-01T00:00:00Z,100,110,95,0,10"), "non-positive price", "close", 1),
    (replace_row(0, "2024-01-01T00:00:00Z,100,110,95,-3,10"), "non-positive price", "close", 1),
    (replace_row(2, "2024-01-01T02:00:00Z,110,inf,108,109,9"), "non-finite price", "high", 3),
    (replace_row(2, "2024-01-01T02:00:00Z,110,115,108,NaN,9"), "non-finite price", "close", 3),
    (replace_row(2, "2024-01-01T00:30:00Z,110,115,108,109,9"), "unsorted timestamps", "timestamp", 3),
    (replace_row(2, "2024-01-01T01:00:00Z,110,115,108,109,9"), "duplicate timestamps", "timestamp", 3),
    (replace_row(3, "2024-01-01T02:30:00Z,109,111,100,101,11"), "mixed timeframes", "timestamp", 4),
]


@pytest.mark.parametrize(("rows", "kind", "column", "row"), BAD_CASES, ids=[c[1] for c in BAD_CASES])
def test_each_error_names_file_row_and_column(tmp_path: Path, rows: list[str], kind: str, column: str,
                                              row: int) -> None:
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError) as err:
        read_bars(path, SeriesHint(timeframe="1h"))
    message = str(err.value)
    assert str(path) in message
    assert kind in message
    assert f"column '{column}'" in message
    assert f"row {row}" in message


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["2024-01-01T00:00:00Z,100,110,95,105"], header="timestamp,open,high,low,close\n")
    with pytest.raises(DataError, match=r"missing column volume; found timestamp, open, high, low, close"):
        read_bars(path)


def test_unreadable_cell_names_line_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, replace_row(1, "2024-01-01T01:00:00Z,105,abc,101,110,12"))
    with pytest.raises(DataError, match=r"column 'high', row 2, line 3: cannot read 'abc' as a number"):
        read_bars(path)


def test_unreadable_timestamp(tmp_path: Path) -> None:
    path = write_csv(tmp_path, replace_row(2, "yesterday,110,115,108,109,9"))
    with pytest.raises(DataError, match=r"column 'timestamp', row 3, line 4: cannot read 'yesterday'"):
        read_bars(path)


def test_gaps_are_warnings_with_length_and_strict_makes_them_errors(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:2], "2024-01-01T05:00:00Z,110,115,108,109,9"]
    path = write_csv(tmp_path, rows)
    _, reports = read_bars(path)
    (gap,) = reports[0].gaps
    assert "3 missing bars after 2024-01-01 01:00" in gap.message
    with pytest.raises(DataError, match="3 missing bars"):
        read_bars(path, strict=True)


def test_declared_timeframe_finer_than_data_is_mixed(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:2], "2024-01-01T01:30:00Z,110,115,108,109,9"]
    with pytest.raises(DataError, match="mixed timeframes"):
        read_bars(write_csv(tmp_path, rows), SeriesHint(timeframe="1h"))


def test_gap_policies(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:2], "2024-01-01T04:00:00Z,110,115,108,109,9", "2024-01-01T05:00:00Z,109,111,100,101,11"]
    dataset, _ = read_bars(write_csv(tmp_path, rows))
    frame = dataset[dataset.keys[0]]
    assert apply_gap_policy(frame, "1h", GapPolicy.LEAVE).equals(frame)
    filled = apply_gap_policy(frame, "1h", "ffill")
    assert filled.height == 6
    assert filled["is_filled"].to_list() == [False, False, True, True, False, False]
    inserted = filled.row(2, named=True)
    assert (inserted["open"], inserted["high"], inserted["low"], inserted["close"], inserted["volume"]) == (
        110.0, 110.0, 110.0, 110.0, 0.0)
    dropped = apply_gap_policy(frame, "1h", "drop")
    assert dropped["close"].to_list() == [105.0, 110.0]  # the longest gap-free span (first of equal length)


def test_epoch_millisecond_timestamps_and_long_format(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        "Symbol,Exchange,Open_Time,Open,High,Low,Close,Volume\n"
        "ETH/USDT,binance,1704067200000,10,11,9,10.5,1\n"
        "ETH/USDT,binance,1704070800000,10.5,12,10,11,2\n"
        "BTC/USDT,binance,1704067200000,100,110,90,105,1\n"
        "BTC/USDT,binance,1704070800000,105,120,100,110,2\n"
    )
    dataset, _ = read_bars(path)
    assert [str(k) for k in dataset.keys] == ["binance:BTC/USDT@1h", "binance:ETH/USDT@1h"]
    assert str(dataset["ETH/USDT"]["timestamp"][0]) == "2024-01-01 00:00:00+00:00"


def test_parquet_and_gzip_round_trip(tmp_path: Path) -> None:
    dataset, _ = read_bars(write_csv(tmp_path, GOOD_ROWS))
    frame = dataset[dataset.keys[0]]
    for name in ("BTCUSDT_1h.parquet", "BTCUSDT_1h.csv.gz"):
        again, _ = read_bars(write_bars(frame, tmp_path / "out" / name))
        assert again[again.keys[0]].equals(frame)


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_bars(tmp_path / "nope.csv")
    (tmp_path / "bars.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported file type"):
        read_bars(tmp_path / "bars.json")


def test_validate_reports_all_problems_at_once() -> None:
    frame = pl.DataFrame({
        "timestamp": pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 1, 2), "1h", eager=True,
                                       time_zone="UTC"),
        "open": [1.0, 2.0, 3.0], "high": [1.0, 1.0, 3.0], "low": [1.0, 1.5, 3.0], "close": [1.0, 2.0, 3.0],
        "volume": [1.0, -1.0, 1.0],
    })
    report = validate_bars(frame, "mem")
    assert {i.kind for i in report.errors} == {"high below low", "high below open/close", "negative volume"}
