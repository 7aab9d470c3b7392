"""The rolling z-score kernel: the window statistics from their definition, the null / NaN / flat / clip rules,
causality, and agreement on real data with the polars formulation it replaced."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from features.data.registry import load_dataset
from features.data.schema import Dataset
from features.pipeline.base import Output
from features.pipeline.normalise import bounded_expressions, unit_free
from features.pipeline.pipeline import FeaturePipeline
from features.pipeline.rolling import FLAT, rolling_zscore

AGREEMENT = 1e-9  # with the polars formulation (whose own rounding reaches 5e-10 on levels like OBV)
EXACT = 1e-11  # with two-pass statistics of every window
TAIL = 10_000  # bars of each coin compared with two-pass statistics on real data (the late, high-OBV years)


def definition(values: list[float | None], window: int, clip: float) -> list[float | None]:
    """Row by row from the definition: two-pass mean and population variance of each window."""
    out: list[float | None] = []
    for row in range(len(values)):
        chunk = values[max(0, row - window + 1):row + 1]
        if row < window - 1 or any(v is None for v in chunk):
            out.append(None)
            continue
        x = np.array(chunk, dtype=np.float64)
        if not np.isfinite(x).all():
            out.append(math.nan)
            continue
        mean = x.mean()
        variance = ((x - mean) ** 2).mean()
        flat = variance <= FLAT * (x * x).mean()
        out.append(0.0 if flat else float(np.clip((x[-1] - mean) / math.sqrt(variance), -clip, clip)))
    return out


def assert_scores(got: pl.Series, want: list[float | None], tolerance: float) -> None:
    assert got.is_null().to_list() == [w is None for w in want]
    for g, w in zip(got.to_list(), want, strict=True):
        if w is not None and math.isnan(w):
            assert math.isnan(g)
        elif w is not None:
            assert abs(g - w) <= tolerance * max(1.0, abs(w)), (g, w)


def test_hand_computed_rows() -> None:
    values = [None, 1.0, 2.0, 3.0, math.nan, 5.0, 6.0, 7.0, 7.0, 7.0, 7.0]
    got = rolling_zscore(pl.Series("u", values), 3, 10.0)
    # [1, 2, 3]: mean 2, variance 2/3, so (3 - 2) / sqrt(2/3) = sqrt(1.5); a window with the NaN is NaN
    root = math.sqrt(1.5)
    want = [None, None, None, root, math.nan, math.nan, math.nan, root, 1 / math.sqrt(2), 0.0, 0.0]
    assert_scores(got, want, 1e-15)  # [6, 7, 7]: (7 - 20/3) / sqrt(2/9); [7, 7, 7] is flat
    # 199 zeros then a jump: mean r/200, std r sqrt(199)/200, so z = sqrt(199) = 14.1, clipped to 10
    jump = rolling_zscore(pl.Series("u", [0.0] * 199 + [0.5]), 200, 10.0)
    assert jump[-1] == 10.0
    assert rolling_zscore(pl.Series("u", [0.0] * 199 + [0.5]), 200, 20.0)[-1] == pytest.approx(math.sqrt(199))
    assert rolling_zscore(pl.Series("u", [], dtype=pl.Float64), 3, 10.0).len() == 0


@st.composite
def series(draw: st.DrawFn) -> tuple[list[float | None], int]:
    """Integer steps around a level (so a window is either exactly flat or far from it), with nulls, NaNs,
    infinities and spikes sprinkled in, and levels far above the spread (mean^2 / variance up to 1e8)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows, window = draw(st.integers(1, 150)), draw(st.integers(1, 12))
    level = draw(st.sampled_from([0.0, -3.0, 1e6, 1e9]))
    step = max(1.0, abs(level)) * draw(st.sampled_from([1e-4, 1e-2, 1.0]))
    values: list[float | None] = [float(v) for v in level + step * rng.integers(-4, 5, rows) / 4]
    specials = (None, math.nan, math.inf, -math.inf, level + step * 1e4)
    rates = draw(st.lists(st.sampled_from([0.0, 0.02, 0.1]), min_size=len(specials), max_size=len(specials)))
    for special, rate in zip(specials, rates, strict=True):
        for row in np.flatnonzero(rng.random(rows) < rate):
            values[row] = special
    return values, window


