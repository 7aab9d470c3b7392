"""Typed training configuration: the Hydra tree in ``configs/`` read into dataclasses.

Every field is documented where it is declared; ``configs/algo/*.yaml``, ``configs/model/*.yaml``,
``configs/env/*.yaml`` and ``configs/train/*.yaml`` hold the defaults a user overrides on the
command line (``python -m rl.train algo=dqn model=lstm train.iterations=50``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from features.configio import refuse_unknown_fields
from features.data.config import DataConfig
from features.data.schema import DataError


def checked_dataclass(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """``cls(**values)``, refusing unknown keys with their names and the known ones."""
    values = dict(values or {})
    refuse_unknown_fields(cls, values, where)
    return cls(**values)


@dataclass
class AlgoConfig:
    """The RL algorithm and its hyperparameters (group ``algo``)."""

    name: str = "ppo"  # ppo | a2c | dqn
    lr: float = 3e-4  # learning rate (research range 1e-5 .. 1e-3)
    gamma: float = 0.99  # discount (0.95 / 0.99 / 0.999)
    train_batch_size: int = 2048  # env steps per training iteration (per learner)
    minibatch_size: int = 128  # PPO: SGD minibatch (32..256); DQN: replay sample size
    num_epochs: int = 4  # PPO: passes over each batch
    clip_param: float = 0.2  # PPO: ratio clip (0.1 .. 0.3)
    vf_clip_param: float = 10.0  # PPO: value-function clip
    lambda_: float = 0.95  # GAE lambda (PPO, A2C)
    entropy_coeff: float = 0.01  # entropy bonus (0.001 .. 0.1)
    vf_loss_coeff: float = 0.5  # value loss weight (PPO, A2C)
    grad_clip: float | None = 0.5  # max global gradient norm (0.5 .. 5); null disables
    weight_decay: float = 0.0  # L2 weight decay of Adam
    # DQN only
    replay_capacity: int = 50_000  # transitions in the replay buffer
    prioritized_replay: bool = False  # prioritised experience replay (not with recurrent models)
    target_network_update_freq: int = 500  # env steps between target network syncs
    double_q: bool = True  # double DQN
    dueling: bool = True  # dueling heads
    n_step: int = 1  # n-step returns
    learning_starts: int = 1000  # env steps sampled before the first update
    epsilon_final: float = 0.02  # exploration after the decay
    epsilon_steps: int = 20_000  # env steps of linear epsilon decay from 1.0

    def __post_init__(self) -> None:
        if self.name not in ("ppo", "a2c", "dqn"):
            raise DataError(f"algo.name must be ppo, a2c or dqn, got {self.name!r}")


@dataclass
class ModelConfig:
    """The network (group ``model``): backbone name plus its options."""

    name: str = "mlp"  # mlp | cnn | lstm | attention
    hidden: list[int] = field(default_factory=lambda: [128, 128])  # widths of the dense layers
    dropout: float = 0.0  # dropout in the trunk (0.1 .. 0.5 to regularise)
    options: dict[str, Any] = field(default_factory=dict)  # backbone-specific (channels, heads, lstm size...)

    def model_config(self, layout: Mapping[str, int]) -> dict[str, Any]:
        """The RLModule model_config: observation layout plus the options."""
        return {**layout, "hidden": list(self.hidden), "dropout": self.dropout, **self.options}


@dataclass
class TrainLoopConfig:
    """How long to train, how to evaluate and where to run (group ``train``)."""

    iterations: int = 30  # training iterations at most
    eval_every: int = 2  # validation evaluation every N iterations
    patience: int = 5  # stop after this many evaluations without a better validation Sharpe
    min_delta: float = 0.01  # a validation Sharpe must beat the best by this much to count
    num_env_runners: int = 0  # remote sampling actors (0 samples in the driver)
    num_envs_per_env_runner: int = 1  # vectorised envs per runner
    num_learners: int = 0  # remote learners (0 learns in the driver)
    rollout_fragment_length: int | str = "auto"  # steps per runner per sample call
    num_cpus: int | None = None  # local Ray only: CPUs to use (null: all); ignored on a cluster
    ray_address: str | None = None  # join this cluster (else RAY_ADDRESS, else start a local Ray)
    resume: str | None = None  # a run folder to resume from its last checkpoint
    run_name: str | None = None  # folder name under run_dir (default: algo-model-data-timestamp)
    experiment: str = "mft-train"  # MLflow experiment
    validation_baselines: bool = True  # put the baselines next to the agent in the final evaluation
    report: bool = True  # write the report folder (plots, tear sheet) after training


@dataclass
class TrainConfig:
    seed: int
    run_dir: str
    data: DataConfig
    features: dict[str, Any]
    feature_selection: dict[str, Any]
    env: dict[str, Any]
    algo: AlgoConfig
    model: ModelConfig
    train: TrainLoopConfig

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> TrainConfig:
        return cls(
            seed=int(cfg.get("seed", 0)),
            run_dir=str(cfg.get("run_dir", "runs")),
            data=DataConfig.from_dict(dict(cfg["data"])),
            features=dict(cfg.get("features") or {}),
            feature_selection=dict(cfg.get("feature_selection") or {}),
            env=dict(cfg.get("env") or {}),
            algo=checked_dataclass(AlgoConfig, cfg.get("algo"), "algo config"),
            model=checked_dataclass(ModelConfig, cfg.get("model"), "model config"),
            train=checked_dataclass(TrainLoopConfig, cfg.get("train"), "train config"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
