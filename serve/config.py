"""Configuration of the policy service (files in ``configs/serve/``).

One service hosts one or more named *ensembles* (variants).  Trading streams are split between
the variants in ``routing.split`` by a hash of their stream id, so a stream always meets the
same variant; ``routing.shadow`` names a variant that decides on every request too, without its
decisions being returned or acted on.  Every field is documented below and in docs/serving.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from features.configio import CONFIG_ROOT, from_dict, read_yaml
from features.data.schema import DataError
from serve.http_proxy import check_kind as check_http_proxy

SERVE_CONFIGS = CONFIG_ROOT / "serve"
Rule = Literal["vote", "mean_probs"]
Weighting = Literal["equal", "sharpe"]
Runtime = Literal["torch", "onnx"]


@dataclass(frozen=True)
class MemberConfig:
    """One trained policy: a run folder or checkpoint path, or an MLflow registered model version."""

    source: (
        str  # runs/<name>, runs/<name>/checkpoints/iter_N, models:/<name>/<version> or models:/<name>@alias
    )
    name: str | None = None  # label in responses and metrics (default: the run folder's name)
    weight: float | None = None  # explicit weight (an average member weighs 1); overrides the weighting
    runtime: Runtime | None = None  # torch or onnx; default: the ensemble's

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise DataError(
                "member source is empty: give a run folder, a checkpoint or models:/<name>/<version>"
            )
        if self.weight is not None and not self.weight >= 0:
            raise DataError(f"member {self.source}: weight must be >= 0, got {self.weight}")


@dataclass(frozen=True)
class FallbackConfig:
    """A rule-based baseline that answers when the members cannot (bars requests only)."""

    baseline: str | None = (
        None  # a name from rl.baselines (rule based: ma_crossover, donchian, ...); null: none
    )
    params: dict[str, Any] = field(default_factory=dict)
    max_disagreement: float | None = None  # also fall back when member disagreement exceeds this (0..1)

    def __post_init__(self) -> None:
        if self.max_disagreement is not None and not 0.0 <= self.max_disagreement <= 1.0:
            raise DataError(f"fallback.max_disagreement must be in [0, 1], got {self.max_disagreement}")


@dataclass(frozen=True)
class AutoscalingSettings:
    """Ray Serve autoscaling of one deployment (replaces a fixed replica count when given)."""

    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise DataError(
                f"autoscaling needs 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                f"{self.min_replicas}..{self.max_replicas}"
            )


@dataclass(frozen=True)
class ScalingConfig:
    """Replicas and resources of one Ray Serve deployment."""

    num_replicas: int = 1
    autoscaling: AutoscalingSettings | None = None
    num_cpus: float = 0.0  # Ray CPUs reserved per replica (0: share the machine; inference is light)
    max_ongoing_requests: int = 16
    health_check_period_s: float = 2.0
    health_check_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.num_replicas < 1 or self.num_cpus < 0 or self.max_ongoing_requests < 1:
            raise DataError(
                f"scaling needs num_replicas >= 1, num_cpus >= 0 and max_ongoing_requests >= 1, got "
                f"{self.num_replicas}, {self.num_cpus}, {self.max_ongoing_requests}"
            )

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Deployment.options``."""
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
        }
        if self.autoscaling is None:
            options["num_replicas"] = self.num_replicas
        else:
            a = self.autoscaling
            options["autoscaling_config"] = {
                "min_replicas": a.min_replicas,
                "max_replicas": a.max_replicas,
                "initial_replicas": max(a.min_replicas, 1),
                "target_ongoing_requests": a.target_ongoing_requests,
                "upscale_delay_s": a.upscale_delay_s,
                "downscale_delay_s": a.downscale_delay_s,
            }
        return options


@dataclass(frozen=True)
class EnsembleConfig:
    """Members, how they are combined, the fallback, and the deployment's scaling."""

    members: tuple[MemberConfig, ...]
    rule: Rule = "vote"  # vote: weighted majority; mean_probs: argmax of the weighted mean probabilities
    weighting: Weighting = "equal"  # equal, or by each run's best validation Sharpe (negative counts as 0)
    runtime: Runtime = "torch"
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    max_streams: int = 10_000  # recurrent memories kept per replica; the least recently used is dropped

    def __post_init__(self) -> None:
        if not self.members:
            raise DataError("an ensemble needs at least one member")
        names = [m.name for m in self.members if m.name]
        if len(names) != len(set(names)):
            raise DataError(f"member names must be unique, got {names}")