@settings(max_examples=300, deadline=None, derandomize=True)
@given(case=series(), clip=st.sampled_from([3.0, 10.0]))
def test_scores_follow_the_definition_and_prefixes_are_bit_identical(
        case: tuple[list[float | None], int], clip: float) -> None:
    values, window = case
    full = rolling_zscore(pl.Series("u", values), window, clip)
    assert_scores(full, definition(values, window, clip), EXACT)
    for k in {1, len(values) // 2, len(values) - 1} - {0}:
        assert rolling_zscore(pl.Series("u", values[:k]), window, clip).equals(full.head(k))


def polars_rolling(frame: pl.DataFrame, outputs: list[Output], window: int, clip: float) -> pl.DataFrame:
    """The formulation the kernel replaced: two rolling sums per column, mean(u^2) - mean(u)^2, when/clip."""
    scaled = [o for o in outputs if o.scaled]
    u = {o.name: unit_free(o, True) for o in scaled}
    stats = frame.with_columns(*(e.alias(f"u_{n}") for n, e in u.items())).with_columns(
        *(pl.col(f"u_{n}").rolling_sum(window).truediv(window).alias(f"m_{n}") for n in u),
        *(pl.col(f"u_{n}").pow(2).rolling_sum(window).truediv(window).alias(f"q_{n}") for n in u))
    scores = []
    for n in u:
        value, mean, square = pl.col(f"u_{n}"), pl.col(f"m_{n}"), pl.col(f"q_{n}")
        var = square - mean * mean
        z = pl.when(var <= FLAT * square).then(pl.lit(0.0)).otherwise((value - mean) / var.sqrt())
        scores.append(z.clip(-clip, clip).alias(n))
    return stats.select(*bounded_expressions(outputs, clip), *scores)


@pytest.fixture(scope="module")
def six_coins() -> Dataset:
    return load_dataset("binance_1h").dataset


def test_the_default_set_agrees_with_the_replaced_formulation_and_with_two_pass_statistics(
        six_coins: Dataset) -> None:
    """All six bundled coins, every bar: nulls identical, values within AGREEMENT of the old polars expressions.
    Where those cancel worst (OBV, long volatility: mean^2 / variance up to 2e6) or spike (volume ROC), the last
    TAIL bars are within EXACT of two-pass statistics (the old expressions were off by 5e-10 on BNB's OBV)."""
    pipeline = FeaturePipeline()
    raw, scored, outputs = pipeline.transform(six_coins, normalise=False), pipeline.transform(six_coins), \
        pipeline.outputs(six_coins)
    window, clip = pipeline.config.normalisation.window, pipeline.config.normalisation.clip
    for key in six_coins.keys:
        old = polars_rolling(raw[key], outputs[key], window, clip)
        for name in old.columns:
            new = scored[key][name]
            assert new.is_null().equals(old[name].is_null()), (key, name)
            assert np.array_equal(np.isnan(new.to_numpy()), np.isnan(old[name].to_numpy())), (key, name)
            gap = (new - old[name]).abs().to_numpy() / np.maximum(1.0, old[name].abs().to_numpy())
            assert np.nanmax(gap) <= AGREEMENT, (key, name)
        for o in (o for o in outputs[key] if o.name in ("obv", "volatility_168", "volume_roc_10")):
            u = raw[key].select(unit_free(o, True)).to_series().to_numpy()[-(TAIL + window - 1):]
            windows = sliding_window_view(u, window)
            mean, std = windows.mean(axis=1), windows.std(axis=1)
            exact = np.clip((u[window - 1:] - mean) / std, -clip, clip)
            got = scored[key][o.name].to_numpy()[-TAIL:]
            assert np.max(np.abs(got - exact) / np.maximum(1.0, np.abs(exact))) <= EXACT, (key, o.name)
