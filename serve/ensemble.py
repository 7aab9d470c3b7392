"""An ensemble of trained policies: members, combination rules, disagreement, per-stream memory.

Pure Python and numpy: members are anything with ``act(observation, stream)`` and
``reset(stream)``, so the rules are tested without Ray or torch.

Rules (weights are normalised over the members that answered):

* ``vote``: discrete actions take the weighted majority (a tie goes to the lowest action index,
  which is *hold* in the discrete schemes); multi-discrete actions vote per component; continuous
  actions take the weighted median per dimension.
* ``mean_probs``: discrete actions take the argmax of the weighted mean of the members' action
  probabilities (a member without probabilities, e.g. a Q-network, counts as a one-hot of its
  action); continuous actions take the weighted mean; multi-discrete actions vote.

Disagreement, in [0, 1]: the weight share of members whose action differs from the ensemble's
(discrete, multi-discrete), or the weighted mean over members of half the mean absolute
difference to the ensemble's action (continuous actions live in [-1, 1]).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

from features.data.schema import DataError

ActionKind = Literal["discrete", "box", "multi_discrete"]
T = TypeVar("T")


@dataclass(frozen=True)
class ActionSpec:
    """What the members' actions look like; every member of an ensemble must share it."""

    kind: ActionKind
    size: int  # discrete: number of actions; box: dimensions; multi_discrete: components
    nvec: tuple[int, ...] = ()  # multi_discrete: choices per component

    @classmethod
    def of(cls, space: Any) -> ActionSpec:
        """From a gymnasium space (Discrete, Box or MultiDiscrete)."""
        name = type(space).__name__
        if name == "Discrete":
            return cls("discrete", int(space.n))
        if name == "Box":
            return cls("box", int(np.prod(space.shape)))
        if name == "MultiDiscrete":
            nvec = tuple(int(n) for n in np.asarray(space.nvec).ravel())
            return cls("multi_discrete", len(nvec), nvec)
        raise DataError(f"action space {space} is not supported: use Discrete, Box or MultiDiscrete")


class Member(Protocol):
    """One policy of an ensemble."""

    name: str
    version: str
    runtime: str
    recurrent: bool
    action_spec: ActionSpec

    def act(self, observation: np.ndarray, stream: str) -> tuple[Any, np.ndarray | None]:
        """(action, action probabilities or None) for one observation of ``stream``."""
        ...

    def reset(self, stream: str) -> None:
        """Forget ``stream``'s recurrent memory."""
        ...


@dataclass
class MemberDecision:
    member: str
    version: str
    action: Any  # JSON-safe: int, or a list of numbers; None when the member failed
    probabilities: list[float] | None
    seconds: float
    error: str | None = None


@dataclass
class EnsembleDecision:
    action: Any  # None when no member answered
    disagreement: float
    members: list[MemberDecision] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(m.error is None for m in self.members)


def jsonable_action(action: Any) -> Any:
    """An int for discrete actions, a list of floats or ints otherwise."""
    if isinstance(action, int | np.integer):
        return int(action)
    values = np.asarray(action).ravel()
    return [int(v) for v in values] if np.issubdtype(values.dtype, np.integer) else [float(v) for v in values]


def normalised(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / max(len(w), 1))


def sharpe_weights(sharpes: Sequence[float | None]) -> list[float]:
    """Weights from validation Sharpe ratios: negative or unknown counts as 0; all 0 gives equal weights."""
    clipped = [max(float(s), 0.0) if s is not None and np.isfinite(s) else 0.0 for s in sharpes]
    return normalised(clipped).tolist()


def _weighted_vote(choices: np.ndarray, weights: np.ndarray, n: int) -> int:
    tally = np.bincount(choices, weights=weights, minlength=n)
    return int(np.flatnonzero(tally >= tally.max() - 1e-12)[0])  # ties: the lowest index


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per column of ``values`` [members, dims]: the smallest value whose cumulative weight reaches half."""
    order = np.argsort(values, axis=0, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)
    first = np.argmax(cumulative >= 0.5 - 1e-12, axis=0)
    return sorted_values[first, np.arange(values.shape[1])]


def combine(
    spec: ActionSpec,
    rule: str,
    actions: Sequence[Any],
    probabilities: Sequence[np.ndarray | None],
    weights: Sequence[float] | np.ndarray,
) -> tuple[Any, float]:
    """(ensemble action, disagreement) of the members' ``actions`` under ``rule`` (see the module doc)."""
    w = normalised(weights)
    if spec.kind == "discrete":
        choices = np.array([int(a) for a in actions])
        if rule == "mean_probs":
            table = np.stack(
                [
                    p if p is not None else np.eye(spec.size)[c]
                    for c, p in zip(choices, probabilities, strict=True)
                ]
            )
            mean = w @ table
            action = int(np.flatnonzero(mean >= mean.max() - 1e-12)[0])
        else:
            action = _weighted_vote(choices, w, spec.size)
        return action, float(w[choices != action].sum())
    if spec.kind == "multi_discrete":
        table = np.array([np.asarray(a, dtype=np.int64).ravel() for a in actions])
        combined = np.array([_weighted_vote(table[:, j], w, spec.nvec[j]) for j in range(spec.size)])
        differs = (table != combined).any(axis=1)
        return [int(v) for v in combined], float(w[differs].sum())
    table = np.array([np.asarray(a, dtype=np.float64).ravel() for a in actions])
    combined = w @ table if rule == "mean_probs" else _weighted_median(table, w)
    spread = np.clip(np.abs(table - combined).mean(axis=1) / 2.0, 0.0, 1.0)
    return [float(v) for v in combined], float(w @ spread)


