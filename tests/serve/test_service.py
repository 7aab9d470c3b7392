"""One ensemble in process: weights, the baseline fallback, paper accounts, failures (real tiny runs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from features.data.registry import load_dataset
from rl.baselines import make_baseline
from serve.config import EnsembleConfig, FallbackConfig, MemberConfig
from serve.members import LoadedMember, load_member
from serve.observations import bars_panel
from serve.paper import PaperAccount
from serve.service import EnsembleService

BARS = 480


@pytest.fixture(scope="module")
def windows() -> list[pl.DataFrame]:
    dataset = load_dataset("binance_btc_1h").dataset
    frame = dataset[dataset.keys[0]].filter(pl.col("timestamp").dt.year() == 2022).head(BARS + 3)
    return [frame.slice(i, BARS) for i in range(3)]


def columns(frame: pl.DataFrame) -> dict[str, Any]:
    return {
        "timestamp": frame["timestamp"].dt.epoch("us").to_list(),
        **{c: frame[c].to_list() for c in ("open", "high", "low", "close", "volume")},
    }


def broken_loader(*args: Any, **kwargs: Any) -> LoadedMember:
    """A real member whose network fails on every call."""
    loaded = load_member(*args, **kwargs)

    def fail(observation: np.ndarray, stream: str) -> Any:
        raise RuntimeError("onnxruntime session lost")

    loaded.member.act = fail  # type: ignore[method-assign]
    return loaded


def test_explicit_weights_override_the_weighting(tiny_runs: dict[str, Path]) -> None:
    members = (
        MemberConfig(str(tiny_runs["ppo_mlp"]), weight=3.0),
        MemberConfig(str(tiny_runs["dqn_mlp"])),
        MemberConfig(str(tiny_runs["ppo_cnn"])),
    )
    service = EnsembleService("main", EnsembleConfig(members=members, weighting="sharpe"))
    positive = [max(m.sharpe or 0.0, 0.0) for m in service.loaded]
    base = [3 * p / sum(positive) for p in positive] if sum(positive) > 0 else [1.0, 1.0, 1.0]  # mean 1
    raw = [3.0, base[1], base[2]]
    assert service.ensemble.weights == pytest.approx([w / sum(raw) for w in raw])
    assert [m["weight"] for m in service.describe()["members"]] == pytest.approx(service.ensemble.weights)


def test_the_fallback_decides_when_no_member_can(
    tiny_runs: dict[str, Path], windows: list[pl.DataFrame]
) -> None:
    params = {"fast": 5, "slow": 20}
    config = EnsembleConfig(
        members=(MemberConfig(str(tiny_runs["ppo_mlp"])),), fallback=FallbackConfig("ma_crossover", params)
    )
    service = EnsembleService("main", config, loader=broken_loader)
    window = windows[0]
    answer = service.decide(
        "s",
        {"bars": {"binance:BTC/USDT": columns(window)}, "portfolio": {"weights": {"binance:BTC/USDT": 0.0}}},
    )
    dataset, _ = service.primary.dataset({"binance:BTC/USDT": window})
    target = make_baseline("ma_crossover", params).target_weights(
        bars_panel(dataset, service.primary.instruments)
    )
    expected = 1 if target[-1, 0] > 0 else 0  # discrete scheme: buy all in when the rule is long, else hold
    assert answer["ok"] and answer["action"] == expected
    assert answer["fallback"]["baseline"] == "ma_crossover"
    assert (
        answer["fallback"]["reason"] == "no member answered: ppo_mlp: RuntimeError: onnxruntime session lost"
    )
    no_bars = service.decide("s", {"observation": [0.0] * service.primary.observation_size})
    assert (no_bars["ok"], no_bars["status"]) == (False, 503)  # no bars: nothing for the baseline to read


def test_weights_scheme_fallback_and_disagreement_limit(
    tiny_runs: dict[str, Path], windows: list[pl.DataFrame]
) -> None:
    config = EnsembleConfig(
        members=(MemberConfig(str(tiny_runs["ppo_weights"])),),
        fallback=FallbackConfig("equal_weight", {}, max_disagreement=0.5),
    )
    service = EnsembleService("main", config, loader=broken_loader)
    answer = service.decide("s", {"bars": {"binance:BTC/USDT": columns(windows[0])}})
    assert answer["action"] == [1.0, 0.0]  # all of the one instrument, no cash


def test_paper_account_follows_the_decisions(tiny_runs: dict[str, Path], windows: list[pl.DataFrame]) -> None:
    config = EnsembleConfig(
        members=tuple(MemberConfig(str(tiny_runs[n])) for n in ("ppo_mlp", "dqn_mlp", "ppo_cnn"))
    )
    service = EnsembleService("main", config)
    answers = [service.decide("p", {"bars": {"binance:BTC/USDT": columns(w)}}) for w in windows]
    account = PaperAccount("discrete", 1, [0.001])
    for window, answer in zip(windows, answers, strict=True):
        step = account.update(window["timestamp"][-1], np.array([window["close"][-1]]), answer["action"])
        assert answer["paper"]["step_log_return"] == pytest.approx(step)
    assert answers[-1]["paper"]["log_return"] == pytest.approx(account.log_return)
    assert answers[-1]["paper"]["steps"] == 3 and math.isfinite(account.log_return)
    assert service.reset("p") == {"ok": True, "variant": "main", "stream_id": "p", "had_memory": True}
    assert service.decide("p", {"bars": {"binance:BTC/USDT": columns(windows[0])}})["paper"]["steps"] == 1


def test_only_recurrent_ensembles_pin_streams_to_replicas(tiny_runs: dict[str, Path]) -> None:
    from serve.app import recurrent

    def ensemble(*names: str) -> EnsembleConfig:
        return EnsembleConfig(members=tuple(MemberConfig(str(tiny_runs[n])) for n in names))

    assert not recurrent(ensemble("ppo_mlp", "dqn_mlp", "ppo_attention"), None)
    assert recurrent(ensemble("ppo_mlp", "ppo_lstm"), None)
    assert recurrent(EnsembleConfig(members=(MemberConfig("no/such/run"),)), None)  # unknown: the safe choice


def test_a_lone_stateless_ensemble_is_fused_into_the_http_replicas(tiny_runs: dict[str, Path]) -> None:
    from serve.app import fused_variant
    from serve.config import ServeConfig

    def config(members: tuple[str, ...], **extra: Any) -> ServeConfig:
        ensembles = {
            "main": {"members": [{"source": str(tiny_runs[m])} for m in members]},
            "other": {"members": [{"source": str(tiny_runs["dqn_mlp"])}]},
        }
        return ServeConfig.from_dict({"ensembles": ensembles, **extra})

    assert fused_variant(config(("ppo_mlp", "dqn_mlp"))) == "main"
    assert fused_variant(config(("ppo_mlp", "ppo_lstm"))) is None  # memory per stream needs sticky routing
    assert fused_variant(config(("ppo_mlp",), routing={"split": {"main": 1.0}, "shadow": "other"})) is None
    assert fused_variant(config(("ppo_mlp",), routing={"split": {"main": 0.5, "other": 0.5}})) is None
    assert fused_variant(config(("ppo_mlp",), fuse=False)) is None
