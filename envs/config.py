"""Configuration of the trading environment: every knob in one place, checked at construction.

Venue differences are data: fees and the minimum order size live in a table
keyed by exchange id (``BarKey.exchange``), with a default for venues not
listed.  Action, reward and sizing schemes are chosen by name with a dict of
parameters, so a Hydra or RLlib config maps onto :class:`EnvConfig` directly
(see :meth:`EnvConfig.from_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from features.data.schema import DataError

Mode = Literal["train", "eval"]
_MAX_FEE = 0.05  # 5% per fill: anything above is a typo (0.1 meant as 0.1%), not a venue


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DataError(message)


def _finite(name: str, value: float) -> None:
    _check(isinstance(value, int | float) and math.isfinite(value), f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class FeeSchedule:
    """Fees of one exchange as fractions of traded notional (0.001 = 0.1%)."""

    maker: float = 0.001  # limit orders that rest on the book
    taker: float = 0.001  # market orders
    min_order_notional: float | None = None  # smallest order in quote currency; None -> CostConfig's

    def validate(self, venue: str) -> None:
        for name in ("maker", "taker"):
            value = getattr(self, name)
            _finite(f"{name} fee of {venue}", value)
            _check(0.0 <= value <= _MAX_FEE, f"{name} fee of {venue} is {value}: expected a fraction in "
                   f"[0, {_MAX_FEE}] (0.001 = 0.1%)")
        if self.min_order_notional is not None:
            _finite(f"min_order_notional of {venue}", self.min_order_notional)
            _check(self.min_order_notional >= 0, f"min_order_notional of {venue} must be >= 0")


@dataclass(frozen=True)
class CostConfig:
    """Trading costs: fees per exchange, slippage, market impact and the minimum order size.

    A market order for ``q`` units filled at bar open ``o`` pays
    ``o * (slippage_bps / 1e4 + slippage_vol_mult * sigma)`` per unit of slippage, where
    ``sigma`` is the per-bar standard deviation of log returns over the last
    ``vol_lookback`` bars up to the decision bar, plus market impact
    ``o * min(impact_cap, impact_coef * (q * o / V) ** impact_exponent)`` per unit, where
    ``V`` is the mean notional volume (close * volume) of the last
    ``volume_lookback`` bars up to the decision bar.  Limit orders fill at their
    price and pay neither.  Fees apply to every fill: taker for market, maker for limit.
    """

    fees: Mapping[str, FeeSchedule] = field(default_factory=dict)  # keyed by exchange id, e.g. "binance"
    default_fees: FeeSchedule = field(default_factory=FeeSchedule)  # for exchanges not in ``fees``
    slippage_bps: float = 5.0  # fixed part of slippage, basis points of price
    slippage_vol_mult: float = 0.05  # volatility-scaled part: multiple of per-bar sigma
    vol_lookback: int = 24  # bars in the sigma estimate
    impact_coef: float = 0.1  # impact = coef * (notional / reference volume) ** exponent
    impact_exponent: float = 1.0  # 1 = linear, 0.5 = square-root law
    impact_cap: float = 0.05  # impact never exceeds this fraction of price
    volume_lookback: int = 24  # bars in the reference notional volume
    min_order_notional: float = 10.0  # default smallest order, quote currency

    def __post_init__(self) -> None:
        object.__setattr__(self, "fees", {str(k).strip().lower(): v for k, v in dict(self.fees).items()})
        self.validate()

    def fees_for(self, exchange: str) -> FeeSchedule:
        return self.fees.get(exchange.strip().lower(), self.default_fees)

    def min_notional_for(self, exchange: str) -> float:
        own = self.fees_for(exchange).min_order_notional
        return self.min_order_notional if own is None else own

    def validate(self) -> None:
        self.default_fees.validate("default_fees")
        for venue, schedule in self.fees.items():
            _check(isinstance(schedule, FeeSchedule), f"fees[{venue!r}] must be a FeeSchedule, got {schedule!r}")
            schedule.validate(venue)
        for name in ("slippage_bps", "slippage_vol_mult", "impact_coef", "impact_cap", "min_order_notional"):
            _finite(name, getattr(self, name))
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.impact_cap < 1.0, f"impact_cap must be below 1 (a fraction of price), got {self.impact_cap}")
        _check(0 < self.impact_exponent <= 2, f"impact_exponent must be in (0, 2], got {self.impact_exponent}")
        for name in ("vol_lookback", "volume_lookback"):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) >= 2, f"{name} must be an int >= 2")

    @classmethod
    def zero(cls) -> CostConfig:
        """No fees, no slippage, no impact, no minimum order: for invariants and examples."""
        free = FeeSchedule(0.0, 0.0)
        return cls(default_fees=free, slippage_bps=0.0, slippage_vol_mult=0.0, impact_coef=0.0,
                   min_order_notional=0.0)


@dataclass(frozen=True)
class SchemeSpec:
    """A scheme chosen by name, with keyword parameters for its constructor."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: SchemeSpec | str | Mapping[str, Any]) -> SchemeSpec:
        """Accept a spec, a bare name, or ``{"name": ..., "params": {...}}``."""
        if isinstance(value, SchemeSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and "name" in value:
            extra = set(value) - {"name", "params"}
            _check(not extra, f"scheme {value['name']!r}: unknown keys {sorted(extra)}; use 'name' and 'params'")
            return cls(str(value["name"]), dict(value.get("params") or {}))
        raise DataError(f"cannot read scheme {value!r}: give a name or {{'name': ..., 'params': {{...}}}}")


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a trading environment besides the data."""

    window: int = 32  # bars of features per observation (20-60 recommended)
    episode_length: int = 720  # steps per training episode (random start); eval runs the whole span
    mode: Mode = "train"  # "train": random starts, fixed length; "eval": one continuous span
    initial_cash: float = 10_000.0  # quote currency at reset
    instruments: tuple[str, ...] | None = None  # subset of the panel, as 'exchange:SYMBOL'; None = all
    costs: CostConfig = field(default_factory=CostConfig)
    allow_short: bool = False  # may positions go below zero
    max_leverage: float = 1.0  # fills that grow a position keep gross exposure <= this * net worth
    action: SchemeSpec = field(default_factory=lambda: SchemeSpec("discrete"))  # see envs.actions
    reward: SchemeSpec = field(default_factory=lambda: SchemeSpec("log_return"))  # see envs.rewards
    sizing: SchemeSpec = field(default_factory=lambda: SchemeSpec("fixed"))  # see envs.sizing
    augmentations: tuple[SchemeSpec, ...] = ()  # training-mode episode transforms, see envs.augment
    min_net_worth: float = 0.0  # episode terminates when net worth falls to this fraction of initial cash

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", SchemeSpec.of(self.action))
        object.__setattr__(self, "reward", SchemeSpec.of(self.reward))
        object.__setattr__(self, "sizing", SchemeSpec.of(self.sizing))
        object.__setattr__(self, "augmentations", tuple(SchemeSpec.of(a) for a in self.augmentations))
        if self.instruments is not None:
            object.__setattr__(self, "instruments", tuple(self.instruments))
        self.validate()

    def validate(self) -> None:
        _check(isinstance(self.window, int) and self.window >= 1, f"window must be an int >= 1, got {self.window!r}")
        _check(isinstance(self.episode_length, int) and self.episode_length >= 1,
               f"episode_length must be an int >= 1, got {self.episode_length!r}")
        _check(self.mode in ("train", "eval"), f"mode must be 'train' or 'eval', got {self.mode!r}")
        _finite("initial_cash", self.initial_cash)
        _check(self.initial_cash > 0, f"initial_cash must be > 0, got {self.initial_cash}")
        _finite("max_leverage", self.max_leverage)
        _check(self.max_leverage >= 1.0, f"max_leverage must be >= 1 (1 = no borrowing), got {self.max_leverage}")
        _check(0.0 <= self.min_net_worth < 1.0, f"min_net_worth must be a fraction in [0, 1), got {self.min_net_worth}")
        _check(isinstance(self.costs, CostConfig), f"costs must be a CostConfig, got {type(self.costs).__name__}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvConfig:
        """Build from plain data (Hydra / RLlib env_config): nested dicts become the nested configs."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        _check(not unknown, f"EnvConfig: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("costs"), Mapping):
            values["costs"] = _costs_from_dict(values["costs"])
        if values.get("instruments") is not None:
            values["instruments"] = tuple(values["instruments"])
        values["augmentations"] = tuple(values.get("augmentations") or ())
        return cls(**values)


def _costs_from_dict(data: Mapping[str, Any]) -> CostConfig:
    known = {f.name for f in fields(CostConfig)}
    unknown = set(data) - known
    _check(not unknown, f"CostConfig: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
    values = dict(data)
    values["fees"] = {str(k): _fees_of(v) for k, v in dict(values.get("fees") or {}).items()}
    if "default_fees" in values:
        values["default_fees"] = _fees_of(values["default_fees"])
    return CostConfig(**values)


def _fees_of(value: FeeSchedule | Mapping[str, Any]) -> FeeSchedule:
    if isinstance(value, FeeSchedule):
        return value
    try:
        return FeeSchedule(**value)
    except TypeError as err:
        raise DataError(f"cannot read fee schedule {value!r}: use maker, taker, min_order_notional") from err
