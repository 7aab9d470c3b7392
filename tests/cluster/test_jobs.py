"""A training job submitted with `ray job submit` to a two-node cluster: placement, results, token auth."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from cluster.local import LocalCluster
from tests.cluster.jobs import TrainedRun, env_runner_nodes, read_state

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def test_nodes_are_separate_ray_nodes_with_token_auth(local_cluster: LocalCluster) -> None:
    nodes = {n["node_id"]: n for n in local_cluster.dashboard.alive_nodes()}
    head, worker = local_cluster.node_id("head"), local_cluster.node_id("worker1")
    assert set(nodes) == {head, worker}
    assert nodes[head]["is_head_node"] and not nodes[worker]["is_head_node"]
    head_resources, worker_resources = nodes[head]["resources_total"], nodes[worker]["resources_total"]
    assert head_resources["CPU"] == 1.0 and worker_resources["CPU"] == 1.0
    assert worker_resources["worker_node"] == 1.0 and "worker_node" not in head_resources
    # Without the token the dashboard (jobs, state API) refuses to answer.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{local_cluster.spec.dashboard_url}/api/jobs/", timeout=10)
    assert refused.value.code == 401


def test_training_job_samples_on_both_nodes_and_writes_the_run(local_cluster: LocalCluster,
                                                                trained_run: TrainedRun) -> None:
    job = trained_run.job
    # Two env runners of one CPU each on two one-CPU nodes: one sampled on the head, one on the worker.
    placed = env_runner_nodes(local_cluster, job["job_id"])
    assert sorted(placed.values()) == local_cluster.node_ids()
    assert job["driver_node_id"] == local_cluster.node_id("head")

    run = trained_run.path
    state = read_state(run)
    assert state["finished"] and state["iteration"] == 2
    assert [h["iteration"] for h in state["history"]] == [1, 2]
    assert (run / "checkpoints" / state["last_checkpoint"]).is_dir()
    assert (run / "checkpoints" / "best" / "rllib_checkpoint.json").is_file()
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["span"]["bars"] == 45 * 24
    assert "val sharpe" in local_cluster.dashboard.job_logs(job["submission_id"])
