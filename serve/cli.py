"""``mft serve ...``: run the policy service, export and compress policies, register model versions.

::

    mft serve run [--config default] [--host 127.0.0.1] [--port 8000] [--member runs/a --member runs/b]
    mft serve run --ensemble runs/sweeps/<sweep>/ensemble.yaml     (the top trials of a sweep, Sharpe-weighted)
    mft serve export RUN --out DIR [--int8] [--prune 0.3]
    mft serve compress RUN [--prune 0.3 0.6] [--out DIR]
    mft serve register RUN NAME [--alias champion] [--tracking-uri sqlite:///runs/mlflow.db]
    mft serve bench                    (the latency, load and fault benchmark: python -m serve.bench_serve)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from features.data.schema import DataError
from serve.http_proxy import HTTP_PROXIES


def cmd_run(args: argparse.Namespace) -> int:
    from serve.app import start
    from serve.config import EnsembleConfig, MemberConfig, ServeConfig, members_from_sweep_export

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.http_proxy:
        overrides["http_proxy"] = args.http_proxy
    config = ServeConfig.load(args.config, overrides)
    if args.member or args.ensemble:  # a quick ensemble of run folders (or a sweep's export) replaces the config's
        members = tuple(MemberConfig(source) for source in args.member or ())
        if args.ensemble:
            members += members_from_sweep_export(args.ensemble)
        base = config.ensembles.get("main") or EnsembleConfig(members=members)
        config = dataclasses.replace(
            config,
            ensembles={"main": dataclasses.replace(base, members=members)},
            routing=dataclasses.replace(config.routing, split={"main": 1.0}, shadow=None),
        )
    start(config)
    print(
        f"serving on http://{config.host}:{config.port} (API docs: /docs, metrics: /metrics); Ctrl-C stops",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve

        serve.shutdown()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rl.artifacts import load_agent
    from serve.onnx_export import export_onnx, pruned_module, quantize_int8

    bundle = load_agent(args.run)
    out = Path(args.out)
    module = bundle.policy.module if args.prune is None else pruned_module(bundle.policy.module, args.prune)
    path = export_onnx(module, out / "policy.onnx")
    print(f"wrote {path} and {path.with_suffix('.json')}")
    if args.int8:
        quantized = quantize_int8(path, out / "policy-int8.onnx")
        print(f"wrote {quantized} (INT8 dynamic quantization)")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from serve.compression import compression_report, report_table

    reports = compression_report(
        args.run, prune=tuple(args.prune), quantize=True, out_dir=Path(args.out) if args.out else None
    )
    print(report_table(reports))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from serve.registry import register_run

    print(register_run(args.run, args.name, args.tracking_uri, args.alias))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from serve.bench_serve import main

    return main([])


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise DataError(f"a pruning amount is a fraction in [0, 1), got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="the policy service: run, export to ONNX, compress, register"
    )
    commands = parser.add_subparsers(dest="serve_command", metavar="SUBCOMMAND")
    run = commands.add_parser("run", help="serve the configured ensembles over HTTP (Ray Serve)")
    run.add_argument("--config", default="default", help="a file, or a name in configs/serve/")
    run.add_argument("--host", help="override the config's host (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="override the config's port")
    run.add_argument("--http-proxy", choices=HTTP_PROXIES,
                     help="Serve's HTTP front door when a local Ray starts here (default: the config's, auto)")
    run.add_argument("--member", action="append", help="serve these run folders as one ensemble instead")
    run.add_argument("--ensemble", help="serve the members of an ensemble spec from `mft tune export` instead")
    run.set_defaults(func=cmd_run)
    export = commands.add_parser("export", help="export a run's policy to ONNX")
    export.add_argument("run", help="a run folder or a checkpoint in one")
    export.add_argument("--out", required=True, help="output folder (policy.onnx and its sidecar)")
    export.add_argument("--int8", action="store_true", help="also write an INT8 dynamically quantized copy")
    export.add_argument("--prune", type=_fraction, help="zero this fraction of the smallest weights first")
    export.set_defaults(func=cmd_export)
    compress = commands.add_parser(
        "compress", help="how INT8 and pruning move actions and metrics (validation)"
    )
    compress.add_argument("run", help="a run folder or a checkpoint in one")
    compress.add_argument("--prune", type=_fraction, nargs="*", default=[0.3, 0.6], help="pruning amounts")
    compress.add_argument("--out", help="keep the exported files here")
    compress.set_defaults(func=cmd_compress)
    register_cmd = commands.add_parser("register", help="register a run as an MLflow model version")
    register_cmd.add_argument("run", help="a run folder or a checkpoint in one")
    register_cmd.add_argument("name", help="registered model name, e.g. mft-ppo")
    register_cmd.add_argument("--alias", help="also point this alias at the new version")
    register_cmd.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI)")
    register_cmd.set_defaults(func=cmd_register)
    bench = commands.add_parser("bench", help="latency, load and fault benchmark (writes docs/serving.md)")
    bench.set_defaults(func=cmd_bench)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
