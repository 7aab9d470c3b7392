"""The service on a local Ray Serve: real checkpoints, decisions equal to the policies run directly,
bad requests answered with the problem, stream memory, A/B routing, shadow, metrics, a killed replica."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from features.data.registry import load_dataset
from rl.artifacts import load_agent
from rl.module_policy import ModulePolicy
from serve.config import ServeConfig
from serve.ensemble import combine
from serve.observations import InputSpec, PortfolioState
from serve.traffic import choose_variant

SPLIT = {"main": 0.5, "candidate": 0.5}
BARS = 480  # above every member's recommended count: features equal to training's
STEPS = 4  # successive decisions per stream, one new bar each


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def streams_of(variant: str, count: int) -> list[str]:
    return [s for s in (f"desk-{i}" for i in range(500)) if choose_variant(s, SPLIT) == variant][:count]


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    dataset = load_dataset("binance_btc_1h").dataset
    return dataset[dataset.keys[0]].filter(pl.col("timestamp").dt.year() == 2022).head(BARS + STEPS)


def bars_json(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {"timestamp": ts.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for ts, o, h, lo, c, v in frame.select(
            "timestamp", "open", "high", "low", "close", "volume"
        ).iter_rows()
    ]


@pytest.fixture(scope="module")
def service(
    tiny_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    from ray import serve

    from serve.app import start

    log = tmp_path_factory.mktemp("serve-log") / "decisions.jsonl"
    config = ServeConfig.from_dict(
        {
            "port": free_port(),
            "decision_log": str(log),
            "request_timeout_s": 60.0,
            "ensembles": {
                "main": {
                    "members": [{"source": str(tiny_runs[n])} for n in ("ppo_mlp", "ppo_lstm", "dqn_mlp")],
                    "scaling": {"num_replicas": 2},
                },
                "candidate": {
                    "members": [{"source": str(tiny_runs[n])} for n in ("ppo_cnn", "ppo_attention")],
                    "runtime": "onnx",
                    "rule": "mean_probs",
                },
                "shadow": {
                    "members": [{"source": str(tiny_runs["ppo_mlp"]), "name": "shadow_mlp"}],
                    "runtime": "onnx",
                },
            },
            "routing": {"split": SPLIT, "shadow": "shadow"},
        }
    )
    start(config)
    try:
        yield f"http://127.0.0.1:{config.port}", log
    finally:
        serve.shutdown()  # Serve keeps the first HTTP port it started with: the next module starts afresh


@pytest.fixture(scope="module")
def client(service: tuple[str, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service[0], timeout=60.0) as http:
        yield http


def decide(client: httpx.Client, stream: str, frame: pl.DataFrame, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/decide", json={"stream_id": stream, "bars": {"binance:BTC/USDT": bars_json(frame)}, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def direct_actions(runs: list[Path], windows: list[pl.DataFrame]) -> dict[str, list[Any]]:
    """Each member run directly: its own observation from the same bars, memory carried across windows."""
    actions: dict[str, list[Any]] = {}
    for run in runs:
        bundle = load_agent(run)
        spec = InputSpec(bundle)
        policy = ModulePolicy(bundle.policy.module)
        policy.reset(None)
        observations = [
            spec.from_bars({"binance:BTC/USDT": w}, PortfolioState()).observation for w in windows
        ]
        actions[run.name] = [policy.act(obs) for obs in observations]
    return actions


@pytest.mark.parametrize(
    ("variant", "members", "rule"),
    [
        ("main", ("ppo_mlp", "ppo_lstm", "dqn_mlp"), "vote"),
        ("candidate", ("ppo_cnn", "ppo_attention"), "mean_probs"),
    ],
)
def test_decisions_equal_the_policies_run_directly(
    client: httpx.Client,
    frame: pl.DataFrame,
    tiny_runs: dict[str, Path],
    variant: str,
    members: tuple[str, ...],
    rule: str,
) -> None:
    stream = streams_of(variant, 1)[0]
    windows = [frame.slice(i, BARS) for i in range(STEPS)]
    answers = [decide(client, stream, w) for w in windows]
    expected = direct_actions([tiny_runs[m] for m in members], windows)
    for step, answer in enumerate(answers):
        assert answer["variant"] == variant and answer["shadow"] == "shadow"
        assert answer["memory_steps"] == step + 1  # one replica kept this stream's memory throughout
        got = {m["member"]: m["action"] for m in answer["members"]}
        assert got == {name: expected[name][step] for name in members}
        probabilities = [
            None if m["probabilities"] is None else np.array(m["probabilities"]) for m in answer["members"]
        ]
        assert (answer["action"], pytest.approx(answer["disagreement"])) == combine(
            load_agent_spec(tiny_runs[members[0]]),
            rule,
            list(got.values()),
            probabilities,
            [1.0] * len(members),
        )
        assert answer["bar_time"].startswith(str(windows[step]["timestamp"][-1].date()))


def load_agent_spec(run: Path) -> Any:
    from serve.ensemble import ActionSpec

    return ActionSpec.of(load_agent(run).policy.module.action_space)


def test_observation_requests(client: httpx.Client, frame: pl.DataFrame, tiny_runs: dict[str, Path]) -> None:
    stream = streams_of("main", 3)[1]
    spec = InputSpec(load_agent(tiny_runs["ppo_mlp"]))
    held = PortfolioState(weights={"binance:BTC/USDT": 0.9}, cash_share=0.1, bars_since_trade=3)
    obs = spec.from_bars({"binance:BTC/USDT": frame.tail(BARS)}, held).observation
    answer = client.post("/v1/decide", json={"stream_id": stream, "observation": obs.tolist()}).json()
    for member in answer["members"]:
        policy = ModulePolicy(load_agent(tiny_runs[member["member"]]).policy.module)
        policy.reset(None)
        assert member["action"] == policy.act(obs)
    assert answer["paper"] is None and answer["bar_time"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"bars": {"kraken:BTC/USD": "FRAME"}},
            "unknown instrument(s) ['kraken:BTC/USD']; this ensemble trades",
        ),
        ({"bars": {"binance:BTC/USDT": "SHORT"}}, "binance:BTC/USDT: 10 bars given, at least"),
        ({"bars": {"binance:BTC/USDT": "REVERSED"}}, "unsorted timestamps"),
        ({"observation": [0.5, 1.0]}, "observation has 2 values; this ensemble expects"),
        (
            {"observation": [0.5], "portfolio": {"weights": {"binance:ETH/USDT": 1.0}}},
            "observation has 1 values",
        ),
    ],
)
def test_bad_requests_get_a_422_and_the_service_stays_up(
    client: httpx.Client, frame: pl.DataFrame, body: dict[str, Any], message: str
) -> None:
    frames = {
        "FRAME": bars_json(frame.tail(BARS)),
        "SHORT": bars_json(frame.tail(10)),
        "REVERSED": bars_json(frame.tail(BARS).reverse()),
    }
    if "bars" in body:
        body = {"bars": {k: frames[v] for k, v in body["bars"].items()}}
    for stream in (streams_of("main", 1)[0], streams_of("candidate", 1)[0]):
        response = client.post("/v1/decide", json={"stream_id": stream, **body})
        assert response.status_code == 422 and message in response.json()["error"], response.text
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200


def test_reset_forgets_the_stream(
    client: httpx.Client, frame: pl.DataFrame, tiny_runs: dict[str, Path]
) -> None:
    stream = streams_of("main", 4)[2]
    window = frame.tail(BARS)
    first = [decide(client, stream, window)["memory_steps"] for _ in range(3)]
    reset = client.post(f"/v1/streams/{stream}/reset").json()
    assert first == [1, 2, 3] and reset == {
        "stream_id": stream,
        "had_memory": {"main": True, "candidate": False, "shadow": True},
    }
    again = decide(client, stream, window)
    assert again["memory_steps"] == 1
    fresh = direct_actions([tiny_runs["ppo_lstm"]], [window])["ppo_lstm"][0]
    assert {m["member"]: m["action"] for m in again["members"]}["ppo_lstm"] == fresh


def test_split_is_deterministic_and_shadow_is_recorded_not_returned(
    client: httpx.Client, frame: pl.DataFrame, service: tuple[str, Path]
) -> None:
    window = frame.tail(BARS)
    streams = [f"ab-{i}" for i in range(8)]
    variants = [decide(client, s, window)["variant"] for s in streams]
    assert (
        variants
        == [choose_variant(s, SPLIT) for s in streams]
        == [decide(client, s, window)["variant"] for s in streams]
    )
    records = [json.loads(line) for line in service[1].read_text().splitlines()]
    shadow = [r for r in records if r["role"] == "shadow" and r["stream_id"] in streams]
    live = [r for r in records if r["role"] == "live" and r["stream_id"] in streams]
    assert len(live) == 16 and len(shadow) >= 14  # the last shadow decisions may still be on their way
    assert {r["variant"] for r in shadow} == {"shadow"} and "shadow" not in variants
    assert all(r["paper"]["steps"] >= 1 for r in shadow)  # its would-be performance is booked


def test_metrics_and_model_info(client: httpx.Client, frame: pl.DataFrame) -> None:
    decide(client, streams_of("main", 1)[0], frame.tail(BARS))
    text = client.get("/metrics").text
    for name in (
        "mft_serve_requests_total",
        "mft_serve_request_latency_seconds_bucket",
        "mft_serve_ensemble_disagreement_bucket",
        "mft_serve_model_version_info",
        "mft_serve_decisions_total",
        "mft_serve_shadow_agreement_total",
        "mft_serve_paper_log_return",
    ):
        assert name in text
    info = client.get("/v1/model-info").json()
    assert info["split"] == SPLIT and info["shadow"] == "shadow"
    main = info["variants"]["main"]
    assert [m["name"] for m in main["members"]] == ["ppo_mlp", "ppo_lstm", "dqn_mlp"]
    assert all("/best@" in m["version"] for m in main["members"])
    assert next(iter(main["inputs"].values()))["min_bars"] < BARS
    assert f'version="{main["members"][0]["version"]}"' in text


def test_a_killed_replica_costs_no_request(client: httpx.Client, frame: pl.DataFrame) -> None:
    import ray

    window = frame.tail(BARS)
    streams = streams_of("main", 12)
    before = {s: decide(client, s, window)["memory_steps"] for s in streams}
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if "#ensemble-main#" in a["name"]]
    assert len(replicas) == 2
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    after = [
        client.post("/v1/decide", json={"stream_id": s, "bars": {"binance:BTC/USDT": bars_json(window)}})
        for s in streams * 2
    ]
    assert [r.status_code for r in after] == [200] * len(after)
    moved = [s for s in streams if after[streams.index(s)].json()["memory_steps"] == 1]
    kept = [s for s in streams if s not in moved]
    assert moved and kept  # 12 streams all on one of two replicas: probability 2**-11
    assert all(after[streams.index(s)].json()["memory_steps"] == before[s] + 1 for s in kept)
