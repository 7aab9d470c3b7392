"""A2C (synchronous advantage actor-critic) as an RLlib Algorithm on the new API stack.

Each ``training_step`` samples ``train_batch_size`` env steps synchronously from the env runners,
makes exactly ONE gradient step on the whole batch (no minibatches, no epochs) and syncs the new
weights back to the env runners. Use it like PPO, including from Tune::

    config = A2CConfig().environment(MyEnv).rl_module(rl_module_spec=build_module_spec("a2c", "cnn", {...}))
    algo = config.build_algo()
    tune.Tuner(A2C, param_space=config)     # or register_a2c() and then tune.Tuner("A2C", ...)
"""

from __future__ import annotations

from typing import Any, Self, cast

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.learner.learner_group import LearnerGroup
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.env_runner_group import EnvRunnerGroup
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger
from ray.rllib.utils.typing import EpisodeType

A2C_NAME = "A2C"


class A2CConfig(AlgorithmConfig):
    """A2C settings: ``lr``, ``gamma``, ``lambda_`` (GAE), ``vf_loss_coeff``, ``entropy_coeff``, ``grad_clip``
    (global-norm by default).

    ``train_batch_size_per_learner`` (or ``train_batch_size``) is the number of env steps per update.
    L2 weight decay: ``.learners(learner_config_dict={"weight_decay": 1e-4})``.
    """

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or A2C)
        self.lr = 7e-4
        self.gamma = 0.99
        self.lambda_ = 1.0
        self.vf_loss_coeff = 0.5
        self.entropy_coeff = 0.01
        # RLlib annotates these two narrower than the values it accepts.
        self.grad_clip = 0.5  # type: ignore[assignment]
        self.grad_clip_by = "global_norm"
        self.train_batch_size = 256
        self.rollout_fragment_length = "auto"  # type: ignore[assignment]

    def training(
        self,
        *,
        lambda_: float | Any = NotProvided,
        vf_loss_coeff: float | Any = NotProvided,
        entropy_coeff: float | Any = NotProvided,
        **kwargs: Any,
    ) -> Self:
        """A2C's own settings; ``lr``, ``gamma``, ``grad_clip`` etc. go through to AlgorithmConfig."""
        super().training(**kwargs)
        if lambda_ is not NotProvided:
            self.lambda_ = lambda_
        if vf_loss_coeff is not NotProvided:
            self.vf_loss_coeff = vf_loss_coeff
        if entropy_coeff is not NotProvided:
            self.entropy_coeff = entropy_coeff
        return self

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rl.models.actor_critic import ActorCriticModule

        return RLModuleSpec(module_class=ActorCriticModule, model_config={"backbone": "mlp"})

    def get_default_learner_class(self) -> type:
        from rl.algorithms.a2c.a2c_learner import A2CTorchLearner

        return A2CTorchLearner

    def validate(self) -> None:
        super().validate()
        if not self.enable_rl_module_and_learner or not self.enable_env_runner_and_connector_v2:
            self._value_error("A2C runs on RLlib's new API stack only; do not disable it in `.api_stack()`")
        if self.framework_str != "torch":
            self._value_error(f"A2C supports framework='torch' only, got {self.framework_str!r}")
        self.validate_train_batch_size_vs_rollout_fragment_length()
        if self.num_epochs != 1 or self.minibatch_size is not None:
            self._value_error(
                f"A2C makes one gradient step per batch: num_epochs must be 1 and minibatch_size None, "
                f"got num_epochs={self.num_epochs}, minibatch_size={self.minibatch_size}"
            )
        for name in ("vf_loss_coeff", "entropy_coeff"):
            if not isinstance(getattr(self, name), int | float) or getattr(self, name) < 0:
                self._value_error(f"`{name}` must be a number >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.lambda_ <= 1.0:
            self._value_error(f"`lambda_` must be in [0, 1], got {self.lambda_}")


class A2C(Algorithm):
    """Synchronous sample -> one gradient step -> weight sync."""

    @classmethod
    def get_default_config(cls) -> A2CConfig:
        return A2CConfig()

    def training_step(self) -> None:
        config, metrics, runners, learners = self._parts()
        with metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, env_runner_results = cast(
                tuple[list[EpisodeType], list[dict[str, Any]]],
                synchronous_parallel_sample(
                    worker_set=runners,
                    max_env_steps=config.total_train_batch_size,
                    sample_timeout_s=config.sample_timeout_s,
                    _uses_new_env_runners=True,
                    _return_metrics=True,
                ),
            )
        if not episodes:
            return
        metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)

        with metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            # num_epochs=1 and no minibatch_size: the learner runs one step on the whole batch.
            learner_results = learners.update(
                episodes=episodes,
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: metrics.peek(
                        (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)
                    ),
                    NUM_MODULE_STEPS_TRAINED_LIFETIME: metrics.peek(
                        (LEARNER_RESULTS, ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME), default=0
                    ),
                },
                num_epochs=1,
                minibatch_size=None,
            )
        metrics.aggregate(learner_results, key=LEARNER_RESULTS)

        with metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            runners.sync_weights(
                from_worker_or_learner_group=learners,
                policies=sorted(set(learner_results[0].keys()) - {ALL_MODULES}),
                inference_only=True,
            )

    def _parts(self) -> tuple[A2CConfig, MetricsLogger, EnvRunnerGroup, LearnerGroup]:
        if self.metrics is None or self.env_runner_group is None or self.learner_group is None:
            raise RuntimeError(
                "A2C.training_step needs a set-up algorithm (build it with config.build_algo())"
            )
        return cast(A2CConfig, self.config), self.metrics, self.env_runner_group, self.learner_group


def register_a2c() -> None:
    """Register A2C with Tune under the name ``"A2C"`` (``tune.Tuner("A2C", ...)``)."""
    from ray.tune.registry import register_trainable

    register_trainable(A2C_NAME, A2C)
