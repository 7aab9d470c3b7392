"""Hand the best configurations of a sweep to serving as an ensemble: ``mft tune export PATH --top-k 3``.

The top ``k`` complete trials (by objective) become the members.  Without ``--retrain`` each member
is the trial's latest agent: the one trained on the most recent fold's training window, copied out
of the trial's checkpoint.  With ``--retrain`` each configuration is trained again by ``rl.train`` on
all training data (everything before the validation span, ``tune.iterations`` iterations unless
overridden), with the trial's overrides; the validation span then picks the checkpoint as in any
training run.  Either way every member is a run folder that :func:`rl.artifacts.load_agent` reads.

The ensemble spec (``<sweep>/ensemble.yaml`` unless ``--output``) is plain YAML::

    rule: sharpe_weighted
    members:
      - name: top1-trial_8a1c2d3e
        checkpoint: /abs/path/runs/sweeps/my-sweep/export/top1-trial_8a1c2d3e
        weight: 1.42        # the trial's objective: mean walk-forward test Sharpe (annualised)
        algo: ppo
        model: mlp

Weights are the raw Sharpe ratios and may be negative; the serving rule decides how to use them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from features.data.schema import DataError
from tune.report import REPORT_JSON
from tune.sweep import SWEEP_FILE, base_overrides, report_sweep

ENSEMBLE_FILE = "ensemble.yaml"
RULE = "sharpe_weighted"


def top_trials(report: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """The ``k`` complete trials with the highest objective."""
    if k < 1:
        raise DataError(f"--top-k must be >= 1, got {k}")
    complete = [row for row in report["trials"] if row["complete"]]
    if not complete:
        raise DataError(f"sweep {report['experiment']}: no complete trial to export")
    return sorted(complete, key=lambda row: row["objective"], reverse=True)[:k]


def copy_agent(sweep: Path, row: dict[str, Any], name: str) -> Path:
    """The trial's latest agent (in its checkpoint) copied to ``<sweep>/export/<name>``."""
    source = row.get("agent")
    if not source or not Path(source).is_dir():
        raise DataError(f"trial {row['trial_id']}: its checkpoint holds no agent; export with --retrain")
    target = sweep / "export" / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target


def retrain(sweep: Path, row: dict[str, Any], name: str, extra: Sequence[str]) -> Path:
    """Train the trial's configuration with rl.train on all training data; returns the run folder."""
    from rl.train_cli import run_training

    state = json.loads((sweep / SWEEP_FILE).read_text())
    overrides = [*base_overrides(state["overrides"]), *row["overrides"],
                 f"train.iterations={state['raw']['tune']['iterations']}", f"run_dir={sweep / 'export'}",
                 f"train.run_name={name}", "train.resume=null", *extra]
    shutil.rmtree(sweep / "export" / name, ignore_errors=True)
    return Path(run_training(overrides).run.path)


def member(name: str, checkpoint: Path, row: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load((checkpoint / "config.yaml").read_text())
    return {"name": name, "checkpoint": str(checkpoint.resolve()), "weight": float(row["objective"]),
            "algo": config["algo"]["name"], "model": config["model"]["name"]}


def export_ensemble(sweep: str | Path, top_k: int = 3, *, retrain_members: bool = False,
                    output: str | Path | None = None, overrides: Sequence[str] = ()) -> Path:
    """Write the ensemble spec of the sweep's top ``top_k`` trials; returns its path."""
    sweep = Path(sweep).resolve()
    if not (sweep / SWEEP_FILE).exists():
        raise FileNotFoundError(f"{sweep}: not a sweep folder (no {SWEEP_FILE})")
    if not (sweep / REPORT_JSON).exists():
        report_sweep(sweep)
    report = json.loads((sweep / REPORT_JSON).read_text())
    members = []
    for rank, row in enumerate(top_trials(report, top_k), 1):
        name = f"top{rank}-{row['trial_id']}"
        folder = retrain(sweep, row, name, overrides) if retrain_members else copy_agent(sweep, row, name)
        members.append(member(name, folder, row))
    target = Path(output) if output else sweep / ENSEMBLE_FILE
    kind = "retrained on all training data" if retrain_members else "agents of the latest fold"
    header = f"# Ensemble of the top {len(members)} trials of sweep {sweep} ({kind})\n"
    target.write_text(header + yaml.safe_dump({"rule": RULE, "members": members}, sort_keys=False))
    return target
