"""`mft features ...`: build feature tables and list what a feature config produces."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
from tabulate import tabulate

from features.data.registry import load_dataset
from features.data.schema import TIMESTAMP, DataError
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import WARM, FeaturePipeline

KEY_COLUMNS = ("exchange", "symbol", "timeframe")


def _pipeline(args: argparse.Namespace) -> FeaturePipeline:
    if getattr(args, "state", None):
        return FeaturePipeline.load(args.state)
    pipeline = FeaturePipeline(FeatureConfig.load(args.config))
    if pipeline.config.normalisation.method == "fitted":
        raise DataError("normalisation 'fitted' needs statistics fitted on a training split: pass --state with a "
                        "pipeline saved by FeaturePipeline.save, or use a config with method rolling or none")
    return pipeline


def cmd_build(args: argparse.Namespace) -> int:
    """Compute the features of every series and write one long parquet table (one row per series and bar)."""
    pipeline = _pipeline(args)
    dataset = load_dataset(args.data, symbols=args.symbols).dataset
    started = time.perf_counter()
    frames = pipeline.transform(dataset, normalise=not args.raw)
    seconds = time.perf_counter() - started
    parts = []
    for key, frame in frames.items():
        if args.drop_warmup:
            frame = frame.filter(pl.col(WARM))
        keys = [pl.lit(v).alias(c) for c, v in zip(KEY_COLUMNS, (key.exchange, key.symbol, key.timeframe),
                                                    strict=True)]
        parts.append(frame.select(*keys, pl.all()))
    table = pl.concat(parts, how="diagonal_relaxed").sort([*KEY_COLUMNS, TIMESTAMP])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.write_parquet(tmp, compression="zstd")
    tmp.replace(out)
    features = table.width - len(KEY_COLUMNS) - 7  # timestamp, OHLCV, warm
    warm = int(table[WARM].sum())
    print(f"{args.data}: {len(frames)} series, {table.height:,} rows ({warm:,} warm), {features} feature columns "
          f"in {seconds * 1000:.0f} ms -> {out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Every feature of a config: group, parameters, warm-up and output columns."""
    pipeline = FeaturePipeline(FeatureConfig.load(args.config))
    rows = [{"group": f.group, "feature": f.describe(), "warm-up": f.warmup,
             "columns": ", ".join(f"{o.name} ({o.scale.value})" for o in f.outputs())} for f in pipeline.features]
    print(tabulate(rows, headers="keys", tablefmt="github"))
    print(f"\n{sum(len(f.outputs()) for f in pipeline.features)} columns at most (microstructure and cross-asset "
          "only where the data has them); normalisation: "
          f"{pipeline.config.normalisation.method}, look-back {pipeline.lookback} bars")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    features = subparsers.add_parser("features", help="build feature tables from OHLCV data")
    commands = features.add_subparsers(dest="features_command", metavar="ACTION", required=True)

    build = commands.add_parser("build", help="compute features and write them to a parquet file")
    build.add_argument("--data", required=True, help="a bundled dataset name (see `mft data list`), a file or a folder")
    build.add_argument("--out", required=True, help="output parquet file")
    build.add_argument("--config", default="default", help="a name in configs/features or a YAML path")
    build.add_argument("--state", help="a pipeline saved with FeaturePipeline.save (config + fitted statistics)")
    build.add_argument("--symbols", nargs="+", help="keep only these series, e.g. BTC/USDT ETH/USDT")
    build.add_argument("--raw", action="store_true", help="unnormalised values in natural units")
    build.add_argument("--drop-warmup", action="store_true", help="leave out rows whose windows are not full")
    build.set_defaults(func=cmd_build)

    listing = commands.add_parser("list", help="the features a config produces, with warm-up and columns")
    listing.add_argument("--config", default="default", help="a name in configs/features or a YAML path")
    listing.set_defaults(func=cmd_list)
