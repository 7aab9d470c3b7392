"""Session fixtures of the policy-service tests: one local Ray, tiny real runs trained once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# (name, algorithm, backbone, seed): every backbone, both heads (policy logits and Q-values).
TINY_RUNS = (
    ("ppo_mlp", "ppo", "mlp", 0),
    ("ppo_lstm", "ppo", "lstm", 0),
    ("dqn_mlp", "dqn", "mlp", 0),
    ("ppo_cnn", "ppo", "cnn", 0),
    ("ppo_attention", "ppo", "attention", 0),
    ("ppo_weights", "ppo", "mlp", 0, ("env.action.name=weights",)),  # continuous (Gaussian) actions
)


@pytest.fixture(scope="session")
def serve_ray(ray_session: None) -> Iterator[None]:
    """The session's local Ray, with Serve shut down when the session ends."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # single decisions: extra intra-op threads only spin on a shared machine (~50x slower)
    try:
        yield
    finally:
        from ray import serve

        torch.set_num_threads(threads)
        serve.shutdown()


@pytest.fixture(scope="session")
def tiny_runs(serve_ray: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders of one short training iteration each on the bundled Binance BTC 1h bars."""
    from serve.tiny_runs import train_ensemble

    return train_ensemble(tmp_path_factory.mktemp("serve-runs"), TINY_RUNS)
