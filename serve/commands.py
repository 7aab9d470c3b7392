"""The one transport-neutral command layer: operator commands, authorization, plain replies.

The execution actor implements :class:`TradingControl`; :class:`CommandHandler`
parses a command, checks the caller against an authorizer, calls the control
and returns a :class:`CommandReply` with both a plain text (for chat) and
JSON-safe data (for REST).  Transports (the Telegram adapter in
:mod:`serve.notify.telegram_bot`, a REST adapter later) only translate their
own requests into :meth:`CommandHandler.handle` calls; nothing here knows
about them.

Every command is logged with its caller; refused ones at WARNING.  The
handler never raises: a failing control becomes an error reply.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from serve.execution.risk import KillMode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who sent a command: the transport and its identity there (chat id, API key name)."""

    transport: str
    identity: str
    name: str = ""  # display name, for the audit log only

    def __str__(self) -> str:
        return f"{self.transport}:{self.identity}" + (f" ({self.name})" if self.name else "")


Authorizer = Callable[[Caller], bool]


class Allowlist:
    """Authorizes callers whose identity is listed (optionally only on one transport)."""

    def __init__(self, identities: Iterable[str | int], transport: str | None = None) -> None:
        self.identities = frozenset(str(i) for i in identities)
        self.transport = transport

    def __call__(self, caller: Caller) -> bool:
        return (
            self.transport is None or caller.transport == self.transport
        ) and caller.identity in self.identities


@dataclass(frozen=True)
class StatusReport:
    state: str  # running, paused, flattening, frozen
    mode: str  # paper or live
    equity: float
    open_orders: int
    instruments: tuple[str, ...] = ()
    last_bar: datetime | None = None  # open time of the last processed bar
    started: datetime | None = None


@dataclass(frozen=True)
class PositionReport:
    instrument: str
    quantity: float
    average_price: float
    mark_price: float

    @property
    def unrealized_pnl(self) -> float:
        return self.quantity * (self.mark_price - self.average_price)


@dataclass(frozen=True)
class PnlReport:
    equity: float
    day_start_equity: float  # first equity of the UTC day
    initial_equity: float  # equity when the run started
    realized_pnl: float
    unrealized_pnl: float
    fees: float

    @property
    def day_pnl(self) -> float:
        return self.equity - self.day_start_equity

    @property
    def total_pnl(self) -> float:
        return self.equity - self.initial_equity


@dataclass(frozen=True)
class ControlResult:
    ok: bool
    state: str  # trading state after the command
    message: str


class TradingControl(Protocol):
    """What an operator may ask of the running trader; the execution actor implements it."""

    def status(self) -> StatusReport: ...

    def positions(self) -> Sequence[PositionReport]: ...

    def pnl(self) -> PnlReport: ...

    def pause(self) -> ControlResult: ...

    def resume(self) -> ControlResult: ...

    def kill_switch(self, mode: KillMode) -> ControlResult: ...


@dataclass(frozen=True)
class CommandReply:
    command: str
    authorized: bool
    ok: bool
    text: str  # plain text for chat transports
    data: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe, for REST


@dataclass(frozen=True)
class CommandRecord:
    """An audit entry: who asked what and how it ended."""

    caller: Caller
    command: str
    args: tuple[str, ...]
    authorized: bool
    ok: bool


def parse_command(text: str) -> tuple[str, list[str]]:
    """'/killswitch@mft_bot flatten' -> ('killswitch', ['flatten']); names are lower-cased."""
    words = text.strip().split()
    if not words:
        return "", []
    name = words[0].lstrip("/").split("@", 1)[0].lower()
    return name, words[1:]


