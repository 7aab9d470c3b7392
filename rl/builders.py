"""One builder per object of a training run: market data, panels, environment config, RLlib config.

Features are computed once on the whole series (they are causal, so a row never sees a later bar)
and then cut at the validation start; anything fitted (normalisation statistics, feature
selection) is fitted on the training rows only.  The validation panel starts ``window`` bars
before the cut so the first decision is at the close of the last training bar and the first fill
is at the open of the first validation bar: the agent's equity curve covers exactly the
validation span, the same span as buy-and-hold and the baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from envs import EnvConfig, register_ray_env
from features.data.config import DataConfig
from features.data.registry import load_dataset
from features.data.schema import Dataset
from features.data.splits import train_validation_split
from features.panel import FeaturePanel
from features.pipeline import FeatureConfig, FeaturePipeline, FeatureSelection, FeatureSelector, SelectionConfig
from features.pipeline.selection import train_split
from rl.algorithms import weight_decay_learner_class
from rl.backtest import evaluation_panel
from rl.config import AlgoConfig, ModelConfig, TrainConfig, TrainLoopConfig
from rl.models import configure_model


@dataclass
class PreparedData:
    """Everything a run needs from the market: the panels and how they were made."""

    dataset: Dataset
    pipeline: FeaturePipeline
    selection: FeatureSelection | None
    panel: FeaturePanel  # the whole span, selected features
    train: FeaturePanel  # rows before the validation start
    validation: FeaturePanel  # `window` rows of context, then the validation span
    validation_start: datetime
    timeframe: str


def load_data(config: DataConfig) -> Dataset:
    dataset = load_dataset(config.name, symbols=config.symbols, gap_policy=config.gap_policy).dataset
    if config.start or config.end:
        start = datetime.fromisoformat(config.start) if config.start else None
        end = datetime.fromisoformat(config.end) if config.end else None
        dataset = dataset.slice_time(*(_utc(t) for t in (start, end)))
    return dataset


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def prepare_data(config: TrainConfig) -> PreparedData:
    dataset = load_data(config.data)
    split = train_validation_split(dataset, config.data.validation_days)
    pipeline = FeaturePipeline(FeatureConfig.from_dict(config.features)).fit(split.train)
    panel = pipeline.panel(dataset)
    window = int(config.env.get("window", EnvConfig().window))
    train = train_split(panel, split.cut)
    selection_config = SelectionConfig.from_dict(config.feature_selection)
    selection = None
    if selection_config.method != "none":
        selection = FeatureSelector(selection_config).fit(train)
        panel, train = selection.apply(panel), selection.apply(train)
    return PreparedData(
        dataset=dataset,
        pipeline=pipeline,
        selection=selection,
        panel=panel,
        train=train,
        validation=evaluation_panel(panel, split.cut, None, window),
        validation_start=split.cut,
        timeframe=panel.keys[0].timeframe,
    )


def env_values(values: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """Plain env settings for `mode` ('train': random starts, 'eval': one span), with the `fee` shortcut
    (maker and taker fee of every exchange without its own schedule) turned into the cost model's."""
    out = {k: v for k, v in values.items() if k != "fee"} | {"mode": mode}
    if values.get("fee") is not None:
        costs = dict(out.get("costs") or {})
        costs["default_fees"] = {"maker": float(values["fee"]), "taker": float(values["fee"])}
        out["costs"] = costs
    return out


def env_config(values: Mapping[str, Any], mode: str) -> EnvConfig:
    """The environment config for training ('train': random starts) or evaluation ('eval')."""
    return EnvConfig.from_dict(env_values(values, mode))


def observation_layout(panel: FeaturePanel, env: EnvConfig) -> dict[str, int]:
    n_instruments = len(env.instruments or panel.keys)
    return {
        "window": env.window,
        "token_dim": n_instruments * len(panel.feature_names),
        "state_dim": 2 * n_instruments + 2,
    }


def _algorithm_class_config(algo: AlgoConfig) -> AlgorithmConfig:
    if algo.name == "ppo":
        from ray.rllib.algorithms.ppo import PPOConfig

        return PPOConfig().training(
            minibatch_size=algo.minibatch_size, num_epochs=algo.num_epochs, clip_param=algo.clip_param,
            vf_clip_param=algo.vf_clip_param, lambda_=algo.lambda_, entropy_coeff=algo.entropy_coeff,
            vf_loss_coeff=algo.vf_loss_coeff, use_kl_loss=False,
        )
    if algo.name == "a2c":
        from rl.algorithms import A2CConfig

        return A2CConfig().training(lambda_=algo.lambda_, entropy_coeff=algo.entropy_coeff,
                                    vf_loss_coeff=algo.vf_loss_coeff)
    from ray.rllib.algorithms.dqn import DQNConfig

    buffer = "PrioritizedEpisodeReplayBuffer" if algo.prioritized_replay else "EpisodeReplayBuffer"
    return DQNConfig().training(
        replay_buffer_config={"type": buffer, "capacity": algo.replay_capacity},
        target_network_update_freq=algo.target_network_update_freq, double_q=algo.double_q,
        dueling=algo.dueling, n_step=algo.n_step, num_steps_sampled_before_learning_starts=algo.learning_starts,
        epsilon=[[0, 1.0], [algo.epsilon_steps, algo.epsilon_final]],
    ).reporting(min_sample_timesteps_per_iteration=algo.train_batch_size, min_time_s_per_iteration=0)


def algorithm_config(
    algo: AlgoConfig, model: ModelConfig, loop: TrainLoopConfig, env_settings: Mapping[str, Any],
    train: FeaturePanel, seed: int,
) -> AlgorithmConfig:
    """The RLlib AlgorithmConfig: our env on the training panel, our module, our scale knobs."""
    env = env_config(env_settings, "train")
    config = _algorithm_class_config(algo)
    batch = algo.minibatch_size if algo.name == "dqn" else algo.train_batch_size
    config = (
        config.environment(register_ray_env(), env_config={"panel": train, "config": env_values(env_settings, "train")})
        .training(lr=algo.lr, gamma=algo.gamma, train_batch_size_per_learner=batch, grad_clip=algo.grad_clip,
                  grad_clip_by="global_norm")
        .env_runners(num_env_runners=loop.num_env_runners, num_envs_per_env_runner=loop.num_envs_per_env_runner,
                     rollout_fragment_length=loop.rollout_fragment_length)
        .learners(num_learners=loop.num_learners, learner_class=weight_decay_learner_class(algo.name),
                  learner_config_dict={"weight_decay": algo.weight_decay})
        .debugging(seed=seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=5)
    )
    if algo.name == "dqn" and loop.rollout_fragment_length == "auto":
        # One replay update per 4 sampled steps (DQN's classic ratio); an iteration is train_batch_size steps.
        config.env_runners(rollout_fragment_length=4)
    return configure_model(config, algo.name, model.name, model.model_config(observation_layout(train, env)))


def seed_replay_buffer(trainer: Any, seed: int) -> None:
    """Make DQN repeatable: RLlib 2.60's EpisodeReplayBuffer samples from an unseeded generator."""
    buffer = getattr(trainer, "local_replay_buffer", None)
    if buffer is not None and hasattr(buffer, "rng"):
        buffer.rng = np.random.default_rng(seed)
