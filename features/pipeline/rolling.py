"""Rolling z-scores of one column in a single causal pass: the kernel of the ``rolling`` normalisation.

Row t is scored against the mean and population variance of the last ``window`` values (rows
t - window + 1 .. t).  One compiled loop per column replaces the polars formulation it supersedes, about
twenty full-column passes per feature (two rolling sums, the moments, the flat test, the clip), which made
normalising cost almost as much as computing the features.

Row t is

* null while the window is not full or holds a null (as polars' rolling windows);
* NaN when the window holds a NaN or an infinity;
* 0 on a flat window: variance <= ``FLAT`` * mean square, where rounding leaves only noise;
* otherwise ``(u_t - mean) / std``, clipped to +-clip.

The window sums slide (one value in, one out) around an anchor at the window mean, and are recomputed
exactly, in two passes, every ``window`` rows, after every gap, and whenever their rounding could matter
against the variance (a spike has left the window, or the mean has drifted far from the anchor).
So the variance never comes from mean(u^2) - mean(u)^2 of raw levels, which cancels catastrophically for
levels like OBV (mean^2 / variance up to 2e6 on the bundled data: the superseded formulation was off by
5e-10 there, this kernel by 4e-13 at most), and rounding never builds up.  Row t reads nothing after t and
the recompute schedule depends only on rows up to t, so a prefix of a series gets bit-identical scores.

The kernel is compiled by numba on first use and cached on disk; :mod:`features.pipeline.normalise`
imports this module only when a rolling normalisation runs (numba takes a quarter of a second to import).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import polars as pl
import pyarrow as pa

FLAT = 1e-12  # a window variance below this fraction of its mean square is a flat window (z = 0)
_NO_NULLS = np.zeros(1, dtype=np.uint8)  # stands in for the validity bitmap of a column without nulls


@numba.njit(nogil=True, cache=True)
def _centred_sums(values: np.ndarray, start: int, stop: int, centre: float) -> tuple[float, float, float]:
    """Over rows [start, stop): sum(u - centre), sum((u - centre)^2) and the largest (u - centre)^2, in four
    interleaved partial sums (a single running sum would wait on each addition)."""
    a0 = a1 = a2 = a3 = q0 = q1 = q2 = q3 = peak = 0.0
    row = start
    while row + 4 <= stop:
        c0, c1, c2, c3 = values[row] - centre, values[row + 1] - centre, values[row + 2] - centre, \
            values[row + 3] - centre
        a0, a1, a2, a3 = a0 + c0, a1 + c1, a2 + c2, a3 + c3
        s0, s1, s2, s3 = c0 * c0, c1 * c1, c2 * c2, c3 * c3
        q0, q1, q2, q3 = q0 + s0, q1 + s1, q2 + s2, q3 + s3
        peak = max(peak, max(max(s0, s1), max(s2, s3)))
        row += 4
    while row < stop:
        c0 = values[row] - centre
        a0, q0, peak = a0 + c0, q0 + c0 * c0, max(peak, c0 * c0)
        row += 1
    return (a0 + a1) + (a2 + a3), (q0 + q1) + (q2 + q3), peak


@numba.njit(nogil=True, cache=True)
def _recompute(values: np.ndarray, row: int, window: int) -> tuple[float, float, float, float]:
    """The anchor (mean) of the window ending at ``row`` and the sums around it, in two exact passes."""
    anchor = _centred_sums(values, row - window + 1, row + 1, 0.0)[0] / window
    first, second, peak = _centred_sums(values, row - window + 1, row + 1, anchor)
    return anchor, first, second, peak


@numba.njit(nogil=True, cache=True)
def _zscores(values: np.ndarray, leading: int, bitmap: np.ndarray, offset: int, checked: bool, window: int,
             clip: float, flat: float, out: np.ndarray, valid: np.ndarray) -> None:
    """Fill ``out`` with the rolling z-scores and ``valid`` with their validity.  The first ``leading`` rows
    are null; unless ``checked``, the others are known to be finite and non-null, otherwise ``bitmap`` (from
    bit ``offset``) is the input's Arrow validity."""
    last_null = leading - 1  # last row holding a null
    last_bad = -1  # last row holding a NaN or an infinity
    anchor = first = second = 0.0  # first, second: sums of (u - anchor) and (u - anchor)^2 over the window
    peak = 0.0  # the largest (u - anchor)^2 that went into ``second`` since it was recomputed
    age = window  # rows since the sums were recomputed; at ``window`` they are recomputed
    inverse = 1.0 / window  # a multiplication is several times cheaper than a division
    for row in range(values.shape[0]):
        value = values[row]
        if checked:
            if not (bitmap[(row + offset) >> 3] >> ((row + offset) & 7)) & 1:
                last_null = row
            elif not math.isfinite(value):
                last_bad = row
        valid[row] = row - last_null >= window  # full, and no null inside
        if row - last_null < window or row - last_bad < window:
            out[row] = math.nan
            age = window
            continue
        if age < window:  # slide: one value in, one out
            leaving, entering = values[row - window] - anchor, value - anchor
            first += entering - leaving
            second += (entering - leaving) * (entering + leaving)
            peak = max(peak, entering * entering)
            age += 1
        else:
            anchor, first, second, peak = _recompute(values, row, window)
            age = 0
        shift = first * inverse
        variance = second * inverse - shift * shift
        # each update rounds by about eps * peak: recompute once that is no longer small against the variance
        # (a spike has left, or the mean has drifted far from the anchor); while a spike is still inside,
        # peak <= window * variance, so this fires once per spike
        if peak > 2.0 * window * variance and age > 0:
            anchor, first, second, peak = _recompute(values, row, window)
            age = 0
            shift = first * inverse
            variance = second * inverse - shift * shift
        mean = anchor + shift
        if variance <= flat * (variance + mean * mean):
            out[row] = 0.0
        else:
            out[row] = min(max(((value - anchor) - shift) / math.sqrt(variance), -clip), clip)


def rolling_zscore(series: pl.Series, window: int, clip: float) -> pl.Series:
    """The rolling z-score of a float column (see the module docstring); the buffers cross zero-copy."""
    if window < 1:
        raise ValueError(f"rolling z-score: window must be >= 1, got {window}")
    array = series.cast(pl.Float64).rechunk().to_arrow()
    rows = len(array)
    if rows == 0:
        return pl.Series(series.name, [], dtype=pl.Float64)
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=np.float64, count=rows, offset=array.offset * 8)
    # the usual column: nulls only in the warm-up, finite after it, so the kernel need not check every row
    leading = series.null_count()
    scattered = series.head(leading).null_count() < leading  # a null after the first value
    checked = scattered or not bool(np.isfinite(values[leading:]).all())
    if not checked:
        bitmap = _NO_NULLS
    elif validity is None:
        bitmap = np.full((rows + array.offset + 7) // 8, 255, dtype=np.uint8)
    else:
        bitmap = np.frombuffer(validity, dtype=np.uint8)
    out = np.empty(rows, dtype=np.float64)
    valid = np.empty(rows, dtype=np.bool_)
    _zscores(values, 0 if checked else leading, bitmap, array.offset, checked, window, clip, FLAT, out, valid)
    out_validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pl.Series(series.name, pa.Array.from_buffers(pa.float64(), rows, [out_validity, pa.py_buffer(out)]))
