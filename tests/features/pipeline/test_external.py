"""External sources are joined as of each bar's close: nothing published later is ever visible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.schema import BarKey, DataError, Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.external import FileSource, FrameSource
from features.pipeline.pipeline import FeaturePipeline

DAY = datetime(2024, 3, 4, tzinfo=UTC)  # bars open at 08:00 ... 13:00
ONLY_EXTERNAL = {g: {"enabled": False} for g in
                 ("indicators", "volume", "returns", "patterns", "time", "microstructure", "cross_asset")}


def hourly(symbols: tuple[str, ...] = ("BTC/USDT",), hours: int = 6) -> Dataset:
    times = [DAY + timedelta(hours=8 + i) for i in range(hours)]
    frame = pl.DataFrame({"timestamp": times, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
                         schema_overrides={"timestamp": pl.Datetime("us", "UTC")})
    return Dataset({BarKey("test", s, "1h"): frame for s in symbols})


def scores(rows: list[tuple[str, float]], **extra: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"published_at": [DAY + timedelta(hours=float(h.split(":")[0]), minutes=float(h.split(":")[1]))
                                          for h, _ in rows], "score": [v for _, v in rows], **extra},
                        schema_overrides={"published_at": pl.Datetime("us", "UTC")})


def run(source: FrameSource | FileSource, data: Dataset | None = None) -> dict[BarKey, pl.DataFrame]:
    data = data or hourly()
    pipeline = FeaturePipeline(FeatureConfig.from_dict(ONLY_EXTERNAL), sources=[source])
    return pipeline.transform(data, normalise=False)


def test_value_published_at_1030_is_first_seen_by_the_bar_closing_at_1100() -> None:
    source = FrameSource("news", scores([("10:30", 1.0), ("11:00", 2.0), ("12:59", 3.0), ("13:01", 4.0)]))
    frame = run(source)[BarKey("test", "BTC/USDT", "1h")]
    # bar opens 08..13 -> closes 09..14; the 11:00 value is visible at the 11:00 close (inclusive)
    assert frame["ext_news_score"].to_list() == [0.0, 0.0, 2.0, 2.0, 3.0, 4.0]
    assert frame["ext_news_available"].to_list() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert frame["warm"].all()  # missing values are filled, never null


def test_delay_and_max_age() -> None:
    delayed = FrameSource("news", scores([("10:30", 1.0), ("11:00", 2.0)]), delay=timedelta(minutes=1),
                          max_age=timedelta(hours=2), fill_value=-9.0)
    frame = run(delayed)[BarKey("test", "BTC/USDT", "1h")]
    # visible at 10:31 and 11:01; the bar closing 14:00 sees 11:01, older than 2h: missing again
    assert frame["ext_news_score"].to_list() == [-9.0, -9.0, 1.0, 2.0, 2.0, -9.0]
    assert frame["ext_news_available"].to_list() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]


def test_symbol_rows_reach_only_their_coin() -> None:
    data = hourly(("BTC/USDT", "ETH/USDT"))
    rows = scores([("08:30", 1.0), ("09:30", 2.0), ("10:30", 3.0)], symbol=["BTC", None, "ETH/USDT"])
    frames = run(FrameSource("news", rows), data)
    assert frames[BarKey("test", "BTC/USDT", "1h")]["ext_news_score"].to_list() == [1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert frames[BarKey("test", "ETH/USDT", "1h")]["ext_news_score"].to_list() == [0.0, 2.0, 3.0, 3.0, 3.0, 3.0]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(minutes=st.lists(st.integers(0, 8 * 60), min_size=1, max_size=12), cut=st.integers(0, 5))
def test_rows_published_after_a_close_never_change_that_bar(minutes: list[int], cut: int) -> None:
    """Drop every row published after the close of bar ``cut``: rows up to ``cut`` must not change."""
    rows = pl.DataFrame({"published_at": [DAY + timedelta(hours=7, minutes=m) for m in minutes],
                         "score": [float(i) for i in range(len(minutes))]},
                        schema_overrides={"published_at": pl.Datetime("us", "UTC")})
    close = DAY + timedelta(hours=9 + cut)
    key = BarKey("test", "BTC/USDT", "1h")
    everything = run(FrameSource("news", rows))[key]
    known_then = run(FrameSource("news", rows.filter(pl.col("published_at") <= close)))[key]
    assert everything.head(cut + 1).equals(known_then.head(cut + 1))


def test_file_source_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("published_at,score,other\n2024-03-04T09:15:00Z,0.5,7\n2024-03-04T11:45:00Z,-0.5,8\n")
    frame = run(FileSource("mood", path, columns=("score",)))[BarKey("test", "BTC/USDT", "1h")]
    assert frame["ext_mood_score"].to_list() == [0.0, 0.5, 0.5, -0.5, -0.5, -0.5]  # closes 09:00 ... 14:00
    assert "ext_mood_other" not in frame.columns


def test_bad_sources_are_named() -> None:
    with pytest.raises(DataError, match="no time column 'published_at'"):
        run(FrameSource("news", pl.DataFrame({"time": [DAY], "score": [1.0]})))
    with pytest.raises(DataError, match="missing value column"):
        run(FrameSource("news", scores([("09:00", 1.0)]), columns=("mood",)))
    with pytest.raises(DataError, match="no such file"):
        FileSource("news", Path("/nonexistent/scores.parquet")).frame()
