"""Gymnasium trading environments: single and multi-asset, multi-exchange, with exact accounting.

Quick start::

    from envs import EnvConfig, make_env, run_policy
    env = make_env(EnvConfig(mode="eval"), panel)
    result = run_policy(env, lambda obs, info: env.action_space.sample())
    result.equity, result.ledger

Importing this package registers ``mft/Trading-v0`` with gymnasium; call
:func:`envs.registration.register_ray_env` to register ``mft-trading`` with Ray.
"""

from envs.actions import ACTION_SCHEMES, ActionScheme, make_action_scheme
from envs.config import CostConfig, EnvConfig, FeeSchedule, SchemeSpec
from envs.ledger import LEDGER_COLUMNS, Ledger
from envs.observation import ObservationLayout, split_observation
from envs.registration import GYM_ID, RAY_NAME, env_from_config, register_gym_env, register_ray_env
from envs.rewards import REWARD_SCHEMES, RewardScheme, make_reward_scheme
from envs.runner import EpisodeResult, make_env, run_policy
from envs.sizing import SIZING_RULES, SizingRule, make_sizing_rule
from envs.trading_env import TradingEnv

register_gym_env()

__all__ = [
    "ACTION_SCHEMES",
    "GYM_ID",
    "LEDGER_COLUMNS",
    "RAY_NAME",
    "REWARD_SCHEMES",
    "SIZING_RULES",
    "ActionScheme",
    "CostConfig",
    "EnvConfig",
    "EpisodeResult",
    "FeeSchedule",
    "Ledger",
    "ObservationLayout",
    "RewardScheme",
    "SchemeSpec",
    "SizingRule",
    "TradingEnv",
    "env_from_config",
    "make_action_scheme",
    "make_env",
    "make_reward_scheme",
    "make_sizing_rule",
    "register_gym_env",
    "register_ray_env",
    "run_policy",
    "split_observation",
]
