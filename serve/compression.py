"""How far INT8 quantization and magnitude pruning move a policy from its float model.

For one run, on its validation span (costs on, the training environment's settings): the float
ONNX export is the reference; each compressed variant is measured by

* ``action_agreement``: the share of the reference trajectory's observations on which the variant
  picks the reference's action (same inputs, recurrent state carried through them);
* ``max_output_diff``: the largest absolute difference of the head outputs (logits, Gaussian
  parameters or Q-values) on those observations;
* its own backtest over the span: Sharpe, total return, max drawdown and their change against
  the reference's;
* file size and time per decision.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from features.panel import FeaturePanel
from rl.artifacts import AgentBundle, load_agent
from rl.policy import Policy
from serve.onnx_export import OnnxModel, OnnxPolicy, export_onnx, pruned_module, quantize_int8, sparsity

METRICS = ("sharpe", "total_return", "max_drawdown")


@dataclass
class VariantReport:
    name: str
    size_bytes: int
    sparsity: float
    action_agreement: float
    max_output_diff: float
    metrics: dict[str, float]
    metric_changes: dict[str, float]
    ms_per_decision: float


class Recording(Policy):
    """Passes decisions through and keeps every observation it saw and action it took."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "policy")
        self.observations: list[np.ndarray] = []
        self.actions: list[Any] = []

    def _reset(self, env: Any) -> None:
        self.inner.reset(env)

    def _act(self, observation: np.ndarray) -> Any:
        self.observations.append(observation.copy())
        action = self.inner.act(observation)
        self.actions.append(action)
        return action


def validation_panel(bundle: AgentBundle) -> FeaturePanel:
    """The run's validation panel, rebuilt exactly as training made it."""
    from rl.builders import prepare_data
    from rl.config import TrainConfig

    raw = yaml.safe_load((bundle.run / "config.yaml").read_text())
    return prepare_data(TrainConfig.from_dict(raw)).validation


def replay(model: OnnxModel, observations: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Head outputs [T, K] and actions over observations in order, state carried."""
    from serve.onnx_export import decode

    if not model.meta.recurrent:
        heads, _ = model.run(observations)
    else:
        state, rows = model.initial_state(), []
        for obs in observations:
            head, state = model.run(obs[None], state)
            rows.append(head[0])
        heads = np.stack(rows)
    return heads, [decode(model.meta, head)[0] for head in heads]


def _same(a: Any, b: Any) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=1e-6))


def _timed(model: OnnxModel, observations: np.ndarray, count: int = 200) -> float:
    policy = OnnxPolicy(model)
    policy.reset(None)
    sample = observations[:count]
    started = time.perf_counter()
    for obs in sample:
        policy.act(obs)
    return (time.perf_counter() - started) / max(len(sample), 1) * 1e3


def compression_report(
    run: str | Path,
    *,
    prune: Sequence[float] = (0.3, 0.6),
    quantize: bool = True,
    out_dir: Path | None = None,
) -> list[VariantReport]:
    """The reference (float) and every compressed variant of ``run`` on its validation span."""
    from rl.backtest import backtest

    bundle = load_agent(run)
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="mft-compress-"))
    panel, config = validation_panel(bundle), dataclasses.replace(bundle.env_config, mode="eval")
    module = bundle.policy.module
    paths = {"float32": export_onnx(module, out_dir / "float32.onnx")}
    if quantize:
        paths["int8-dynamic"] = quantize_int8(paths["float32"], out_dir / "int8.onnx")
    sparsities = {"float32": sparsity(module), "int8-dynamic": sparsity(module)}
    for amount in prune:
        pruned = pruned_module(module, amount)
        name = f"pruned-{amount:.0%}"
        paths[name] = export_onnx(pruned, out_dir / f"pruned{int(amount * 100)}.onnx")
        sparsities[name] = sparsity(pruned)
    reference = OnnxModel(paths["float32"])
    recording = Recording(OnnxPolicy(reference, "float32"))
    base = backtest(recording, panel, config, bundle.timeframe).metrics
    observations = np.stack(recording.observations)
    ref_heads, ref_actions = replay(reference, observations)
    reports = []
    for name, path in paths.items():
        model = reference if name == "float32" else OnnxModel(path)
        heads, actions = replay(model, observations)
        metrics = (
            base
            if name == "float32"
            else backtest(OnnxPolicy(model, name), panel, config, bundle.timeframe).metrics
        )
        values = {k: float(metrics[k]) for k in METRICS}
        reports.append(
            VariantReport(
                name=name,
                size_bytes=path.stat().st_size,
                sparsity=sparsities[name],
                action_agreement=float(
                    np.mean([_same(a, b) for a, b in zip(actions, ref_actions, strict=True)])
                ),
                max_output_diff=float(np.abs(heads - ref_heads).max()),
                metrics=values,
                metric_changes={k: values[k] - float(base[k]) for k in METRICS},
                ms_per_decision=_timed(model, observations),
            )
        )
    return reports


def report_table(reports: Sequence[VariantReport]) -> str:
    """A GitHub markdown table of the reports."""
    head = (
        "| variant | size | zero weights | action agreement | max output diff | Sharpe (change) | "
        "total return (change) | max drawdown (change) | ms / decision |"
    )
    rows = [head, "|" + " --- |" * 9]
    for r in reports:
        m, d = r.metrics, r.metric_changes
        rows.append(
            f"| {r.name} | {r.size_bytes / 1024:.0f} KiB | {r.sparsity:.0%} | {r.action_agreement:.1%} | "
            f"{r.max_output_diff:.2e} | {m['sharpe']:+.2f} ({d['sharpe']:+.2f}) | "
            f"{m['total_return']:+.2%} ({d['total_return']:+.2%}) | "
            f"{m['max_drawdown']:+.2%} ({d['max_drawdown']:+.2%}) | {r.ms_per_decision:.3f} |"
        )
    return "\n".join(rows)
