"""Rebuild the bundled real dataset from the shared raw files.

The repository ships compact parquet copies of real exchange OHLCV under
``features/bundled/`` so that a fresh clone works offline.  This module is
how they were made (``python -m features.data.bundle ../shared/data``): it
reads each raw gzip CSV listed in the source ``MANIFEST.tsv``, checks its
sha256 prefix against the manifest, converts it to the bar schema without
changing a single value, and writes a parquet file plus ``PROVENANCE.tsv``.
Gaps are real exchange outages and are kept as they are.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import polars as pl

from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, TIMESTAMP_DTYPE, BarKey, DataError

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "bundled"
PROVENANCE_FILE = BUNDLE_DIR / "PROVENANCE.tsv"

# Venue names as data: the manifest's exchange label -> ccxt exchange id.
EXCHANGE_IDS = {
    "Binance (spot)": "binance",
    "Bitstamp (spot)": "bitstamp",
    "Kraken (spot)": "kraken",
    "Binance.US (spot)": "binanceus",
}


def bundled_name(key: BarKey) -> str:
    return f"{key.exchange}/{key.symbol.replace('/', '-')}_{key.timeframe}.parquet"


def _convert(raw: Path) -> pl.DataFrame:
    frame = pl.read_csv(raw, schema_overrides={c: pl.Float64 for c in OHLCV_COLUMNS})
    return frame.with_columns(
        pl.col(TIMESTAMP).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", time_zone="UTC")
    ).select(pl.col(TIMESTAMP).cast(TIMESTAMP_DTYPE), *OHLCV_COLUMNS)


def _sha256_prefix(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_bundle(shared_data: Path, out_dir: Path = BUNDLE_DIR) -> list[dict[str, str]]:
    """Convert every manifest file to parquet; return the provenance rows written."""
    with (shared_data / "MANIFEST.tsv").open() as handle:
        manifest = list(csv.DictReader(handle, delimiter="\t"))
    rows: list[dict[str, str]] = []
    for entry in manifest:
        raw = shared_data / entry["file"]
        if _sha256_prefix(raw) != entry["sha256"]:
            raise DataError(f"{raw}: sha256 does not match MANIFEST.tsv ({entry['sha256']})")
        key = BarKey(EXCHANGE_IDS[entry["exchange"]], entry["pair"], entry["interval"])
        frame = _convert(raw)
        if frame.height != int(entry["rows"]):
            raise DataError(f"{raw}: {frame.height} rows, MANIFEST.tsv says {entry['rows']}")
        target = out_dir / bundled_name(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(target, compression="zstd", compression_level=19, statistics=False)
        rows.append(
            {
                "bundled_file": bundled_name(key),
                "exchange_id": key.exchange,
                "symbol": key.symbol,
                "timeframe": key.timeframe,
                **{f"source_{k}" if k == "file" else k: v for k, v in entry.items()},
            }
        )
    with (out_dir / "PROVENANCE.tsv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return rows


if __name__ == "__main__":
    written = build_bundle(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
    print(f"wrote {len(written)} files to {BUNDLE_DIR}")