@dataclass(frozen=True)
class RoutingConfig:
    """A/B split of trading streams between ensembles, and an optional shadow ensemble."""

    split: dict[str, float] = field(default_factory=lambda: {"main": 1.0})  # share of streams per ensemble
    shadow: str | None = None  # an ensemble deciding on every request, never acted on

    def __post_init__(self) -> None:
        if not self.split or any(not share >= 0 for share in self.split.values()):
            raise DataError(f"routing.split needs non-negative shares, got {self.split}")
        if abs(sum(self.split.values()) - 1.0) > 1e-9:
            raise DataError(f"routing.split shares must sum to 1, got {sum(self.split.values())}")
        if self.shadow is not None and self.shadow in self.split:
            raise DataError(f"routing.shadow {self.shadow!r} also takes live traffic in routing.split")


@dataclass(frozen=True)
class CommandsConfig:
    """The REST adapter of the operator command layer (serve.commands)."""

    control: str | None = None  # 'module:factory' returning a TradingControl; null: no /v1/commands routes
    allow: tuple[str, ...] = ()  # API key names allowed to command
    keys_env: str = "MFT_API_KEYS"  # environment variable holding 'name:key,name:key'


@dataclass(frozen=True)
class ServeConfig:
    """The whole service."""

    ensembles: dict[str, EnsembleConfig]
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    host: str = "127.0.0.1"  # loopback unless deliberately exposed
    port: int = 8000
    app_name: str = "mft"
    route_prefix: str = "/"
    ingress: ScalingConfig = field(default_factory=ScalingConfig)
    request_timeout_s: float = 10.0  # an ensemble that does not answer in time gives a 503
    mlflow_tracking_uri: str | None = None  # for models:/ sources; default MLFLOW_TRACKING_URI
    decision_log: str | None = None  # JSONL file of every live and shadow decision (would-be performance)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    access_log: bool = False  # Ray Serve's per-request access log lines (proxy and replicas); metrics count anyway
    # Serve's HTTP front door when this process starts Ray: haproxy (C, straight to the replica's own HTTP
    # server), python (Serve's proxy actor) or auto (haproxy where ray[serve] bundles it: Linux). A Ray
    # joined by address keeps its own. See serve/http_proxy.py.
    http_proxy: str = "auto"
    fuse: bool = (
        True  # a lone stateless ensemble (no A/B, no shadow) runs inside the HTTP replicas: one hop less
    )

    def __post_init__(self) -> None:
        unknown = sorted(set(self.routing.split) - set(self.ensembles))
        if unknown:
            raise DataError(
                f"routing.split names unknown ensemble(s) {unknown}; defined: {sorted(self.ensembles)}"
            )
        if self.routing.shadow is not None and self.routing.shadow not in self.ensembles:
            raise DataError(
                f"routing.shadow names unknown ensemble {self.routing.shadow!r}; defined: "
                f"{sorted(self.ensembles)}"
            )
        if not 0 < self.port < 65536:
            raise DataError(f"port must be 1..65535, got {self.port}")
        check_http_proxy(self.http_proxy)

    @property
    def active(self) -> list[str]:
        """Ensembles that get deployed: those taking traffic and the shadow."""
        names = [name for name, share in self.routing.split.items() if share > 0]
        return names + ([self.routing.shadow] if self.routing.shadow else [])

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> ServeConfig:
        return from_dict(cls, values or {}, "serve")

    @classmethod
    def load(cls, spec: str | Path = "default", overrides: dict[str, Any] | None = None) -> ServeConfig:
        """A file by path or by name in configs/serve/, with top-level keys replaced by ``overrides``."""
        return cls.from_dict({**read_yaml(spec, SERVE_CONFIGS, "serve"), **(overrides or {})})


def members_from_sweep_export(path: str | Path) -> tuple[MemberConfig, ...]:
    """The members of an ensemble spec written by ``mft tune export`` (``rule: sharpe_weighted``).

    Each member's weight is its trial's validation Sharpe ratio; a negative Sharpe gets weight 0
    (the member still answers and shows in the disagreement, but does not vote).  When no member
    has a positive Sharpe, all weigh the same.
    """
    spec = read_yaml(path, SERVE_CONFIGS, "ensemble spec")
    rows = spec.get("members") if isinstance(spec, dict) else None
    if not rows or not isinstance(rows, list):
        raise DataError(f"{path}: an ensemble spec needs a non-empty 'members' list (from mft tune export)")
    missing = [i for i, row in enumerate(rows) if not isinstance(row, dict) or not row.get("checkpoint")]
    if missing:
        raise DataError(f"{path}: member(s) at position {missing} have no 'checkpoint'")
    sharpes = [float(row.get("weight") or 0.0) for row in rows]
    positive = any(w > 0 for w in sharpes)
    return tuple(MemberConfig(str(row["checkpoint"]), name=row.get("name"), weight=max(w, 0.0) if positive else 1.0)
                 for row, w in zip(rows, sharpes, strict=True))

