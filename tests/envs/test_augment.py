"""Training-episode augmentations: what they change, what they keep, and determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from envs import EnvConfig, SchemeSpec, TradingEnv
from envs.augment import EpisodeArrays, make_augmentation
from features.data.schema import DataError
from tests.envs.helpers import random_panel


def episode() -> EpisodeArrays:
    panel = random_panel(np.random.default_rng(0), 50)
    return EpisodeArrays(panel.features.copy(), panel.ohlcv.copy())


def test_feature_noise_moves_features_only() -> None:
    before = episode()
    after = make_augmentation("feature_noise", {"std": 0.5})(before, np.random.default_rng(1))
    np.testing.assert_array_equal(after.ohlcv, before.ohlcv)
    noise = after.features - before.features
    assert 0.4 < noise.std() < 0.6 and after.features.dtype == np.float32


def test_time_shift_shows_older_features_never_newer() -> None:
    before = episode()
    rng = np.random.default_rng(5)
    shift = int(np.random.default_rng(5).integers(0, 4))
    after = make_augmentation("time_shift", {"max_shift": 3})(before, rng)
    assert shift > 0
    np.testing.assert_array_equal(after.features[shift:], before.features[:-shift])
    np.testing.assert_array_equal(after.ohlcv, before.ohlcv)


def double_prices(arrays: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays:
    return EpisodeArrays(arrays.features, arrays.ohlcv * np.array([2.0, 2.0, 2.0, 2.0, 1.0]))


def negative_prices(arrays: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays:
    return EpisodeArrays(arrays.features, -arrays.ohlcv)


def test_synthetic_paths_replace_training_episodes_but_never_evaluation() -> None:
    panel = random_panel(np.random.default_rng(0), 200)
    synthetic = (SchemeSpec("synthetic", {"generator": "tests.envs.test_augment:double_prices"}),)
    train = TradingEnv(panel, EnvConfig(window=8, episode_length=20, augmentations=synthetic))
    train.reset(seed=2, options={"start": 60})
    _, _, _, _, info = train.step(0)
    assert train.market.close_rows[61 - train.market.offset][0] == pytest.approx(2 * panel.close[61, 0])
    assert info["bar"] == 61  # bar numbers still refer to the original panel
    evaluation = TradingEnv(panel, EnvConfig(window=8, mode="eval", augmentations=synthetic))
    evaluation.reset(seed=2)
    assert evaluation.market is evaluation.full_market
    bad = (SchemeSpec("synthetic", {"generator": negative_prices}),)
    with pytest.raises(DataError, match="non-positive prices"):
        TradingEnv(panel, EnvConfig(window=8, episode_length=20, augmentations=bad)).reset(seed=0)
    with pytest.raises(DataError, match="cannot import generator"):
        make_augmentation("synthetic", {"generator": "tests.envs.nowhere:gen"})


def test_an_identity_augmentation_reproduces_the_plain_episode() -> None:
    """The augmented slice keeps enough history that costs and sizing match the full panel's."""
    panel = random_panel(np.random.default_rng(4), 400, volume=1e4)
    plain_config = EnvConfig(window=8, episode_length=60, sizing=SchemeSpec("vol_target", {"lookback": 48}))
    same_config = replace(plain_config, augmentations=(SchemeSpec("feature_noise", {"std": 0.0}),))
    plain, same = TradingEnv(panel, plain_config), TradingEnv(panel, same_config)
    plain.action_space.seed(0)
    actions = [plain.action_space.sample() for _ in range(60)]
    results = []
    for env in (plain, same):
        env.reset(seed=9, options={"start": 200})
        results.append([env.step(action)[4]["net_worth"] for action in actions])
    assert same.market is not same.full_market and same.market.offset > 0
    assert results[1] == pytest.approx(results[0], rel=1e-12)
    assert plain.ledger.to_frame().height > 10
