"""What the actor trades, read from a training run: instruments, environment rules and features.

Only the run's JSON files are read (``env.json``, ``data.json``, ``features.json``,
``selection.json``); the network itself stays in the policy service.  The actor turns actions into
orders with the run's action scheme, sizing rule, costs and window, so a decision means in
trading exactly what it meant in the environment the agent was trained and backtested in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from envs import EnvConfig
from features.data.schema import BarKey, DataError
from features.pipeline import FeaturePipeline, FeatureSelection


@dataclass(frozen=True)
class TradingSpec:
    keys: tuple[BarKey, ...]
    env_config: EnvConfig
    pipeline: FeaturePipeline
    selection: FeatureSelection | None
    feature_names: tuple[str, ...]
    run: Path

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(k.instrument for k in self.keys)

    @property
    def timeframe(self) -> str:
        return self.keys[0].timeframe

    @classmethod
    def from_run(cls, path: str | Path) -> TradingSpec:
        """The run folder (``runs/<name>``) or any checkpoint inside it."""
        run = Path(path)
        if not (run / "data.json").exists() and (run.parent.parent / "data.json").exists():
            run = run.parent.parent  # a checkpoint folder: runs/<name>/checkpoints/<which>
        needed = [run / name for name in ("data.json", "env.json", "features.json")]
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise DataError(f"{run}: not a training run folder (missing {', '.join(missing)})")
        data = json.loads((run / "data.json").read_text())
        timeframe = str(data["timeframe"])
        keys = []
        for name in data["instruments"]:
            exchange, _, symbol = str(name).partition(":")
            if not symbol:
                raise DataError(f"{run / 'data.json'}: instrument {name!r} is not 'exchange:SYMBOL'")
            keys.append(BarKey(exchange, symbol, timeframe))
        selection_file = run / "selection.json"
        return cls(
            keys=tuple(keys),
            env_config=EnvConfig.from_dict(json.loads((run / "env.json").read_text())),
            pipeline=FeaturePipeline.load(run / "features.json"),
            selection=FeatureSelection.load(selection_file) if selection_file.exists() else None,
            feature_names=tuple(data["feature_names"]),
            run=run,
        )
