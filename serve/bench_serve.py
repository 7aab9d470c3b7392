"""``python -m serve.bench_serve``: latency, load, resource use and a killed replica, over loopback.

For a five-member ensemble (five small MLP policies trained for one iteration on the bundled
Binance BTC 1h bars) served by Ray Serve on 127.0.0.1, with the torch and the ONNX runtime:

1. sequential requests: latency p50 / p95 / p99 of ``POST /v1/decide`` with a ready observation
   and with the latest bars (features computed in the service);
2. a steady open-loop load (default 50 requests/s): latency measured from each request's
   scheduled send time, the error rate, and the serving processes' CPU and peak memory;
3. fault: two replicas under the same load, one killed; failed requests and recovery time.

The figures are printed and written between the bench markers of docs/serving.md.  Only
loopback, only a bounded number of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from serve.config import ServeConfig
from serve.http_proxy import HTTP_PROXIES, prepare_local_ray
from serve.procstats import ResourceMonitor
from serve.tiny_runs import train_ensemble

MEMBERS = tuple(
    (f"bench_{algo}_mlp_{seed}", algo, "mlp", seed)
    for algo, seed in (("ppo", 0), ("ppo", 1), ("ppo", 2), ("a2c", 0), ("dqn", 0))
)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
START, END = "<!-- bench-serve:start -->", "<!-- bench-serve:end -->"
HEADER = (
    "| phase | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | CPU: serving (machine) "
    "| peak RSS |"
)
DEPLOYMENT = "ingress"  # the deployment holding the ensemble (fused into the HTTP replicas when stateless)


@dataclass
class Sample:
    scheduled: float
    latency: float
    status: int


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    cpu_percent: float | None = None  # serving processes, share of the whole machine
    machine_cpu_percent: float | None = None  # every process on the machine (other jobs included)
    peak_rss_mb: float | None = None
    throughput: float | None = None  # answered requests per second, closed loop
    started_at: float = 0.0  # perf_counter of the first scheduled request (open loop): origin of `scheduled`

    def latencies_ms(self) -> np.ndarray:
        return np.array([s.latency for s in self.samples if s.status == 200]) * 1e3

    @property
    def errors(self) -> int:
        return sum(s.status != 200 for s in self.samples)

    def row(self) -> str:
        ms = self.latencies_ms()
        p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
        cpu = "" if self.cpu_percent is None else f"{self.cpu_percent:.0f}% ({self.machine_cpu_percent:.0f}%)"
        rss = "" if self.peak_rss_mb is None else f"{self.peak_rss_mb / 1024:.2f} GB"
        rate = "" if self.throughput is None else f"{self.throughput:.0f}"
        return (
            f"| {self.name} | {len(self.samples)} | {rate} | {p50:.1f} | {p95:.1f} | {p99:.1f} | "
            f"{ms.max() if len(ms) else float('nan'):.1f} | {self.errors / max(len(self.samples), 1):.2%} | {cpu} | "
            f"{rss} |"
        )


# -- requests ------------------------------------------------------------------------------------------------


JSON_HEADERS = {"content-type": "application/json"}


def encoded(bodies: Callable[[int], dict[str, Any]], count: int) -> list[bytes]:
    """Request bodies serialised before the clock starts: the load generator measures, it should not load."""
    return [json.dumps(bodies(i)).encode() for i in range(count)]


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it measures (a pause would count as latency)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def sequential(url: str, bodies: Callable[[int], dict[str, Any]], count: int, name: str) -> Phase:
    phase = Phase(name)
    payloads = encoded(bodies, count)
    with httpx.Client(base_url=url, timeout=30.0) as client, collector_paused():
        for i in range(count):
            started = time.perf_counter()
            status = client.post("/v1/decide", content=payloads[i], headers=JSON_HEADERS).status_code
            phase.samples.append(Sample(started, time.perf_counter() - started, status))
    return phase


async def _open_loop(
    url: str,
    bodies: Callable[[int], dict[str, Any]],
    rate: float,
    count: int,
    events: dict[float, Callable[[], None]],
) -> tuple[list[Sample], float]:
    samples: list[Sample] = []
    payloads = encoded(bodies, count)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        start = time.perf_counter()

        async def one(i: int) -> None:
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                status = (await client.post("/v1/decide", content=payloads[i], headers=JSON_HEADERS)).status_code
            except httpx.HTTPError:
                status = 0
            samples.append(Sample(scheduled - start, time.perf_counter() - scheduled, status))

        async def fire_events() -> None:
            for at, action in sorted(events.items()):
                await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
                await asyncio.to_thread(action)

        await asyncio.gather(fire_events(), *(one(i) for i in range(count)))
    return sorted(samples, key=lambda s: s.scheduled), start


async def _closed_loop(
    url: str,
    bodies: Callable[[int], dict[str, Any]],
    workers: int,
    seconds: float,
) -> list[Sample]:
    samples: list[Sample] = []
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        end = time.perf_counter() + seconds

        async def worker(first: int) -> None:
            i = first
            while time.perf_counter() < end:
                started = time.perf_counter()
                status = (await client.post("/v1/decide", json=bodies(i))).status_code
                samples.append(Sample(started, time.perf_counter() - started, status))
                i += workers

        await asyncio.gather(*(worker(k) for k in range(workers)))
    return samples


def capacity(
    url: str, bodies: Callable[[int], dict[str, Any]], workers: int, seconds: float, name: str
) -> Phase:
    """Throughput with ``workers`` requests always in flight: what the stack can answer per second."""
    phase = Phase(name)
    phase.samples = asyncio.run(_closed_loop(url, bodies, workers, seconds))
    phase.throughput = sum(s.status == 200 for s in phase.samples) / seconds
    return phase


def steady(
    url: str,
    bodies: Callable[[int], dict[str, Any]],
    rate: float,
    seconds: float,
    name: str,
    events: dict[float, Callable[[], None]] | None = None,
) -> Phase:
    phase = Phase(name)
    with ResourceMonitor() as monitor, collector_paused():
        phase.samples, phase.started_at = asyncio.run(_open_loop(url, bodies, rate, int(rate * seconds), events or {}))
    phase.cpu_percent, phase.machine_cpu_percent = monitor.cpu_percent, monitor.machine_percent
    phase.peak_rss_mb = monitor.peak_rss / 2**20
    return phase


def request_bodies(
    url: str, streams: int = 16
) -> tuple[Callable[[int], dict[str, Any]], Callable[[int], Any]]:
    """Bodies with an observation, and with the recommended number of real bars as columns (16 streams)."""
    from features.data.registry import load_dataset

    info = httpx.get(f"{url}/v1/model-info", timeout=30.0).json()
    inputs = next(iter(next(iter(info["variants"].values()))["inputs"].values()))
    dataset = load_dataset("binance_btc_1h").dataset
    frame = dataset[dataset.keys[0]].tail(inputs["recommended_bars"])
    bars = {  # the columns format: cheaper to send and to parse than a list of bar objects
        "timestamp": [t.isoformat() for t in frame["timestamp"]],
        **{c: frame[c].to_list() for c in ("open", "high", "low", "close", "volume")},
    }
    rng = np.random.default_rng(0)
    observations = rng.normal(0.0, 1.0, (64, inputs["observation_size"])).astype(np.float32).round(5).tolist()

    def observation(i: int) -> dict[str, Any]:
        return {"stream_id": f"bench-{i % streams}", "observation": observations[i % len(observations)]}

    def with_bars(i: int) -> dict[str, Any]:
        return {"stream_id": f"bench-{i % streams}", "bars": {inputs["instruments"][0]: bars}}

    return observation, with_bars


# -- deployments ---------------------------------------------------------------------------------------------


def deploy(runs: dict[str, Path], runtime: str, port: int, replicas: int = 1) -> str:
    from serve.app import fused_variant, start

    config = ServeConfig.from_dict(
        {
            "port": port,
            "app_name": "mft-bench",
            "ensembles": {
                "main": {
                    "members": [{"source": str(p)} for p in runs.values()],
                    "runtime": runtime,
                    "scaling": {
                        "num_replicas": replicas,
                        "max_ongoing_requests": 32,
                        "health_check_period_s": 1.0,
                    },
                }
            },
        }
    )
    start(config)
    global DEPLOYMENT
    DEPLOYMENT = "ingress" if fused_variant(config) else "ensemble-main"
    return f"http://127.0.0.1:{port}"


def running_replicas(app: str = "mft-bench") -> int:
    from ray import serve

    states = serve.status().applications[app].deployments[DEPLOYMENT].replica_states
    return sum(int(n) for state, n in states.items() if str(getattr(state, "value", state)) == "RUNNING")


def kill_one_replica() -> float:
    """Kill one replica actor of the main ensemble; returns the moment (perf_counter)."""
    import ray

    names = [a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{DEPLOYMENT}#" in a["name"]]
    ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=True)
    return time.perf_counter()


@dataclass
class FaultResult:
    phase: Phase
    killed_at: float  # seconds into the load
    failed: int
    last_failure_s: float | None  # after the kill
    slow_until_s: float | None  # last request after the kill slower than 10x the p99 before it
    replaced_s: float | None  # until Serve ran two healthy replicas again


def fault_test(
    url: str, bodies: Callable[[int], dict[str, Any]], rate: float, seconds: float, kill_after: float
) -> FaultResult:
    marks: dict[str, float] = {}

    def kill() -> None:
        marks["kill"] = kill_one_replica()
        deadline = marks["kill"] + seconds
        while time.perf_counter() < deadline and running_replicas() == 2:  # until Serve notices
            time.sleep(0.05)
        while time.perf_counter() < deadline and running_replicas() < 2:  # until the replacement runs
            time.sleep(0.05)
        if running_replicas() == 2:
            marks["replaced"] = time.perf_counter()

    phase = steady(url, bodies, rate, seconds, "fault: 2 replicas, one killed", {kill_after: kill})
    killed = marks["kill"] - phase.started_at  # on the same clock as the samples' `scheduled`
    before = [s.latency for s in phase.samples if s.scheduled < kill_after and s.status == 200]
    threshold = 10 * float(np.percentile(before, 99)) if before else float("inf")
    after = [s for s in phase.samples if s.scheduled >= killed]
    failures = [s.scheduled - killed for s in after if s.status != 200]
    slow = [s.scheduled - killed for s in after if s.status != 200 or s.latency > threshold]
    replaced = marks["replaced"] - marks["kill"] if "replaced" in marks else None
    return FaultResult(
        phase,
        killed,
        phase.errors,
        max(failures) if failures else None,
        max(slow) if slow else None,
        replaced,
    )


# -- report --------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    import onnxruntime
    import ray
    import torch

    return (
        f"{cpu}, {os.cpu_count()} logical CPUs (shared with other jobs), {memory:.0f} GB RAM; Python "
        f"{platform.python_version()}, Ray {ray.__version__}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def report(phases: Sequence[Phase], fault: FaultResult | None, rate: float, front_door: str) -> str:
    door = "HAProxy (Ray Serve's C ingress)" if front_door == "haproxy" else "Ray Serve's Python proxy actor"
    lines = [
        f"Machine: {machine()}.",
        f"HTTP front door: {door} (`--http-proxy {front_door}`).",
        "",
        HEADER,
        "|" + " --- |" * 10,
        *(p.row() for p in phases),
    ]
    if fault is not None:
        f = fault
        lines += [
            "",
            f"Fault test at {rate:g} requests/s: one of two replicas killed {f.killed_at:.1f} s into "
            f"the load; {f.failed} of {len(f.phase.samples)} requests failed "
            f"({f.failed / len(f.phase.samples):.2%}); last failed request "
            f"{'none' if f.last_failure_s is None else f'{f.last_failure_s:.2f} s'} after the kill; last "
            f"request slower than 10x the p99 before the kill: "
            f"{'none' if f.slow_until_s is None else f'{f.slow_until_s:.2f} s'} after it; Serve ran two "
            f"healthy replicas again after "
            f"{'(not within the test)' if f.replaced_s is None else f'{f.replaced_s:.1f} s'}.",
            "",
            HEADER,
            "|" + " --- |" * 10,
            f.phase.row(),
        ]
    return "\n".join(lines)


def write_docs(text: str, path: Path = DOCS) -> None:
    block = f"{START}\n{text}\n{END}"
    current = path.read_text() if path.exists() else ""
    if START in current and END in current:
        head, rest = current.split(START, 1)
        updated = head + block + rest.split(END, 1)[1]
    else:
        updated = current + ("\n" if current else "") + "## Measured\n\n" + block + "\n"
    path.write_text(updated)


def wait_until_answering(url: str, body: dict[str, Any], seconds: float = 60.0) -> None:
    """The proxy learns a new route a moment after the deployment is ready: poll until it answers."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            if httpx.post(f"{url}/v1/decide", json=body, timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}/v1/decide did not answer 200 within {seconds:g} s")