class Ensemble:
    """Members acting on the same decision, combined by ``rule`` with fixed ``weights``."""

    def __init__(
        self, members: Sequence[Member], rule: str = "vote", weights: Sequence[float] | None = None
    ) -> None:
        if not members:
            raise DataError("an ensemble needs at least one member")
        if rule not in ("vote", "mean_probs"):
            raise DataError(f"unknown ensemble rule {rule!r}: use vote or mean_probs")
        specs = {m.name: m.action_spec for m in members}
        if len(set(specs.values())) != 1:
            raise DataError(
                f"ensemble members act differently: {specs}; combine members of one action scheme"
            )
        if len(specs) != len(members):
            raise DataError(f"member names must be unique, got {[m.name for m in members]}")
        self.members = list(members)
        self.rule = rule
        self.spec = members[0].action_spec
        self.weights = normalised(weights if weights is not None else [1.0] * len(members))
        if len(self.weights) != len(members):
            raise DataError(f"{len(self.weights)} weights for {len(members)} members")

    def decide(
        self, observation: Callable[[Member], np.ndarray] | Mapping[str, np.ndarray] | np.ndarray, stream: str
    ) -> EnsembleDecision:
        """Every member's decision and the combined one; a failing member is reported, not fatal."""
        decisions: list[MemberDecision] = []
        probabilities: list[np.ndarray | None] = []
        for member in self.members:
            started = time.perf_counter()
            try:
                action, probs = member.act(_observation_for(observation, member), stream)
            except Exception as err:  # one broken member must not take the ensemble down
                decisions.append(
                    MemberDecision(
                        member.name,
                        member.version,
                        None,
                        None,
                        time.perf_counter() - started,
                        f"{type(err).__name__}: {err}",
                    )
                )
                probabilities.append(None)
                continue
            probs_list = None if probs is None else [float(p) for p in np.asarray(probs).ravel()]
            decisions.append(
                MemberDecision(
                    member.name,
                    member.version,
                    jsonable_action(action),
                    probs_list,
                    time.perf_counter() - started,
                )
            )
            probabilities.append(None if probs is None else np.asarray(probs, dtype=np.float64).ravel())
        ok = [i for i, d in enumerate(decisions) if d.error is None]
        if not ok:
            return EnsembleDecision(None, 0.0, decisions)
        action, disagreement = combine(
            self.spec,
            self.rule,
            [decisions[i].action for i in ok],
            [probabilities[i] for i in ok],
            self.weights[ok],
        )
        return EnsembleDecision(action, disagreement, decisions)

    def reset(self, stream: str) -> None:
        for member in self.members:
            member.reset(stream)

    @property
    def recurrent(self) -> bool:
        return any(m.recurrent for m in self.members)


def _observation_for(
    observation: Callable[[Member], np.ndarray] | Mapping[str, np.ndarray] | np.ndarray, member: Member
) -> np.ndarray:
    if isinstance(observation, np.ndarray):
        return observation
    if isinstance(observation, Mapping):
        return observation[member.name]
    return observation(member)


class StreamMemory(Generic[T]):
    """Per-stream values, at most ``capacity``, least recently used dropped."""

    def __init__(self, capacity: int, make: Callable[[], T]) -> None:
        if capacity < 1:
            raise DataError(f"stream memory capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.make = make
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, stream: str) -> T:
        """The stream's value, created fresh for a new (or evicted) stream."""
        item = self._items.get(stream)
        if item is None:
            item = self._items[stream] = self.make()
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(stream)
        return item

    def pop(self, stream: str) -> bool:
        """Forget the stream; whether it was known."""
        return self._items.pop(stream, None) is not None

    def __contains__(self, stream: object) -> bool:
        return stream in self._items

    def __len__(self) -> int:
        return len(self._items)
