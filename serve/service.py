"""One ensemble variant as a plain object: requests in, decisions (or named errors) out.

:class:`EnsembleService` is what a Ray Serve replica hosts and what tests call directly.  It
loads the members, builds each member's observation from the request (bars through the run's
feature pipeline, or a ready vector), asks the ensemble, applies the fallback, keeps the
stream's paper account and answers with plain JSON-safe dicts.  It never raises for a bad
request: a :class:`~features.data.schema.DataError` becomes ``{"ok": False, "status": 422}``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from envs import EnvConfig
from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, TIMESTAMP_DTYPE, DataError
from serve.config import EnsembleConfig
from serve.ensemble import Ensemble, EnsembleDecision, StreamMemory, sharpe_weights
from serve.members import BaselineFallback, LoadedMember, load_member
from serve.observations import MarketInput, PortfolioState
from serve.paper import PaperAccount

log = logging.getLogger(__name__)
Loader = Callable[..., LoadedMember]


class Unavailable(RuntimeError):
    """No member answered and no fallback could: the request may be retried (503)."""


def member_weights(config: EnsembleConfig, loaded: Sequence[LoadedMember]) -> list[float]:
    """Explicit member weights where given, the others from the weighting rule, on one scale: an average
    member weighs 1 (so ``weight: 3`` counts three times an average member)."""
    n = len(loaded)
    base = (
        [w * n for w in sharpe_weights([m.sharpe for m in loaded])]
        if config.weighting == "sharpe"
        else [1.0] * n
    )
    return [m.weight if m.weight is not None else b for m, b in zip(config.members, base, strict=True)]


def bars_frame(columns: Mapping[str, Sequence[Any]]) -> pl.DataFrame:
    """A bar frame from columns: ``timestamp`` in epoch microseconds (UTC bar open), float OHLCV."""
    frame = pl.DataFrame(
        {
            TIMESTAMP: pl.Series(columns[TIMESTAMP], dtype=pl.Int64),
            **{c: pl.Series(columns[c], dtype=pl.Float64) for c in OHLCV_COLUMNS},
        }
    )
    return frame.with_columns(
        pl.col(TIMESTAMP).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(TIMESTAMP_DTYPE)
    )


def portfolio_state(raw: Mapping[str, Any] | None) -> PortfolioState:
    fields = {f.name for f in dataclasses.fields(PortfolioState)}
    unknown = sorted(set(raw or {}) - fields)
    if unknown:
        raise DataError(
            f"portfolio: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    return PortfolioState(**dict(raw or {}))


class EnsembleService:
    """A named ensemble answering decide / reset / describe; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: EnsembleConfig,
        *,
        role: str = "live",
        tracking_uri: str | None = None,
        onnx_dir: Path | None = None,
        loader: Loader = load_member,
    ) -> None:
        self.name, self.config, self.role = name, config, role
        self.loaded = [
            loader(
                m,
                config.runtime,
                max_streams=config.max_streams,
                tracking_uri=tracking_uri,
                onnx_dir=onnx_dir,
            )
            for m in config.members
        ]
        self.weights = member_weights(config, self.loaded)
        self.ensemble = Ensemble([m.member for m in self.loaded], config.rule, self.weights)
        self.inputs = {m.member.name: m.inputs for m in self.loaded}
        self.groups = {spec.key: spec for spec in self.inputs.values()}
        self.primary = self.loaded[
            0
        ].inputs  # instruments, scheme and closes of the paper account and fallback
        fb = config.fallback
        self.fallback = (
            BaselineFallback(fb.baseline, fb.params, self.primary.action_scheme, self.ensemble.spec)
            if fb.baseline
            else None
        )
        self.steps: StreamMemory[list[int]] = StreamMemory(config.max_streams, lambda: [0])
        self.papers: StreamMemory[PaperAccount] = StreamMemory(config.max_streams, self._paper)

    def _paper(self) -> PaperAccount:
        costs = EnvConfig.from_dict(self.primary.bundle.env_settings).costs
        fees = [costs.fees_for(name.split(":", 1)[0]).taker for name in self.primary.instruments]
        return PaperAccount(self.primary.action_scheme, len(self.primary.instruments), fees)

    # -- requests -------------------------------------------------------------------------------------

    def decide(self, stream: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """``request``: ``bars`` ({instrument: columns}) or ``observation`` (list), and ``portfolio``."""
        started = time.perf_counter()
        try:
            answer = self._decide(stream, request)
        except DataError as err:
            return {"ok": False, "status": 422, "error": str(err)}
        except Unavailable as err:
            return {"ok": False, "status": 503, "error": str(err)}
        except Exception as err:  # never let a request take the replica down
            log.exception("ensemble %s failed on stream %s", self.name, stream)
            return {"ok": False, "status": 500, "error": f"internal error: {type(err).__name__}: {err}"}
        answer["service_ms"] = (time.perf_counter() - started) * 1e3
        return answer

    def _decide(self, stream: str, request: Mapping[str, Any]) -> dict[str, Any]:
        portfolio = portfolio_state(request.get("portfolio"))
        market: MarketInput | None = None
        if request.get("bars") is not None:
            frames = {name: bars_frame(columns) for name, columns in request["bars"].items()}
            markets = {key: spec.from_bars(frames, portfolio) for key, spec in self.groups.items()}
            observations = {name: markets[spec.key].observation for name, spec in self.inputs.items()}
            market = markets[self.primary.key]
        elif request.get("observation") is not None:
            if len(self.groups) > 1:
                raise DataError(
                    f"this ensemble's members read {len(self.groups)} different observations; send bars"
                )
            obs = self.primary.from_vector(request["observation"])
            observations = dict.fromkeys(self.inputs, obs)
        else:
            raise DataError("a decision needs 'bars' or 'observation'")
        decision = self.ensemble.decide(observations, stream)
        counter = self.steps.get(stream)
        counter[0] += 1
        action, fallback = self._apply_fallback(decision, market, portfolio)
        paper = self._book(stream, market, action)
        return {
            "ok": True,
            "variant": self.name,
            "role": self.role,
            "stream_id": stream,
            "action": action,
            "disagreement": decision.disagreement,
            "fallback": fallback,
            "members": [dataclasses.asdict(m) for m in decision.members],
            "versions": {m.member: m.version for m in decision.members},
            "bar_time": None if market is None else market.timestamp.isoformat(),
            "memory_steps": counter[0],
            "warnings": [] if market is None else market.warnings,
            "paper": paper,
        }

    def _apply_fallback(
        self,
        decision: EnsembleDecision,
        market: MarketInput | None,
        portfolio: PortfolioState,
    ) -> tuple[Any, dict[str, Any] | None]:
        limit = self.config.fallback.max_disagreement
        if decision.action is None:
            reason = "no member answered: " + "; ".join(f"{m.member}: {m.error}" for m in decision.members)
        elif limit is not None and decision.disagreement > limit:
            reason = f"disagreement {decision.disagreement:.3f} above {limit}"
        else:
            return decision.action, None
        if self.fallback is None or market is None:
            if decision.action is None:
                raise Unavailable(reason)
            return decision.action, {"baseline": None, "reason": reason + " (no fallback for this request)"}
        weights = portfolio.vector(self.primary.instruments, self.primary.window)[
            : len(self.primary.instruments)
        ]
        action = self.fallback.act(market.bars, weights.astype(np.float64))
        return action, {"baseline": self.fallback.name, "reason": reason}

    def _book(self, stream: str, market: MarketInput | None, action: Any) -> dict[str, float] | None:
        if market is None:
            return None
        account = self.papers.get(stream)
        step = account.update(market.timestamp, market.closes, action)
        if step is None:
            return None
        return {"step_log_return": step, "log_return": account.log_return, "steps": float(account.steps)}

    def reset(self, stream: str) -> dict[str, Any]:
        """Forget the stream's recurrent memory, step count and paper account."""
        self.ensemble.reset(stream)
        known = self.steps.pop(stream)
        self.papers.pop(stream)
        return {"ok": True, "variant": self.name, "stream_id": stream, "had_memory": known}

    def describe(self) -> dict[str, Any]:
        members = [
            {
                "name": m.member.name,
                "version": m.member.version,
                "source": m.source,
                "checkpoint": str(m.checkpoint),
                "runtime": m.member.runtime,
                "recurrent": m.member.recurrent,
                "weight": float(w),
                "validation_sharpe": m.sharpe,
                "inputs": m.inputs.key,
            }
            for m, w in zip(self.loaded, self.ensemble.weights, strict=True)
        ]
        return {
            "variant": self.name,
            "role": self.role,
            "rule": self.config.rule,
            "weighting": self.config.weighting,
            "runtime": self.config.runtime,
            "action": dataclasses.asdict(self.ensemble.spec),
            "members": members,
            "inputs": {key: spec.describe() for key, spec in self.groups.items()},
            "fallback": None
            if self.fallback is None
            else {"baseline": self.fallback.name, "max_disagreement": self.config.fallback.max_disagreement},
        }
