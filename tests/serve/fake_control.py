"""A TradingControl for tests: fixed figures, and the real kill-switch state machine behind the commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from serve.commands import ControlResult, PnlReport, PositionReport, StatusReport
from serve.execution.risk import KillMode, KillSwitch


class FakeControl:
    def __init__(self) -> None:
        self.switch = KillSwitch()
        self.calls: list[str] = []

    def status(self) -> StatusReport:
        self.calls.append("status")
        return StatusReport(
            self.switch.state.value,
            "paper",
            10_250.5,
            2,
            ("binance:BTC/USDT",),
            datetime(2024, 3, 1, 12, tzinfo=UTC),
        )

    def positions(self) -> Sequence[PositionReport]:
        self.calls.append("positions")
        return [
            PositionReport("binance:BTC/USDT", 0.5, 40_000.0, 42_000.0),
            PositionReport("binance:ETH/USDT", 0.0, 0.0, 2_000.0),
        ]

    def pnl(self) -> PnlReport:
        self.calls.append("pnl")
        return PnlReport(
            equity=10_250.5,
            day_start_equity=10_000.0,
            initial_equity=9_000.0,
            realized_pnl=300.0,
            unrealized_pnl=1_000.0,
            fees=12.25,
        )

    def pause(self) -> ControlResult:
        self.calls.append("pause")
        change = self.switch.pause()
        return ControlResult(
            change is not None, self.switch.state.value, "paused" if change else "not running"
        )

    def resume(self) -> ControlResult:
        self.calls.append("resume")
        change = self.switch.resume()
        return ControlResult(
            change is not None, self.switch.state.value, "resumed" if change else "nothing to resume"
        )

    def kill_switch(self, mode: KillMode) -> ControlResult:
        self.calls.append(f"kill:{mode.value}")
        self.switch.kill(mode)
        return ControlResult(True, self.switch.state.value, f"kill switch: {mode.value}")
