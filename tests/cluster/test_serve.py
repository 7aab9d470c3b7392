"""The ensemble service deployed to the cluster with `serve deploy`, as on a real cluster (or a
KubeRay RayService, which sends the same config): its replica on the worker node, queried through
the head's proxy, deciding exactly as the trained policy run directly."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from cluster.local import LocalCluster, client_env
from tests.cluster.jobs import TrainedRun, wait_for

pytestmark = [
    pytest.mark.cluster, pytest.mark.timeout(300),
    pytest.mark.skipif(importlib.util.find_spec("serve.app") is None,
                       reason="serve/app.py is not in this tree"),
]

SERVE_PORT = 8322
BARS = 480  # above the tiny run's recommended bar count: features equal to training's
INSTRUMENT = "binance:BTC/USDT"


def serve_config(run: Path, service_file: Path) -> dict[str, Any]:
    """A Serve deploy config (what `serve deploy` and RayService's serveConfigV2 take)."""
    service_file.write_text(yaml.safe_dump({
        # fuse off: the ensemble is its own deployment, so it can be placed on the worker node below.
        "request_timeout_s": 60.0, "fuse": False,
        "ensembles": {"main": {"members": [{"source": str(run), "name": "cl"}]}}}))
    return {
        "proxy_location": "HeadOnly",  # both nodes share this machine's ports: one proxy
        "http_options": {"host": "127.0.0.1", "port": SERVE_PORT},
        "applications": [{
            "name": "mft", "route_prefix": "/", "import_path": "serve.app:app_builder",
            "args": {"config": str(service_file)},
            # The ensemble's replica goes to the worker node: requests cross nodes.
            "deployments": [{"name": "ensemble-main",
                             "ray_actor_options": {"num_cpus": 0, "resources": {"worker_node": 0.01}}}],
        }],
    }


@pytest.fixture
def deployed(local_cluster: LocalCluster, trained_run: TrainedRun, tmp_path: Path) -> Iterator[str]:
    config_file = tmp_path / "serve-deploy.yaml"
    config_file.write_text(yaml.safe_dump(serve_config(trained_run.path, tmp_path / "service.yaml")))
    serve_cli = str(Path(sys.executable).with_name("serve"))
    deploy = [serve_cli, "deploy", str(config_file), "--address", local_cluster.spec.dashboard_url]
    done = subprocess.run(deploy, env=client_env(local_cluster.spec), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    try:
        wait_for(lambda: app_status(local_cluster) == "RUNNING", 180, "the Serve application to run",
                 poll_s=2.0)
        yield f"http://127.0.0.1:{SERVE_PORT}"
    finally:
        local_cluster.dashboard.request("DELETE", "/api/serve/applications/")


def app_status(cluster: LocalCluster) -> str | None:
    status = cluster.dashboard.get("/api/serve/applications/").get("applications", {}).get("mft", {})
    if status.get("status") == "DEPLOY_FAILED":
        raise AssertionError(f"deploy failed: {status.get('message')}")
    return status.get("status")


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


def bars_json(frame: pl.DataFrame) -> list[dict[str, Any]]:
    rows = frame.select("timestamp", "open", "high", "low", "close", "volume").iter_rows()
    return [{"timestamp": ts.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
            for ts, o, h, lo, c, v in rows]


def direct_actions(run: Path, windows: list[pl.DataFrame]) -> list[Any]:
    """The trained policy run in this process on the same bars, memory carried across windows."""
    from rl.artifacts import load_agent
    from rl.module_policy import ModulePolicy
    from serve.observations import InputSpec, PortfolioState

    bundle = load_agent(run)
    spec, policy = InputSpec(bundle), ModulePolicy(bundle.policy.module)
    policy.reset(None)
    return [policy.act(spec.from_bars({INSTRUMENT: w}, PortfolioState()).observation) for w in windows]


def test_served_ensemble_on_the_cluster_decides_like_the_policy(
        local_cluster: LocalCluster, trained_run: TrainedRun, deployed: str) -> None:
    from features.data.registry import load_dataset

    dataset = load_dataset("binance_btc_1h").dataset
    frame = dataset[dataset.keys[0]].filter(pl.col("timestamp").dt.year() == 2022).head(BARS + 2)
    windows = [frame.slice(step, BARS) for step in range(2)]
    answers = [post(f"{deployed}/v1/decide", {"stream_id": "cl", "bars": {INSTRUMENT: bars_json(w)}})
               for w in windows]
    expected = direct_actions(trained_run.path, windows)
    assert [a["action"] for a in answers] == expected
    assert [a["members"][0]["action"] for a in answers] == expected and answers[1]["memory_steps"] == 2
    with urllib.request.urlopen(f"{deployed}/ready", timeout=30) as ready:
        assert json.loads(ready.read())["ready"] is True

    alive = local_cluster.dashboard.actors(state="ALIVE")
    replicas = [a for a in alive if "ensemble-main" in a["class_name"]]
    assert [a["node_id"] for a in replicas] == [local_cluster.node_id("worker1")]
