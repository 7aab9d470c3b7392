"""A2C torch learner: GAE advantages from RLlib's connector, one policy-gradient + value loss.

loss = -mean(logp(a) * A) + vf_loss_coeff * mean((V - R)^2) - entropy_coeff * mean(entropy)

``A`` (advantages, standardized by RLlib's GAE connector) and ``R`` (value targets) come from
``GeneralAdvantageEstimation``, wired exactly like ``PPOLearner.build`` does it: one artificial
timestep is appended to each episode chunk (``AddOneTsToEpisodesAndTruncate``) so the bootstrap
value is computed in the same forward pass, and that step is masked out via ``Columns.LOSS_MASK``.
There is no importance ratio and no clipping: the batch is on-policy and used for one step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
from ray.rllib.connectors.learner import AddOneTsToEpisodesAndTruncate, GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance

from rl.algorithms.weight_decay import WeightDecayMixin

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    from rl.algorithms.a2c.a2c import A2CConfig

VF_EXPLAINED_VAR_KEY = "vf_explained_var"


def masked_mean_fn(batch: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Mean over the valid (unmasked) entries; a plain mean when the batch has no loss mask."""
    if Columns.LOSS_MASK not in batch:
        return torch.mean
    mask = batch[Columns.LOSS_MASK]
    num_valid = torch.sum(mask)
    return lambda values: torch.sum(values[mask]) / num_valid


class A2CTorchLearner(WeightDecayMixin, TorchLearner):
    """Advantage actor-critic loss on a module implementing ``ValueFunctionAPI``."""

    def build(self) -> None:
        super().build()
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.prepend(AddOneTsToEpisodesAndTruncate())
            config = cast("A2CConfig", self.config)
            self._learner_connector.append(
                GeneralAdvantageEstimation(gamma=config.gamma, lambda_=config.lambda_)
            )

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [ValueFunctionAPI]

    def compute_loss_for_module(
        self,
        *,
        module_id: str,
        config: AlgorithmConfig,
        batch: dict[str, Any],
        fwd_out: dict[str, Any],
    ) -> torch.Tensor:
        a2c_config = cast("A2CConfig", config)
        module = self.module[module_id].unwrapped()
        if not isinstance(module, ValueFunctionAPI):
            raise TypeError(
                f"A2C needs an RLModule implementing ValueFunctionAPI, got {type(module).__name__}"
            )
        masked_mean = masked_mean_fn(batch)

        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        advantages = batch[Postprocessing.ADVANTAGES]
        logp = cast(torch.Tensor, dist.logp(batch[Columns.ACTIONS]))
        entropy = cast(torch.Tensor, dist.entropy())
        values = cast(torch.Tensor, module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS)))
        value_targets = batch[Postprocessing.VALUE_TARGETS]

        policy_loss = -masked_mean(logp * advantages)
        vf_loss = masked_mean(torch.pow(values - value_targets, 2.0))
        mean_entropy = masked_mean(entropy)
        total_loss = (
            policy_loss + a2c_config.vf_loss_coeff * vf_loss - a2c_config.entropy_coeff * mean_entropy
        )

        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: policy_loss,
                VF_LOSS_KEY: vf_loss,
                ENTROPY_KEY: mean_entropy,
                VF_EXPLAINED_VAR_KEY: explained_variance(value_targets, values),
            },
            key=module_id,
            window=1,
        )
        return total_loss
