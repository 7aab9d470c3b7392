"""Losing a worker node in the middle of training, then losing the job itself (docs/cluster.md, "Faults").

1. The worker node is SIGKILLed (its whole process tree, as when a machine dies) while a job samples
   with one env runner on it: the job keeps training on the head's env runner, Ray restarts the
   lost actor when a worker node rejoins, and RLlib syncs the new runner's weights and samples with
   it again (checked by the state API: the restarted actor is alive on the new node and has
   finished sampling calls there).
2. The job is then stopped (the driver is gone, as when the head is replaced): resubmitted with
   ``train.resume=<run folder>`` it continues from its last complete checkpoint and finishes,
   with every completed iteration kept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cluster.local import LocalCluster
from tests.cluster.jobs import TINY_TRAIN, read_state, submit, wait_for, wait_succeeded

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]


def restored_runner(cluster: LocalCluster, ray_job_id: str, node_id: str) -> dict[str, Any] | None:
    """The job's env runner that Ray restarted on `node_id`, once RLlib has sampled with it there."""
    for actor in cluster.dashboard.actors(job_id=ray_job_id):
        if (actor["class_name"].endswith("EnvRunner") and actor["state"] == "ALIVE"
                and actor["node_id"] == node_id and int(actor.get("num_restarts", 0)) >= 1):
            tasks = cluster.dashboard.tasks(actor_id=actor["actor_id"])
            if any(t["name"].endswith(".apply") and t["state"] == "FINISHED" and t.get("node_id") == node_id
                   for t in tasks):
                return dict(actor)
    return None


def test_lost_worker_node_and_lost_job_do_not_lose_the_run(local_cluster: LocalCluster,
                                                           tmp_path: Path) -> None:
    run = tmp_path / "fault"
    train = ["python", "-m", "rl.train", *TINY_TRAIN, "train.num_env_runners=2", "train.patience=1000",
             f"run_dir={tmp_path}", "train.run_name=fault"]
    first = submit(local_cluster, [*train, "train.iterations=500"], "fault")
    wait_for(lambda: read_state(run).get("last_checkpoint") and read_state(run)["iteration"] >= 2, 180,
             "the first checkpoints")
    ray_job_id = local_cluster.dashboard.job(first)["job_id"]

    local_cluster.kill("worker1")
    killed_at = read_state(run)["iteration"]
    wait_for(lambda: read_state(run)["iteration"] >= killed_at + 2, 90,
             "training to go on without the worker")
    assert local_cluster.dashboard.job(first)["status"] == "RUNNING"

    local_cluster.up()  # a replacement worker node joins (a new node id)
    new_worker = local_cluster.node_id("worker1")
    wait_for(lambda: restored_runner(local_cluster, ray_job_id, new_worker), 150,
             "RLlib to restore the lost env runner on the new worker node", poll_s=2.0)

    local_cluster.dashboard.stop_job(first)
    assert local_cluster.dashboard.wait_job(first, 60)["status"] == "STOPPED"
    stopped = read_state(run)
    k = stopped["iteration"]
    assert k > killed_at + 2 and not stopped["finished"]
    assert (run / "checkpoints" / stopped["last_checkpoint"]).is_dir()

    resumed = submit(local_cluster, [*train, f"train.iterations={k + 2}", f"train.resume={run}"], "resume")
    wait_succeeded(local_cluster, resumed, timeout_s=240)
    assert re.search(rf"resumed from {stopped['last_checkpoint']} \(iteration {k}\)",
                     local_cluster.dashboard.job_logs(resumed))
    final = read_state(run)
    assert final["finished"] and final["iteration"] == k + 2
    iterations = [h["iteration"] for h in final["history"]]
    # Nothing completed before the stop is lost, nothing is trained twice.
    assert iterations[-2:] == [k + 1, k + 2] and iterations == sorted(set(iterations))
    assert set(range(1, k)) <= set(iterations)
    assert (run / "checkpoints" / "best" / "rllib_checkpoint.json").is_file()
