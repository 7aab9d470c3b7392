"""ONNX export of a trained RLModule and an onnxruntime policy that acts exactly like ModulePolicy.

Every backbone exports (MLP, CNN, attention; the LSTM with its ``h``/``c`` state as extra inputs
and outputs).  The graph computes what the module's inference pass feeds the action choice:
the action-distribution inputs of an actor-critic (categorical logits, Gaussian mean and log-std,
or the concatenated logits of a multi-discrete space) or the Q-values of a Q-network.  A JSON
sidecar next to the ``.onnx`` file says which, with the action space and the state layout, so
:class:`OnnxPolicy` decodes actions the way :class:`rl.module_policy.ModulePolicy` does: argmax
of logits or Q-values, the Gaussian mean, softmax probabilities for discrete spaces.

Optional compression (``quantize_int8``, ``pruned_module``) is measured by serve/compression.py.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from torch import nn

from features.data.schema import DataError
from rl.policy import Policy
from serve.ensemble import ActionSpec

OPSET = 17
OBS = "obs"
OUT = "out"


@dataclass(frozen=True)
class OnnxMeta:
    """What the graph outputs and how to turn it into an action (the sidecar JSON)."""

    output: str  # logits | gaussian | multi_logits | q
    action: ActionSpec
    obs_dim: int
    state: dict[str, list[int]]  # recurrent state name -> per-sample shape; empty when feed-forward

    @property
    def recurrent(self) -> bool:
        return bool(self.state)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "action": asdict(self.action)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> OnnxMeta:
        raw = json.loads(text)
        action = raw.pop("action")
        return cls(action=ActionSpec(action["kind"], action["size"], tuple(action["nvec"])), **raw)


class _Graph(nn.Module):
    """The module's inference head as positional tensors in, tensors out (what the exporter traces)."""

    def __init__(self, module: RLModule, state_names: list[str]) -> None:
        super().__init__()
        self.module = module
        self.state_names = state_names
        self.q_network = hasattr(module, "compute_q_values")

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch: dict[str, Any] = {Columns.OBS: obs}
        if self.state_names:
            batch = {
                Columns.OBS: obs[:, None],
                Columns.STATE_IN: dict(zip(self.state_names, state, strict=True)),
            }
        module: Any = self.module  # our actor-critic or Q-network module
        out = module.compute_q_values(batch) if self.q_network else module._forward(batch)
        head = out["qf_preds"] if self.q_network else out[Columns.ACTION_DIST_INPUTS]
        if not self.state_names:
            return (head,)
        return (head[:, 0], *(out[Columns.STATE_OUT][name] for name in self.state_names))


def _output_kind(module: RLModule, spec: ActionSpec) -> str:
    if hasattr(module, "compute_q_values"):
        return "q"
    return {"discrete": "logits", "box": "gaussian", "multi_discrete": "multi_logits"}[spec.kind]


