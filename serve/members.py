"""Ensemble members from trained runs (torch or ONNX), and the rule-based fallback member.

A :class:`PolicyMember` gives every trading stream its own policy object when the network is
recurrent (its memory lives there), and shares one object between streams otherwise.  Torch
members are :class:`rl.module_policy.ModulePolicy` on the checkpoint's RLModule (never the whole
algorithm); ONNX members are :class:`serve.onnx_export.OnnxPolicy` on the exported graph.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.data.schema import DataError
from features.panel import FeaturePanel
from rl.artifacts import AgentBundle, load_agent
from rl.baselines import is_learned, make_baseline
from rl.module_policy import ModulePolicy
from rl.policy import Policy
from rl.runs import RunFolder
from serve.config import MemberConfig
from serve.ensemble import ActionSpec, StreamMemory
from serve.observations import InputSpec
from serve.registry import resolve_source, weights_version

log = logging.getLogger(__name__)
ONNX_FILE = "policy.onnx"
HOLD_TOLERANCE = 1e-6  # weight differences below this are a hold for the fallback


class PolicyMember:
    """One trained policy of an ensemble, with per-stream memory when it is recurrent."""

    def __init__(
        self,
        name: str,
        version: str,
        runtime: str,
        make_policy: Callable[[], Any],
        recurrent: bool,
        action_spec: ActionSpec,
        max_streams: int = 10_000,
    ) -> None:
        self.name, self.version, self.runtime = name, version, runtime
        self.recurrent = recurrent
        self.action_spec = action_spec
        self._make = make_policy
        self._shared = None if recurrent else make_policy()
        self._memory: StreamMemory[Any] = StreamMemory(max_streams, self._fresh)

    def _fresh(self) -> Any:
        policy = self._make()
        policy.reset(None)
        return policy

    def policy(self, stream: str) -> Any:
        return self._shared if self._shared is not None else self._memory.get(stream)

    def act(self, observation: np.ndarray, stream: str) -> tuple[Any, np.ndarray | None]:
        policy = self.policy(stream)
        action = policy.act(observation)
        return action, policy.last_probabilities

    def reset(self, stream: str) -> None:
        self._memory.pop(stream)

    @property
    def streams(self) -> int:
        return len(self._memory)


@dataclass
class LoadedMember:
    member: PolicyMember
    inputs: InputSpec
    sharpe: float | None  # best validation Sharpe of the run
    source: str
    checkpoint: Path


def load_member(
    config: MemberConfig,
    runtime: str,
    *,
    max_streams: int = 10_000,
    tracking_uri: str | None = None,
    onnx_dir: Path | None = None,
) -> LoadedMember:
    """Resolve the source, load the RLModule and the run's inputs, wrap it for ``runtime``."""
    resolved = resolve_source(config.source, tracking_uri)
    bundle = load_agent(resolved.path)
    name = config.name or bundle.run.name
    version = resolved.version or weights_version(bundle.run, bundle.checkpoint)
    runtime = config.runtime or runtime
    module = bundle.policy.module
    spec = ActionSpec.of(module.action_space)
    recurrent = bool(module.is_stateful())
    make: Callable[[], Policy]
    if runtime == "onnx":
        make = _onnx_factory(bundle, name, onnx_dir)
    elif runtime == "torch":

        def make() -> Policy:
            return ModulePolicy(module, name)
    else:
        raise DataError(f"member {name}: unknown runtime {runtime!r}; use torch or onnx")
    member = PolicyMember(name, version, runtime, make, recurrent, spec, max_streams)
    sharpe = RunFolder(bundle.run).load_state().best_sharpe
    return LoadedMember(member, InputSpec(bundle), sharpe, config.source, bundle.checkpoint)


def _onnx_factory(bundle: AgentBundle, name: str, onnx_dir: Path | None) -> Callable[[], Policy]:
    """An exported graph beside the checkpoint (``policy.onnx``) if there is one, else a fresh export."""
    from serve.onnx_export import OnnxModel, OnnxPolicy, export_onnx

    shipped = bundle.checkpoint / ONNX_FILE
    if shipped.exists():
        path = shipped
    else:
        folder = onnx_dir or Path(tempfile.mkdtemp(prefix="mft-onnx-"))
        path = export_onnx(bundle.policy.module, folder / f"{name}.onnx")
        log.info("exported %s to %s", name, path)
    model = OnnxModel(path)

    def make() -> Policy:
        return OnnxPolicy(model, name)

    return make


class BaselineFallback:
    """A rule-based baseline acting in the members' action space, from the request's bars.

    The baseline's target weights for the decision bar become: with the ``weights`` scheme, the
    scores ``[w_1..w_N, cash]``; with the ``discrete`` scheme, a buy (all in) or sell (all out) of
    the instrument whose target differs most from the current weight, or hold when none differs.
    """

    SCHEMES = ("discrete", "weights")

    def __init__(self, baseline: str, params: Mapping[str, Any], scheme: str, spec: ActionSpec) -> None:
        if is_learned(baseline):
            raise DataError(
                f"fallback baseline {baseline!r} learns from data; use a rule-based one "
                "(buy_and_hold, equal_weight, ma_crossover, donchian, zscore_reversion, erc)"
            )
        if scheme not in self.SCHEMES:
            raise DataError(
                f"a fallback baseline needs the members to use the {' or '.join(self.SCHEMES)} action "
                f"scheme; they use {scheme!r}"
            )
        self.name = baseline
        self.baseline = make_baseline(baseline, dict(params))
        self.scheme = scheme
        self.spec = spec

    def act(self, bars: FeaturePanel, current_weights: np.ndarray) -> Any:
        """The action for the last bar of ``bars`` given the account's current weights [N]."""
        target = self.baseline.target_weights(bars)[-1]
        if self.scheme == "weights":
            return [float(w) for w in target] + [float(max(0.0, 1.0 - target.sum()))]
        gap = target - current_weights
        index = int(np.argmax(np.abs(gap)))
        if abs(gap[index]) <= HOLD_TOLERANCE:
            return 0
        return 1 + 2 * index if gap[index] > 0 else 2 + 2 * index
