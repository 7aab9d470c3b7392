"""ONNX exports act like the torch modules on real observations; compression is measured against them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rl.artifacts import load_agent
from rl.backtest import backtest
from rl.module_policy import ModulePolicy
from serve.compression import Recording, compression_report, replay, validation_panel
from serve.onnx_export import OnnxModel, OnnxPolicy, export_onnx, pruned_module, sparsity

TOLERANCE = 1e-4
HEAD_STEPS = 200


def torch_heads(policy: ModulePolicy, observations: np.ndarray) -> np.ndarray:
    """What the module computes for the action choice, step by step with its state carried."""
    module = policy.module
    if hasattr(module, "compute_q_values"):
        with torch.no_grad():
            return module.compute_q_values({Columns.OBS: torch.from_numpy(observations)})["qf_preds"].numpy()
    policy.reset(None)
    return np.stack(
        [policy.forward(obs)[Columns.ACTION_DIST_INPUTS].reshape(-1).numpy() for obs in observations]
    )


@pytest.mark.parametrize("run", ["ppo_mlp", "ppo_cnn", "ppo_attention", "ppo_lstm", "dqn_mlp", "ppo_weights"])
def test_onnx_matches_torch_on_the_validation_span(
    run: str, tiny_runs: dict[str, Path], tmp_path: Path
) -> None:
    bundle = load_agent(tiny_runs[run])
    panel = validation_panel(bundle)
    recording = Recording(bundle.policy)  # the torch policy trades the span; we keep what it saw
    torch_result = backtest(
        recording, panel, dataclasses.replace(bundle.env_config, mode="eval"), bundle.timeframe
    )
    observations = np.stack(recording.observations)
    assert len(observations) == panel.n_bars - bundle.env_config.window

    model = OnnxModel(export_onnx(bundle.policy.module, tmp_path / f"{run}.onnx"))
    assert model.meta.recurrent == (run == "ppo_lstm")
    heads, actions = replay(model, observations)
    same = [
        np.allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-5)
        for a, b in zip(actions, recording.actions, strict=True)
    ]
    assert all(same)
    first = observations[
        :HEAD_STEPS
    ]  # the raw outputs too, on the first steps (the state carried through them)
    expected = torch_heads(ModulePolicy(bundle.policy.module), first)
    assert heads[:HEAD_STEPS].shape == expected.shape
    assert np.abs(heads[:HEAD_STEPS] - expected).max() < TOLERANCE
    onnx_result = backtest(
        OnnxPolicy(model), panel, dataclasses.replace(bundle.env_config, mode="eval"), bundle.timeframe
    )
    # equal actions give equal books; continuous actions differ in the last float bits, so the books do too
    assert onnx_result.equity.to_numpy() == pytest.approx(torch_result.equity.to_numpy(), rel=1e-6)


def test_lstm_state_is_an_input_and_an_output(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    bundle = load_agent(tiny_runs["ppo_lstm"])
    path = export_onnx(bundle.policy.module, tmp_path / "lstm.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["obs", "state_in_c", "state_in_h"]
    assert [o.name for o in graph.output] == ["out", "state_out_c", "state_out_h"]
    policy = OnnxPolicy(OnnxModel(path))
    obs = np.zeros(OnnxModel(path).meta.obs_dim, np.float32)
    policy.reset(None)
    policy.act(obs)
    after_one = {k: v.copy() for k, v in policy._state.items()}  # type: ignore[union-attr]
    policy.act(obs)
    assert not np.allclose(after_one["h"], policy._state["h"])  # type: ignore[index]  # memory moves on


def test_compression_report(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    reports = {
        r.name: r for r in compression_report(tiny_runs["ppo_mlp"], prune=(0.0, 0.5), out_dir=tmp_path)
    }
    assert list(reports) == ["float32", "int8-dynamic", "pruned-0%", "pruned-50%"]
    for name in ("float32", "pruned-0%"):  # nothing changed: the same actions and metrics
        assert reports[name].action_agreement == 1.0 and reports[name].max_output_diff < TOLERANCE
        assert all(abs(change) < 1e-12 for change in reports[name].metric_changes.values())
    assert reports["int8-dynamic"].size_bytes < 0.5 * reports["float32"].size_bytes  # 8-bit weights
    assert reports["pruned-50%"].sparsity == pytest.approx(0.5, abs=0.01)
    assert 0.0 <= reports["pruned-50%"].action_agreement <= 1.0


def test_pruning_zeroes_the_smallest_weights(tiny_runs: dict[str, Path]) -> None:
    module = load_agent(tiny_runs["ppo_mlp"]).policy.module
    pruned = pruned_module(module, 0.25)
    original = module.backbone.net[0].weight.detach().abs()  # type: ignore[attr-defined]
    kept = pruned.backbone.net[0].weight.detach() != 0  # type: ignore[attr-defined]
    assert float(original[~kept].max()) <= float(original[kept].min())
    assert sparsity(pruned) == pytest.approx(0.25, abs=0.01) and sparsity(module) == 0.0


def test_cli_export_writes_a_servable_graph(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    import argparse

    from serve.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "export", str(tiny_runs["ppo_cnn"]), "--out", str(tmp_path), "--int8"])
    assert args.func(args) == 0
    for name in ("policy.onnx", "policy.json", "policy-int8.onnx", "policy-int8.json"):
        assert (tmp_path / name).exists()
    assert OnnxModel(tmp_path / "policy-int8.onnx").meta.output == "logits"