def export_onnx(module: RLModule, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``path`` (.onnx) and its sidecar ``path.with_suffix('.json')``; returns the .onnx path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = copy.deepcopy(module).eval() if isinstance(module, nn.Module) else module
    spec = ActionSpec.of(module.action_space)
    assert module.observation_space is not None and module.observation_space.shape is not None
    obs_dim = int(np.prod(module.observation_space.shape))
    initial = {k: np.asarray(v, dtype=np.float32) for k, v in sorted(module.get_initial_state().items())}
    names = list(initial)
    graph = _Graph(module, names).eval()
    inputs = (torch.zeros(1, obs_dim), *(torch.from_numpy(v)[None] for v in initial.values()))
    input_names = [OBS, *(f"state_in_{n}" for n in names)]
    output_names = [OUT, *(f"state_out_{n}" for n in names)]
    axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shape checks baked in as constants
            torch.onnx.export(
                graph,
                inputs,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    meta = OnnxMeta(_output_kind(module, spec), spec, obs_dim, {n: list(v.shape) for n, v in initial.items()})
    path.with_suffix(".json").write_text(meta.to_json())
    return path


class OnnxModel:
    """An onnxruntime session and its sidecar; ``run`` is one batched inference pass."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        sidecar = path.with_suffix(".json")
        if not sidecar.exists():
            raise DataError(f"{path}: no sidecar {sidecar.name}; export with serve.onnx_export.export_onnx")
        self.path = path
        self.meta = OnnxMeta.from_json(sidecar.read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one decision at a time: threads only add hand-offs
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        return {n: np.zeros((batch, *shape), dtype=np.float32) for n, shape in self.meta.state.items()}

    def run(
        self,
        obs: np.ndarray,
        state: dict[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(head output [B, K], next state) for observations [B, obs_dim]."""
        feeds = {OBS: np.ascontiguousarray(obs, dtype=np.float32)}
        names = list(self.meta.state)
        if names:
            state = state if state is not None else self.initial_state(len(obs))
            feeds |= {f"state_in_{n}": state[n] for n in names}
        outputs = self.session.run(None, feeds)
        return outputs[0], dict(zip(names, outputs[1:], strict=True))


def decode(meta: OnnxMeta, head: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """(action, probabilities or None) from one row of head output, as ModulePolicy acts greedily."""
    spec = meta.action
    if meta.output == "q":
        return int(np.argmax(head)), None
    if meta.output == "logits":
        shifted = np.exp(head - head.max())
        return int(np.argmax(head)), (shifted / shifted.sum()).astype(np.float32)
    if meta.output == "multi_logits":
        bounds = np.cumsum(spec.nvec)[:-1]
        return np.array([int(np.argmax(part)) for part in np.split(head, bounds)], dtype=np.int64), None
    return head[: spec.size].astype(np.float32), None  # the Gaussian's mean


class OnnxPolicy(Policy):
    """A :class:`~rl.policy.Policy` on an :class:`OnnxModel`, with its own recurrent state."""

    def __init__(self, model: OnnxModel, name: str = "onnx") -> None:
        self.model = model
        self.name = name
        self._state: dict[str, np.ndarray] | None = None
        self.last_probabilities: np.ndarray | None = None

    @property
    def recurrent(self) -> bool:
        return self.model.meta.recurrent

    def _reset(self, env: Any) -> None:
        self._state = self.model.initial_state() if self.recurrent else None

    def _act(self, observation: np.ndarray) -> Any:
        if self.recurrent and self._state is None:
            self._reset(None)
        head, state = self.model.run(observation[None], self._state)
        if self.recurrent:
            self._state = state
        action, self.last_probabilities = decode(self.model.meta, head[0])
        return action


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """INT8 dynamic quantization of the weights (activations quantized on the fly); sidecar copied."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    logging.disable(logging.WARNING)  # onnxruntime's advice to pre-process, printed on every call
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    target.with_suffix(".json").write_text(source.with_suffix(".json").read_text())
    return target


def pruned_module(module: RLModule, amount: float) -> RLModule:
    """A copy with the smallest-magnitude ``amount`` of each Linear and Conv1d weight set to zero."""
    from torch.nn.utils import prune

    if not 0.0 <= amount < 1.0:
        raise DataError(f"pruning amount must be in [0, 1), got {amount}")
    pruned = copy.deepcopy(module)
    assert isinstance(pruned, nn.Module)
    for layer in pruned.modules():
        if isinstance(layer, nn.Linear | nn.Conv1d):
            prune.l1_unstructured(layer, name="weight", amount=amount)
            prune.remove(layer, "weight")
    return pruned  # type: ignore[return-value]


def sparsity(module: RLModule) -> float:
    """Share of zero weights over the Linear and Conv1d layers."""
    assert isinstance(module, nn.Module)
    weights = [m.weight for m in module.modules() if isinstance(m, nn.Linear | nn.Conv1d)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0