class CommandHandler:
    """Parses, authorizes and executes operator commands against a :class:`TradingControl`."""

    def __init__(
        self,
        control: TradingControl,
        authorize: Authorizer,
        audit: Callable[[CommandRecord], None] | None = None,
    ) -> None:
        self.control = control
        self.authorize = authorize
        self.audit = audit
        self._commands: dict[str, tuple[Callable[[list[str]], CommandReply], str]] = {
            "status": (self._status, "trading state, equity and open orders"),
            "positions": (self._positions, "open positions with their unrealised PnL"),
            "pnl": (self._pnl, "profit and loss today and since the start"),
            "pause": (self._pause, "stop placing orders until /resume"),
            "resume": (self._resume, "resume trading after /pause or a freeze"),
            "killswitch": (self._kill, "/killswitch flatten (close everything, then freeze) or freeze"),
            "help": (self._help, "this list"),
        }

    @property
    def commands(self) -> list[tuple[str, str]]:
        """(name, description) of every command, e.g. for Telegram's command menu."""
        return [(name, description) for name, (_, description) in self._commands.items()]

    def handle_text(self, text: str, caller: Caller) -> CommandReply:
        name, args = parse_command(text)
        return self.handle(name, args, caller)

    def handle(self, command: str, args: Sequence[str], caller: Caller) -> CommandReply:
        """Run one command for ``caller``; refused commands are logged and get an unauthorized reply."""
        name, arguments = command.lstrip("/").lower(), list(args)
        if not self.authorize(caller):
            log.warning("refused command /%s from %s: caller not allowlisted", name, caller)
            reply = CommandReply(name, False, False, "not authorized")
        elif name not in self._commands:
            log.warning("refused unknown command /%s from %s", name, caller)
            reply = CommandReply(name, True, False, f"unknown command /{name}; try /help")
        else:
            log.info("command /%s %s from %s", name, " ".join(arguments), caller)
            reply = self._run(name, arguments)
        if self.audit is not None:
            self.audit(CommandRecord(caller, name, tuple(arguments), reply.authorized, reply.ok))
        return reply

    def _run(self, name: str, args: list[str]) -> CommandReply:
        method, _ = self._commands[name]
        try:
            return method(args)
        except Exception as err:  # the control failed: tell the operator, keep the transport alive
            log.exception("command /%s failed", name)
            return CommandReply(name, True, False, f"/{name} failed: {type(err).__name__}: {err}")

    def _status(self, _: list[str]) -> CommandReply:
        report = self.control.status()
        lines = [
            f"state: {report.state} ({report.mode})",
            f"equity: {report.equity:,.2f}",
            f"open orders: {report.open_orders}",
        ]
        if report.instruments:
            lines.append(f"instruments: {', '.join(report.instruments)}")
        if report.last_bar is not None:
            lines.append(f"last bar: {report.last_bar:%Y-%m-%d %H:%M} UTC")
        return CommandReply("status", True, True, "\n".join(lines), _jsonable(report))

    def _positions(self, _: list[str]) -> CommandReply:
        positions = [p for p in self.control.positions() if p.quantity != 0]
        if not positions:
            return CommandReply("positions", True, True, "no open positions", {"positions": []})
        lines = [
            f"{p.instrument}: {p.quantity:+g} @ {p.average_price:,.2f}, mark {p.mark_price:,.2f}, "
            f"uPnL {p.unrealized_pnl:+,.2f}"
            for p in positions
        ]
        data = {"positions": [{**_jsonable(p), "unrealized_pnl": p.unrealized_pnl} for p in positions]}
        return CommandReply("positions", True, True, "\n".join(lines), data)

    def _pnl(self, _: list[str]) -> CommandReply:
        r = self.control.pnl()
        text = "\n".join(
            [
                f"equity: {r.equity:,.2f}",
                f"today: {r.day_pnl:+,.2f}",
                f"since start: {r.total_pnl:+,.2f}",
                f"realised: {r.realized_pnl:+,.2f}",
                f"unrealised: {r.unrealized_pnl:+,.2f}",
                f"fees: {r.fees:,.2f}",
            ]
        )
        return CommandReply(
            "pnl", True, True, text, {**_jsonable(r), "day_pnl": r.day_pnl, "total_pnl": r.total_pnl}
        )

    def _pause(self, _: list[str]) -> CommandReply:
        return _control_reply("pause", self.control.pause())

    def _resume(self, _: list[str]) -> CommandReply:
        return _control_reply("resume", self.control.resume())

    def _kill(self, args: list[str]) -> CommandReply:
        modes = [m.value for m in KillMode]
        if len(args) != 1 or args[0].lower() not in modes:
            return CommandReply("killswitch", True, False, f"usage: /killswitch {' | '.join(modes)}")
        return _control_reply("killswitch", self.control.kill_switch(KillMode(args[0].lower())))

    def _help(self, _: list[str]) -> CommandReply:
        text = "\n".join(f"/{name}: {description}" for name, description in self.commands)
        return CommandReply("help", True, True, text, {"commands": dict(self.commands)})


def _control_reply(name: str, result: ControlResult) -> CommandReply:
    return CommandReply(name, True, result.ok, f"{result.message} (state: {result.state})", _jsonable(result))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
