"""Submitting MFT commands to the test cluster with `ray job submit`, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.local import LocalCluster, client_env

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
TINY_TRAIN = (
    "data=binance_btc_1h", "data.start=2022-03-01", "data.validation_days=45", "features=minimal",
    "env.window=8", "env.episode_length=128", "algo.train_batch_size=256", "algo.minibatch_size=64",
    "algo.num_epochs=1", "model.hidden=[16]", "train.eval_every=1", "train.validation_baselines=false",
    "train.report=false",
)


@dataclass(frozen=True)
class TrainedRun:
    """A run trained on the cluster by a job."""

    job: dict[str, Any]  # the job's details (submission_id, job_id, driver_node_id, status...)
    path: Path  # its run folder


def submit(cluster: LocalCluster, command: list[str], name: str) -> str:
    """`ray job submit --no-wait` of this checkout (cluster/runtime_env.yaml); returns the submission id."""
    submission_id = f"{name}-{uuid.uuid4().hex[:8]}"
    args = [RAY, "job", "submit", "--no-wait", "--submission-id", submission_id,
            "--runtime-env", str(REPO / "cluster" / "runtime_env.yaml"), "--working-dir", str(REPO),
            "--", *command]
    done = subprocess.run(args, env=client_env(cluster.spec), cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"ray job submit failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return submission_id


def wait_succeeded(cluster: LocalCluster, submission_id: str, timeout_s: float) -> dict[str, Any]:
    details = cluster.dashboard.wait_job(submission_id, timeout_s)
    assert details["status"] == "SUCCEEDED", (
        f"job {submission_id} {details['status']}: {details.get('message')}\n"
        f"{cluster.dashboard.job_logs(submission_id)[-4000:]}")
    return details


def env_runner_nodes(cluster: LocalCluster, ray_job_id: str) -> dict[str, str]:
    """actor id -> node id of the job's RLlib env runners (alive or finished), from the state API."""
    return {a["actor_id"]: a["node_id"] for a in cluster.dashboard.actors(job_id=ray_job_id)
            if a["class_name"].endswith("EnvRunner")}


def read_state(run: Path) -> dict[str, Any]:
    file = run / "state.json"
    return dict(json.loads(file.read_text())) if file.exists() else {}


def wait_for(condition: Any, timeout_s: float, what: str, poll_s: float = 0.5) -> Any:
    """Poll `condition()` until it returns something truthy; fail naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
