"""The search space in YAML, turned into Optuna distributions; a trial's values as Hydra overrides.

``tune.space`` mirrors the config tree: every mapping with a ``type`` is a searched setting, named
by its path (``algo.lr``); the ``name`` of a config group chooses the group's file::

    algo:
      name: {type: choice, values: [ppo, a2c]}        # -> algo=a2c: the group's defaults, then ...
      lr: {type: loguniform, low: 1.0e-5, high: 1.0e-3}   # -> algo.lr=0.00031
    model:
      hidden: {type: choice, values: [64, 128, 256, 512], repeat: 2}   # -> model.hidden=[256,256]

Types: ``uniform`` and ``loguniform`` (``low``, ``high``), ``int`` (``low``, ``high``, optional
``log``, ``step``), ``choice`` (``values``: numbers, strings, booleans or null).  ``repeat: n``
turns a sampled width into a list of ``n`` equal widths, because Optuna's categorical choices
must be scalars.  The nesting keeps every entry reachable from the command line
(``tune.space.algo.lr.high=1e-2``, ``~tune.space.model.dropout``).  Whatever the command line sets
is pinned, not searched: ``algo=a2c`` drops ``algo.name``, ``algo.lr=1e-4`` drops ``algo.lr``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from features.data.schema import DataError
from rl.train_cli import CONFIGS
from tune.config import SearcherConfig

KINDS = ("uniform", "loguniform", "int", "choice")
KEYS = {"type", "low", "high", "values", "log", "step", "repeat"}
GROUPS = frozenset(p.name for p in CONFIGS.iterdir() if p.is_dir() and p.name != "tune")


@dataclass(frozen=True)
class Parameter:
    """One searched setting: its Hydra name, its distribution and how its value becomes an override."""

    name: str
    distribution: BaseDistribution
    repeat: int | None = None

    @property
    def group(self) -> str | None:
        """The config group this parameter chooses (``algo.name`` -> ``algo``), or None for a value."""
        head, _, tail = self.name.partition(".")
        return head if tail == "name" and head in GROUPS else None

    def value(self, sampled: Any) -> Any:
        """The value the config receives (a list of equal widths when ``repeat`` is set)."""
        return [sampled] * self.repeat if self.repeat else sampled

    def override(self, sampled: Any) -> str:
        """``algo=a2c`` for a group; ``++algo.lr=...`` for a value: set even where the chosen group's file
        leaves the field to its dataclass default (a2c.yaml has no ``minibatch_size``)."""
        if self.group:
            return f"{self.group}={format_value(sampled)}"
        return f"++{self.name}={format_value(self.value(sampled))}"


def format_value(value: Any) -> str:
    """A Python value in Hydra's override grammar (JSON is a subset for numbers, lists, null, booleans)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def _distribution(name: str, spec: Mapping[str, Any]) -> BaseDistribution:
    kind = spec.get("type")
    if kind not in KINDS:
        raise DataError(f"tune.space.{name}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "choice":
        values = list(spec.get("values") or [])
        if not values or any(isinstance(v, list | dict) for v in values):
            raise DataError(f"tune.space.{name}: a choice needs a non-empty list of scalar values, "
                            f"got {values!r}")
        return CategoricalDistribution(values)
    if "low" not in spec or "high" not in spec:
        raise DataError(f"tune.space.{name}: {kind} needs low and high")
    low, high = spec["low"], spec["high"]
    if not low < high:
        raise DataError(f"tune.space.{name}: low must be below high, got {low} and {high}")
    if kind == "int":
        return IntDistribution(int(low), int(high), log=bool(spec.get("log", False)),
                               step=int(spec.get("step", 1)))
    if kind == "loguniform" and low <= 0:
        raise DataError(f"tune.space.{name}: loguniform needs low > 0, got {low}")
    return FloatDistribution(float(low), float(high), log=kind == "loguniform")


def _entries(spec: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted name, entry) of every mapping with a ``type`` under ``spec``; null entries are skipped."""
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise DataError(f"tune.space.{name}: expected a mapping (an entry with a type, or settings under "
                            f"it), got {value!r}")
        if "type" in value:
            yield name, value
        else:
            yield from _entries(value, f"{name}.")


def parse_space(spec: Mapping[str, Any]) -> dict[str, Parameter]:
    """The ``tune.space`` tree as parameters named by their dotted path, in the order given."""
    params = {}
    for name, entry in _entries(spec):
        unknown = sorted(set(entry) - KEYS)
        if unknown:
            raise DataError(f"tune.space.{name}: unknown key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(KEYS))}")
        repeat = entry.get("repeat")
        if repeat is not None and (not isinstance(repeat, int) or repeat < 1):
            raise DataError(f"tune.space.{name}: repeat must be an int >= 1, got {repeat!r}")
        params[name] = Parameter(name, _distribution(name, entry), repeat)
    if not params:
        raise DataError("tune.space is empty: name at least one setting to search")
    return params


def pinned_keys(overrides: Iterable[str]) -> set[str]:
    """What the command line sets: config groups (``algo``) and values (``algo.lr``)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}


def searched(params: Mapping[str, Parameter], overrides: Iterable[str]) -> dict[str, Parameter]:
    """The parameters left to search once the command line has pinned what it sets."""
    pinned = pinned_keys(overrides)
    left = {name: p for name, p in params.items() if name not in pinned and p.group not in pinned}
    if not left:
        raise DataError("every entry of tune.space is pinned on the command line: nothing left to search")
    return left


def optuna_space(params: Mapping[str, Parameter]) -> dict[str, BaseDistribution]:
    """The define-and-run space for ``OptunaSearch(space=...)``."""
    return {name: p.distribution for name, p in params.items()}


def trial_overrides(values: Mapping[str, Any], params: Mapping[str, Parameter]) -> list[str]:
    """Hydra overrides for a trial: group choices first (they reset their group), then values."""
    missing = sorted(set(params) - set(values))
    if missing:
        raise DataError(f"trial config lacks searched parameter(s) {', '.join(missing)}")
    groups = [params[n].override(values[n]) for n in params if params[n].group]
    settings = [params[n].override(values[n]) for n in params if not params[n].group]
    return groups + settings


def make_sampler(config: SearcherConfig) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler (TPE by default)."""
    startup = config.n_startup_trials
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "qmc":
        with warnings.catch_warnings():  # "experimental" since Optuna 3.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=config.seed, scramble=True,
                                              warn_independent_sampling=False)
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=startup)
    if config.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError as err:
            raise DataError("tune.searcher.sampler=cmaes needs the `cmaes` package "
                            "(pip install cmaes)") from err
        # CMA-ES samples floats and ints; choices fall back to the independent (TPE) sampler.
        return optuna.samplers.CmaEsSampler(
            seed=config.seed, n_startup_trials=startup, warn_independent_sampling=False,
            independent_sampler=optuna.samplers.TPESampler(seed=config.seed))
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup)
