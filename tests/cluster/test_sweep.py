"""A tiny sweep submitted with `ray job submit`: trials on both nodes, results and checkpoints back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cluster.local import LocalCluster
from tests.cluster.jobs import submit, wait_succeeded

pytestmark = [
    pytest.mark.cluster, pytest.mark.timeout(300),
    pytest.mark.skipif(importlib.util.find_spec("tune.sweep") is None,
                       reason="tune/sweep.py is not in this tree"),
]

SWEEP = (
    "data=binance_btc_1h", "data.start=2022-06-01", "data.validation_days=30", "env.window=8",
    "env.episode_length=128", "algo.train_batch_size=256", "algo.minibatch_size=64", "algo.num_epochs=1",
    "tune=tiny", "tune.num_samples=2", "tune.max_concurrent_trials=2", "tune.scheduler.grace_period=2",
)


def test_tiny_sweep_runs_trials_on_both_nodes(local_cluster: LocalCluster, tmp_path: Path) -> None:
    command = ["python", "-m", "tune.sweep", *SWEEP, "tune.name=cl", f"run_dir={tmp_path}"]
    job = wait_succeeded(local_cluster, submit(local_cluster, command, "sweep"), timeout_s=280)

    # Two one-CPU trials at once on two one-CPU nodes: Tune placed one on each.
    actors = local_cluster.dashboard.actors(job_id=job["job_id"])
    trials = [a for a in actors if a["class_name"] == "ImplicitFunc"]
    assert sorted(a["node_id"] for a in trials) == local_cluster.node_ids()

    experiment = tmp_path / "sweeps" / "cl"
    report = json.loads((experiment / "sweep_report.json").read_text())
    assert (report["n_trials"], report["n_complete"], report["n_errored"]) == (2, 2, 0)
    for row in report["trials"]:
        folder = experiment / f"trial_{row['trial_id']}"
        assert row["evaluations"] == report["evaluations_per_trial"] == 2
        assert any(folder.glob("checkpoint_*")), f"{folder}: no checkpoint came back"
        progress = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
        assert progress[-1]["objective"] == pytest.approx(row["objective"])
    assert (experiment / "sweep_report.md").is_file()
