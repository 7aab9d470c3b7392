"""A multi-node Ray cluster on one machine, for development and tests: ``python -m cluster.local up``.

Each node is its own ``ray start --block`` process tree with its own CPUs, resources and ports,
exactly as on separate machines: a head (GCS, dashboard, job server) and ``--workers`` worker
nodes that join it at ``127.0.0.1:<port>``. Worker nodes carry the custom resource
``worker_node`` so work can be pinned to them (``resources={"worker_node": 0.01}``).

* Token authentication is on (``RAY_AUTH_MODE=token``); the token is Ray's default
  ``~/.ray/auth_token`` (or ``$RAY_AUTH_TOKEN_PATH``), generated with ``ray get-auth-token --generate``
  when missing. Clients need ``RAY_AUTH_MODE=token`` too: ``<root>/env.sh`` exports it.
* Fixed non-default ports, the dashboard on 127.0.0.1, and Ray's files under ``<root>``
  (``--temp-dir``): the cluster neither collides with nor is found by a plain local ``ray.init()``
  running beside it (Ray looks for ``/tmp/ray/ray_current_cluster``). Ray itself binds its gRPC
  servers on all interfaces whatever ``--node-ip-address`` says; the token guards them.
* ``<root>/cluster.json`` records each node's process id and node id; ``down`` stops exactly
  those process trees (never ``ray stop``, which would stop every Ray on the machine).

``up`` is idempotent: it starts whatever is not running (all of it, or just a lost worker node)
and waits until every node is alive. ``kill NODE`` simulates a machine failure (SIGKILL of that
node's whole process tree), for fault-tolerance tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from cluster.dashboard import Dashboard, DashboardError, read_token

DEFAULT_ROOT = Path("/tmp/mft-cluster")
HOST = "127.0.0.1"
PORTS_PER_NODE = 200  # fixed ports at offsets 0..9, worker processes at 10..199


@dataclass(frozen=True)
class ClusterSpec:
    """The shape of the local cluster; stored in cluster.json so down/status need only the root."""

    root: str = str(DEFAULT_ROOT)
    port: int = 6390  # GCS of the head node
    dashboard_port: int = 8270  # dashboard, job submission and state API
    head_cpus: int = 1
    workers: int = 1
    worker_cpus: int = 1
    port_base: int = 24000  # node i uses port_base + i*200 .. + i*200 + 199
    object_store_mb: int = 256  # per node: small, these nodes share one machine

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{HOST}:{self.dashboard_port}"

    def node_names(self) -> list[str]:
        return ["head", *(f"worker{i}" for i in range(1, self.workers + 1))]


def ray_cli() -> str:
    """The `ray` command of the running Python environment (the nodes must run the same Ray)."""
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        raise FileNotFoundError(f"no `ray` command next to {sys.executable} or on PATH")
    return found


def node_command(spec: ClusterSpec, name: str) -> list[str]:
    """The ``ray start --block`` command line of one node."""
    index = spec.node_names().index(name)
    base = spec.port_base + index * PORTS_PER_NODE
    head = name == "head"
    resources = {"mft_head": 1} if head else {"worker_node": 1, f"mft_{name}": 1}
    command = [
        ray_cli(), "start", "--block", "--disable-usage-stats",
        f"--node-ip-address={HOST}", f"--temp-dir={Path(spec.root) / name}",
        f"--num-cpus={spec.head_cpus if head else spec.worker_cpus}", "--num-gpus=0",
        f"--resources={json.dumps(resources)}", f"--object-store-memory={spec.object_store_mb * 2**20}",
        f"--node-manager-port={base}", f"--object-manager-port={base + 1}",
        f"--dashboard-agent-listen-port={base + 2}", f"--dashboard-agent-grpc-port={base + 3}",
        f"--runtime-env-agent-port={base + 4}", f"--metrics-export-port={base + 5}",
        f"--min-worker-port={base + 10}", f"--max-worker-port={base + PORTS_PER_NODE - 1}",
    ]
    if head:
        return [*command, "--head", f"--port={spec.port}", "--include-dashboard=true",
                f"--dashboard-host={HOST}", f"--dashboard-port={spec.dashboard_port}",
                f"--ray-client-server-port={base + 6}"]
    return [*command, f"--address={spec.address}"]


def cluster_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the nodes (and of the jobs they run): token auth on, no usage stats."""
    # Not inherited: a local Ray's HTTP front-door settings (serve/http_proxy.py).  These nodes share one
    # machine and reach each other's replicas through Serve's Python proxy on the head (HeadOnly).
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ADDRESS" and not k.startswith(("RAY_SERVE_HAPROXY_", "RAY_SERVE_DIRECT_INGRESS_"))}
    env |= {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", "RAY_SERVE_ENABLE_HA_PROXY": "0",
            # Jobs run `python ...` in a shell on the head: it must be this environment's python.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    return env | (extra or {})


def client_env(spec: ClusterSpec) -> dict[str, str]:
    """The environment for `ray job submit`, `ray list ...`, `serve deploy` against this cluster."""
    return cluster_env({"RAY_ADDRESS": spec.dashboard_url})


def ensure_token() -> None:
    """Ray's `ray start` refuses token mode without a token; create Ray's default one if missing."""
    if read_token() is None:
        subprocess.run([ray_cli(), "get-auth-token", "--generate"],
                       env=cluster_env(), check=True, capture_output=True)


@dataclass
class NodeRecord:
    pid: int
    node_id: str | None = None
    log: str = ""


@dataclass
class ClusterState:
    spec: ClusterSpec
    nodes: dict[str, NodeRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.spec.address, "dashboard_url": self.spec.dashboard_url,
                "spec": asdict(self.spec), "nodes": {k: asdict(v) for k, v in self.nodes.items()}}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ClusterState:
        return cls(ClusterSpec(**values["spec"]), {k: NodeRecord(**v) for k, v in values["nodes"].items()})


def _tree(pid: int, temp_dir: Path) -> list[psutil.Process]:
    """A node's `ray start` process and its descendants; empty if it is gone (or the pid now belongs
    to another program: the command line must name the node's temp dir)."""
    try:
        parent = psutil.Process(pid)
        if f"--temp-dir={temp_dir}" not in parent.cmdline():
            return []
        return [parent, *parent.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _stragglers(root: Path) -> list[psutil.Process]:
    """Ray processes of this cluster that left their tree: a command-line flag names our temp dir
    (``--temp-dir=``, ``--session-dir=``, ``--log_dir=``...; a `tail -f <root>/head.log` is spared)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        args = process.info.get("cmdline") or []
        if process.pid != os.getpid() and any(
                arg.startswith("--") and (arg.endswith(f"={root}") or f"={root}/" in arg) for arg in args):
            found.append(process)
    return found


def _kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=5)


def _stop(trees: list[list[psutil.Process]], grace_s: float) -> None:
    """Stop nodes: SIGTERM to each `ray start --block`, which shuts its node's processes down in
    order (a few seconds); SIGKILL whatever is left after the grace period. (SIGTERM to every Ray
    process at once is worse: raylets and the GCS then wait for each other.)"""
    for tree in trees:
        with contextlib.suppress(psutil.NoSuchProcess, IndexError):
            tree[0].terminate()
    _, alive = psutil.wait_procs([p for tree in trees for p in tree], timeout=grace_s)
    _kill(alive)


class LocalCluster:
    """Start, inspect, break and stop the local multi-node cluster described by a ClusterSpec."""

    def __init__(self, spec: ClusterSpec | None = None, root: str | Path | None = None) -> None:
        root = Path(root or (spec.root if spec else DEFAULT_ROOT))
        stored = root / "cluster.json"
        if spec is None and stored.exists():
            self.state = ClusterState.from_json(json.loads(stored.read_text()))
        else:
            self.state = ClusterState(spec or ClusterSpec(root=str(root)))

    @property
    def spec(self) -> ClusterSpec:
        return self.state.spec

    @property
    def root(self) -> Path:
        return Path(self.spec.root)

    @property
    def dashboard(self) -> Dashboard:
        return Dashboard(self.spec.dashboard_url, timeout_s=10.0)

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "cluster.json.tmp"
        tmp.write_text(json.dumps(self.state.to_json(), indent=1))
        os.replace(tmp, self.root / "cluster.json")
        (self.root / "address").write_text(self.spec.address + "\n")
        (self.root / "dashboard_url").write_text(self.spec.dashboard_url + "\n")
        (self.root / "env.sh").write_text(
            f"# . {self.root / 'env.sh'}  then: ray job submit --working-dir . -- python -m rl.train ...\n"
            f"export RAY_ADDRESS={self.spec.dashboard_url} RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0\n")

    def _alive_node_ids(self) -> dict[str, str]:
        """Marker resource -> node id of every alive node ({} if the dashboard does not answer)."""
        try:
            nodes = self.dashboard.alive_nodes()
        except DashboardError:
            return {}
        return {key: node["node_id"] for node in nodes for key in node.get("resources_total", {})
                if key.startswith("mft_")}

    def node_id(self, name: str) -> str:
        """The Ray node id of a running node of this cluster (it changes when the node is restarted)."""
        record = self.state.nodes.get(name)
        if record is None or record.node_id is None:
            raise KeyError(f"node {name} of the cluster under {self.root} is not running")
        return record.node_id

    def node_ids(self) -> list[str]:
        """The node ids of every running node, sorted."""
        return sorted(self.node_id(name) for name in self.state.nodes)

    def node_alive(self, name: str, alive: dict[str, str] | None = None) -> bool:
        record = self.state.nodes.get(name)
        if record is None or not _tree(record.pid, self.root / name):
            return False
        alive = self._alive_node_ids() if alive is None else alive
        return record.node_id is not None and alive.get(f"mft_{name}") == record.node_id

    def up(self, timeout_s: float = 120.0) -> ClusterState:
        """Start the nodes that are not running; wait until all of them are alive."""
        if not self.node_alive("head"):
            self.down(quiet=True)
            ensure_token()
            self._start("head", timeout_s)
        for name in self.spec.node_names()[1:]:
            if not self.node_alive(name):
                self.kill(name)  # leftovers of a lost node
                self._start(name, timeout_s)
        self._wait_jobs_api(timeout_s)
        return self.state

    def _start(self, name: str, timeout_s: float) -> None:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        # A killed node stays ALIVE in the GCS until its health checks time out: wait for a new node id.
        stale = self._alive_node_ids().get(f"mft_{name}")
        with log.open("ab") as out:
            process = subprocess.Popen(node_command(self.spec, name), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=cluster_env(), start_new_session=True)
        self.state.nodes[name] = NodeRecord(pid=process.pid, log=str(log))
        self._save()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"node {name} exited with {process.returncode}; see {log}:\n"
                                   f"{log.read_text()[-2000:]}")
            node_id = self._alive_node_ids().get(f"mft_{name}")
            if node_id and node_id != stale:
                self.state.nodes[name].node_id = node_id
                self._save()
                return
            time.sleep(0.5)
        raise TimeoutError(f"node {name} not alive after {timeout_s:.0f}s; see {log}")

    def _wait_jobs_api(self, timeout_s: float) -> None:
        """Job submission needs the job server and the head's agent, which come up after the GCS."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.dashboard.get("/api/jobs/")
                return
            except DashboardError:
                time.sleep(0.5)
        raise TimeoutError(f"job API at {self.spec.dashboard_url} not ready after {timeout_s:.0f}s")

    def kill(self, name: str) -> None:
        """SIGKILL a node's whole process tree at once: what losing the machine looks like to Ray."""
        record = self.state.nodes.get(name)
        if record is not None:
            _kill(_tree(record.pid, self.root / name))
        _kill(_stragglers(self.root / name))

    def down(self, quiet: bool = False, grace_s: float = 15.0) -> None:
        """Stop every node (by its recorded process tree) and remove the state file."""
        # Workers first: a worker node whose GCS is already gone waits out the grace period.
        trees = {name: _tree(record.pid, self.root / name) for name, record in self.state.nodes.items()}
        _stop([tree for name, tree in trees.items() if name != "head"], grace_s)
        _stop([tree for name, tree in trees.items() if name == "head"], grace_s)
        _kill(_stragglers(self.root))
        self.state.nodes.clear()
        for leftover in ("cluster.json", "address", "dashboard_url", "env.sh"):
            (self.root / leftover).unlink(missing_ok=True)
        if not quiet:
            print(f"local cluster under {self.root} stopped")

    def status(self) -> dict[str, Any]:
        alive = self._alive_node_ids()
        return {**self.state.to_json(),
                "alive": {name: self.node_alive(name, alive) for name in self.spec.node_names()}}

    def describe(self) -> str:
        status = self.status()
        nodes = ", ".join(f"{name} {'alive' if ok else 'DOWN'}" for name, ok in status["alive"].items())
        return (f"Ray cluster (token auth): address {self.spec.address}, "
                f"dashboard {self.spec.dashboard_url}\n"
                f"nodes: {nodes}\n"
                f"submit: . {self.root / 'env.sh'} && ray job submit --working-dir . "
                f"--runtime-env cluster/runtime_env.yaml -- python -m rl.train ...")

    def purge(self) -> None:
        """down, then delete the temp dirs (session logs included)."""
        self.down(quiet=True)
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.local", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "kill"])
    parser.add_argument("node", nargs="?", help="kill: the node to kill (e.g. worker1)")
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="state file and Ray temp dirs")
    defaults = ClusterSpec()
    parser.add_argument("--port", type=int, default=defaults.port, help="GCS port of the head")
    parser.add_argument("--dashboard-port", type=int, default=defaults.dashboard_port)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="worker nodes")
    parser.add_argument("--head-cpus", type=int, default=defaults.head_cpus)
    parser.add_argument("--worker-cpus", type=int, default=defaults.worker_cpus)
    parser.add_argument("--port-base", type=int, default=defaults.port_base)
    args = parser.parse_args(argv)
    if args.command == "up":
        spec = ClusterSpec(root=args.root, port=args.port, dashboard_port=args.dashboard_port,
                           workers=args.workers, head_cpus=args.head_cpus, worker_cpus=args.worker_cpus,
                           port_base=args.port_base)
        cluster = LocalCluster(spec)
        previous = LocalCluster(root=args.root)
        if previous.spec != spec:  # a cluster of another shape is running under this root
            previous.down(quiet=True)
        else:
            cluster.state.nodes = previous.state.nodes
        cluster.up()
        print(cluster.describe())
    elif args.command == "down":
        LocalCluster(root=args.root).down()
    elif args.command == "status":
        cluster = LocalCluster(root=args.root)
        print(cluster.describe())
        return 0 if all(cluster.status()["alive"].values()) else 1
    else:
        if not args.node:
            parser.error("kill needs a node name, e.g. worker1")
        LocalCluster(root=args.root).kill(args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
