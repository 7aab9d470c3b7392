"""Ensemble rules, disagreement, member isolation, stream memory, traffic split, paper accounts (no Ray)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.schema import DataError
from serve.ensemble import ActionSpec, Ensemble, StreamMemory, combine, sharpe_weights
from serve.observations import PortfolioState
from serve.paper import PaperAccount, implied_weights
from serve.traffic import choose_variant, preferred_replica

DISCRETE3 = ActionSpec("discrete", 3)


class FixedMember:
    """Acts a fixed action; counts its calls per stream (a stand-in for recurrent memory)."""

    def __init__(
        self,
        name: str,
        action: Any,
        probs: list[float] | None = None,
        spec: ActionSpec = DISCRETE3,
        fail: bool = False,
    ) -> None:
        self.name, self.version, self.runtime, self.recurrent = name, f"{name}/1", "fake", True
        self.action_spec, self.action, self.probs, self.fail = spec, action, probs, fail
        self.calls: dict[str, int] = {}

    def act(self, observation: np.ndarray, stream: str) -> tuple[Any, np.ndarray | None]:
        if self.fail:
            raise RuntimeError("weights corrupted")
        self.calls[stream] = self.calls.get(stream, 0) + 1
        return self.action, None if self.probs is None else np.array(self.probs)

    def reset(self, stream: str) -> None:
        self.calls.pop(stream, None)


def test_weighted_vote_and_disagreement() -> None:
    action, disagreement = combine(DISCRETE3, "vote", [1, 2, 2, 0, 1], [None] * 5, [0.4, 0.1, 0.1, 0.2, 0.2])
    assert action == 1  # tally 0.6 for 1, 0.2 for 2, 0.2 for 0
    assert disagreement == pytest.approx(0.4)


def test_vote_tie_goes_to_the_lowest_action() -> None:
    assert combine(DISCRETE3, "vote", [2, 1], [None, None], [1, 1]) == (1, 0.5)
    assert combine(DISCRETE3, "vote", [2, 0], [None, None], [1, 1]) == (0, 0.5)


def test_mean_probabilities_with_a_q_network_as_one_hot() -> None:
    probs = [np.array([0.1, 0.6, 0.3]), np.array([0.5, 0.1, 0.4]), None]  # the third member is a Q-network
    action, disagreement = combine(DISCRETE3, "mean_probs", [1, 0, 2], probs, [1, 1, 1])
    # mean = [0.2, 0.2333, 0.5667]: action 2, which only the Q-network chose
    assert action == 2
    assert disagreement == pytest.approx(2 / 3)
    assert combine(DISCRETE3, "vote", [1, 0, 2], probs, [1, 1, 1])[0] == 0  # a three-way tie votes hold


def test_continuous_actions_median_and_mean() -> None:
    spec = ActionSpec("box", 2)
    actions = [[0.0, 1.0], [0.5, -1.0], [1.0, 0.0]]
    weights = [0.2, 0.45, 0.35]
    median, spread = combine(spec, "vote", actions, [None] * 3, weights)
    assert median == [0.5, 0.0]  # cumulative weights 0.2, 0.65 and 0.45, 0.8 reach one half there
    # half the mean |a - median| per member: 0.375, 0.25, 0.125
    assert spread == pytest.approx(0.2 * 0.375 + 0.45 * 0.25 + 0.35 * 0.125)
    mean, _ = combine(spec, "mean_probs", actions, [None] * 3, weights)
    assert mean == pytest.approx([0.575, -0.25])


def test_multi_discrete_votes_per_component() -> None:
    spec = ActionSpec("multi_discrete", 2, (2, 5))
    action, disagreement = combine(spec, "vote", [[1, 3], [1, 4], [0, 4]], [None] * 3, [1, 1, 1])
    assert action == [1, 4]
    assert disagreement == pytest.approx(2 / 3)  # only the second member matches both components


@given(st.lists(st.tuples(st.integers(0, 4), st.floats(0.01, 10.0)), min_size=1, max_size=9), st.randoms())
@settings(max_examples=200, deadline=None)
def test_vote_picks_a_heaviest_action_whatever_the_member_order(
    members: list[tuple[int, float]], rnd: Any
) -> None:
    spec = ActionSpec("discrete", 5)
    actions, weights = [a for a, _ in members], [w for _, w in members]
    action, disagreement = combine(spec, "vote", actions, [None] * len(actions), weights)
    tally = np.bincount(actions, weights=weights, minlength=5) / sum(weights)
    assert tally[action] == pytest.approx(tally.max())
    assert disagreement == pytest.approx(1.0 - tally[action])
    shuffled = list(zip(actions, weights, strict=True))
    rnd.shuffle(shuffled)
    again = combine(spec, "vote", [a for a, _ in shuffled], [None] * len(actions), [w for _, w in shuffled])
    assert again[0] == action


def test_sharpe_weights() -> None:
    assert sharpe_weights([1.0, -0.5, 3.0, None]) == pytest.approx([0.25, 0.0, 0.75, 0.0])
    assert sharpe_weights([-1.0, float("nan")]) == pytest.approx([0.5, 0.5])  # nothing positive: equal


def test_a_failing_member_is_reported_and_the_rest_decide() -> None:
    members = [FixedMember("a", 1), FixedMember("b", 2, fail=True), FixedMember("c", 1)]
    decision = Ensemble(members, "vote").decide(np.zeros(4, np.float32), "s")
    assert (decision.action, decision.answered, decision.disagreement) == (1, 2, 0.0)
    failed = decision.members[1]
    assert failed.action is None and failed.error == "RuntimeError: weights corrupted"
    none = Ensemble([FixedMember("x", 1, fail=True)]).decide(np.zeros(4, np.float32), "s")
    assert none.action is None and none.answered == 0


def test_members_must_share_the_action_space() -> None:
    with pytest.raises(DataError, match="act differently"):
        Ensemble([FixedMember("a", 1), FixedMember("b", [0.0, 1.0], spec=ActionSpec("box", 2))])
    with pytest.raises(DataError, match="unknown ensemble rule 'median'"):
        Ensemble([FixedMember("a", 1)], "median")


def test_reset_reaches_every_member_for_that_stream_only() -> None:
    members = [FixedMember("a", 1), FixedMember("b", 1)]
    ensemble = Ensemble(members)
    for stream in ("s1", "s1", "s2"):
        ensemble.decide(np.zeros(4, np.float32), stream)
    ensemble.reset("s1")
    assert all(m.calls == {"s2": 1} for m in members)


def test_stream_memory_drops_the_least_recently_used() -> None:
    memory: StreamMemory[list[int]] = StreamMemory(2, lambda: [0])
    memory.get("a")[0] = 5
    memory.get("b")
    memory.get("a")  # a is now the most recent
    memory.get("c")  # evicts b
    assert "b" not in memory and memory.get("a") == [5] and len(memory) == 2
    assert memory.pop("a") and not memory.pop("a")


def test_variant_split_is_deterministic_and_follows_the_shares() -> None:
    split = {"main": 0.9, "candidate": 0.1}
    streams = [f"stream-{i}" for i in range(20_000)]
    first = [choose_variant(s, split) for s in streams]
    assert first == [choose_variant(s, split) for s in streams]
    share = first.count("candidate") / len(streams)
    assert abs(share - 0.1) < 0.01  # binomial sd 0.002
    assert {choose_variant(s, {"only": 1.0}) for s in streams[:100]} == {"only"}


def test_replica_choice_moves_only_the_streams_of_a_removed_replica() -> None:
    replicas = ["r1", "r2", "r3"]
    streams = [f"s{i}" for i in range(3_000)]
    before = {s: preferred_replica(s, replicas) for s in streams}
    after = {s: preferred_replica(s, ["r1", "r3"]) for s in streams}
    moved = [s for s in streams if before[s] != after[s]]
    assert moved and all(before[s] == "r2" for s in moved)
    assert abs(sum(r == "r2" for r in before.values()) / len(streams) - 1 / 3) < 0.03


def test_portfolio_vector_defaults_to_flat() -> None:
    names = ("binance:BTC/USDT", "binance:ETH/USDT")
    flat = PortfolioState().vector(names, window=32)
    assert flat.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    held = PortfolioState(
        weights={"BINANCE:btc/usdt": 0.5}, unrealised_pnl={"binance:BTC/USDT": 0.02}, bars_since_trade=8
    ).vector(names, window=32)
    assert held == pytest.approx([0.5, 0.0, 0.5, 0.02, 0.0, 8 / 40])
    with pytest.raises(
        DataError, match=r"portfolio.weights names unknown instrument\(s\) \['kraken:BTC/USD'\]"
    ):
        PortfolioState(weights={"kraken:BTC/USD": 1.0}).vector(names, window=32)


def test_paper_account_marks_exposure_and_pays_fees() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    account = PaperAccount("discrete", 1, [0.001])
    assert account.update(start, np.array([100.0]), 1) == pytest.approx(math.log(0.999))  # buy all in
    assert account.update(start, np.array([100.0]), 1) == 0.0  # the same bar again books nothing
    assert account.update(start + hour, np.array([110.0]), 0) == pytest.approx(math.log(1.1))  # hold
    assert account.update(start + 2 * hour, np.array([99.0]), 2) == pytest.approx(
        math.log(0.9) + math.log(0.999)
    )
    assert account.update(start + 3 * hour, np.array([200.0]), 0) == 0.0  # flat: price moves do not matter
    assert account.log_return == pytest.approx(math.log(0.999 * 1.1 * 0.9 * 0.999))
    assert implied_weights("weights", [0.2, 0.6, -1.0], np.zeros(2)) == pytest.approx([0.25, 0.75])
    assert PaperAccount("limit", 1, [0.001]).update(start, np.array([1.0]), [0.5, 0.5]) is None