def run_reference(args: argparse.Namespace, observation: Callable[[int], dict[str, Any]]) -> list[Phase]:
    """The bare Serve floor, same bodies and load (replaces the service on the route for the duration)."""
    from ray import serve

    from serve.bench_reference import deploy_bare

    serve.delete("mft-bench")  # the route is the service's
    url = deploy_bare(args.port)
    wait_until_answering(url, observation(0))
    sequential(url, observation, 20, "warm-up")
    phases = [
        sequential(url, observation, args.requests, "bare Serve (floor): sequential, observation"),
        steady(url, observation, args.rate, args.seconds, f"bare Serve (floor): {args.rate:g}/s, observation"),
    ]
    serve.delete("mft-bench-bare")
    for phase in phases:
        print(phase.row(), flush=True)
    return phases


def run_runtime(runs: dict[str, Path], runtime: str, args: argparse.Namespace) -> list[Phase]:
    url = deploy(runs, runtime, args.port)
    observation, with_bars = request_bodies(url)
    sequential(url, observation, 20, "warm-up")
    sequential(url, with_bars, 5, "warm-up")
    phases = [
        sequential(url, observation, args.requests, f"{runtime}: sequential, observation"),
        sequential(url, with_bars, args.requests // 2, f"{runtime}: sequential, bars"),
        steady(url, observation, args.rate, args.seconds, f"{runtime}: {args.rate:g}/s, observation"),
        steady(url, with_bars, args.rate, args.seconds, f"{runtime}: {args.rate:g}/s, bars"),
        capacity(url, observation, 4, 8.0, f"{runtime}: capacity (4 in flight), observation"),
        capacity(url, with_bars, 4, 8.0, f"{runtime}: capacity (4 in flight), bars"),
    ]
    for phase in phases:
        print(phase.row(), flush=True)
    return phases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", help="folder of the five tiny runs (trained there if missing)")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per phase")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second under load")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each load phase")
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument("--fault-seconds", type=float, default=40.0, help="duration of the fault test's load")
    parser.add_argument("--no-fault", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/serving.md alone")
    parser.add_argument("--http-proxy", choices=HTTP_PROXIES, default="auto", help="Serve's HTTP front door")
    args = parser.parse_args(argv)
    import ray
    import torch
    from ray import serve

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    torch.set_num_threads(1)
    front_door = prepare_local_ray(args.http_proxy, "127.0.0.1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = train_ensemble(Path(args.runs or tempfile.mkdtemp(prefix="mft-bench-runs-")), MEMBERS)
    try:
        phases = run_runtime(runs, "torch", args) + run_runtime(runs, "onnx", args)
        observation, _ = request_bodies(f"http://127.0.0.1:{args.port}")  # the ONNX deployment is still up
        phases += run_reference(args, observation)
        fault = None
        if not args.no_fault:
            url = deploy(runs, "torch", args.port, replicas=2)
            observation, _ = request_bodies(url)
            sequential(url, observation, 20, "warm-up")
            fault = fault_test(
                url, observation, args.rate, args.fault_seconds, kill_after=min(10.0, args.fault_seconds / 3)
            )
    finally:
        serve.shutdown()
        ray.shutdown()
    text = report(phases, fault, args.rate, front_door)
    print(text)
    if not args.no_docs:
        write_docs(text)
        print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
