"""The HTTP API's typed requests and responses (pydantic; FastAPI serves them as OpenAPI at /docs).

Every number must be finite (``NaN`` and ``Infinity`` literals are refused, naming the field),
unknown fields are refused, and a decision request carries exactly one of ``bars`` or
``observation``.  Checks that need the models (known instruments, enough bars, observation
length) are made by the ensemble and come back as 422 answers naming the problem too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    Tag,
    field_validator,
    model_validator,
)

STREAM_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@/\-]{0,127}$"
MAX_BARS = 20_000  # per instrument and request
MAX_OBSERVATION = 1_000_000
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

Action = int | list[int] | list[float]


class Bar(BaseModel):
    """One closed bar; ``timestamp`` is its open time (ISO 8601; without a zone it is read as UTC)."""

    model_config = STRICT
    timestamp: datetime
    open: float = Field(gt=0)
    high: float = Field(gt=0)
    low: float = Field(gt=0)
    close: float = Field(gt=0)
    volume: float = Field(ge=0)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class BarColumns(BaseModel):
    """The same bars as columns (cheaper to send and parse): equal-length lists, oldest first."""

    model_config = STRICT
    timestamp: list[datetime] = Field(min_length=1, max_length=MAX_BARS)
    open: list[PositiveFloat]
    high: list[PositiveFloat]
    low: list[PositiveFloat]
    close: list[PositiveFloat]
    volume: list[NonNegativeFloat]

    @model_validator(mode="after")
    def _same_length(self) -> BarColumns:
        lengths = {name: len(getattr(self, name)) for name in ("open", "high", "low", "close", "volume")}
        wrong = {name: n for name, n in lengths.items() if n != len(self.timestamp)}
        if wrong:
            raise ValueError(f"{len(self.timestamp)} timestamps but {wrong} values")
        return self

    def columns(self) -> dict[str, list[Any]]:
        return {
            "timestamp": [_micros(t) for t in self.timestamp],
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }


def _micros(moment: datetime) -> int:
    """Epoch microseconds, exactly; a moment without a zone is UTC."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return (moment - EPOCH) // MICROSECOND


ROWS, COLUMNS = "bar-list", "bar-columns"  # tags of the two bar formats (left out of error locations)


def _bar_format(value: Any) -> str:
    return ROWS if isinstance(value, list) else COLUMNS


BarsInput = Annotated[
    Annotated[list[Bar], Tag(ROWS)] | Annotated[BarColumns, Tag(COLUMNS)], Discriminator(_bar_format)
]


class Portfolio(BaseModel):
    """The account the decision is for; the default is flat: all cash, nothing held."""

    model_config = STRICT
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="signed position value / net worth, by instrument ('exchange:SYMBOL')",
    )
    cash_share: float | None = Field(None, description="cash / net worth; default 1 - sum(weights)")
    unrealised_pnl: dict[str, float] = Field(
        default_factory=dict, description="by instrument, share of net worth"
    )
    bars_since_trade: int = Field(
        0, ge=0, description="bars since the last fill (0: just traded or just started)"
    )


class DecisionRequest(BaseModel):
    """The latest bars per instrument (oldest first) or a ready observation, for one trading stream."""

    model_config = STRICT
    stream_id: str = Field(
        pattern=STREAM_ID,
        description="the trading stream; recurrent memory and the A/B variant are kept per stream",
    )
    bars: dict[str, BarsInput] | None = Field(
        None,
        description="instrument ('exchange:SYMBOL') -> bars, oldest first, as a list of bars or as columns; "
        "at least min_bars (see /v1/model-info)",
    )
    observation: list[float] | None = Field(
        None,
        min_length=1,
        max_length=MAX_OBSERVATION,
        description="a ready observation in the environment's layout",
    )
    portfolio: Portfolio = Field(default_factory=Portfolio)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _one_input(self) -> DecisionRequest:
        if (self.bars is None) == (self.observation is None):
            raise ValueError("give exactly one of 'bars' or 'observation'")
        if self.bars is not None:
            if not self.bars:
                raise ValueError("'bars' names no instrument")
            for name, bars in self.bars.items():
                if isinstance(bars, list) and not bars:
                    raise ValueError(f"bars of {name!r} are empty")
                if isinstance(bars, list) and len(bars) > MAX_BARS:
                    raise ValueError(f"{len(bars)} bars of {name!r}; at most {MAX_BARS} per request")
        return self

    def service_payload(self) -> dict[str, Any]:
        """What the ensemble replica takes: bars as columns, timestamps in epoch microseconds."""
        payload: dict[str, Any] = {"portfolio": self.portfolio.model_dump()}
        if self.observation is not None:
            payload["observation"] = self.observation
            return payload
        assert self.bars is not None
        payload["bars"] = {
            name: bars.columns()
            if isinstance(bars, BarColumns)
            else {
                "timestamp": [_micros(b.timestamp) for b in bars],
                "open": [b.open for b in bars],
                "high": [b.high for b in bars],
                "low": [b.low for b in bars],
                "close": [b.close for b in bars],
                "volume": [b.volume for b in bars],
            }
            for name, bars in self.bars.items()
        }
        return payload


class MemberAction(BaseModel):
    member: str
    version: str
    action: Action | None = Field(description="null when the member failed")
    probabilities: list[float] | None = None
    seconds: float
    error: str | None = None


class Fallback(BaseModel):
    baseline: str | None = Field(description="the baseline that decided, or null when none could")
    reason: str


class Paper(BaseModel):
    step_log_return: float
    log_return: float = Field(description="cumulative would-be log return of this stream on this variant")
    steps: float


class DecisionResponse(BaseModel):
    stream_id: str
    variant: str = Field(description="the ensemble that decided (A/B split by stream id)")
    action: Action = Field(description="the ensemble's action, in the members' action space")
    disagreement: float = Field(description="weight share of members against the ensemble's action (0..1)")
    fallback: Fallback | None = None
    members: list[MemberAction]
    versions: dict[str, str] = Field(description="member -> model version that answered")
    bar_time: datetime | None = Field(None, description="open time of the decision bar (bars requests)")
    memory_steps: int = Field(description="decisions this replica remembers for the stream (1: fresh memory)")
    warnings: list[str] = Field(default_factory=list)
    paper: Paper | None = None
    shadow: str | None = Field(None, description="the shadow ensemble that also decided (not acted on)")
    service_ms: float = Field(description="time inside the ensemble replica")


class ResetResponse(BaseModel):
    stream_id: str
    had_memory: dict[str, bool] = Field(description="variant -> whether it remembered the stream")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    variants: dict[str, str] = Field(description="variant -> 'ready' or the problem")


class ModelInfo(BaseModel):
    split: dict[str, float]
    shadow: str | None
    variants: dict[str, dict[str, Any]]


class CommandRequest(BaseModel):
    model_config = STRICT
    args: list[str] = Field(default_factory=list, max_length=8)


class CommandResponse(BaseModel):
    command: str
    ok: bool
    text: str
    data: dict[str, Any]


class ErrorResponse(BaseModel):
    error: str = Field(description="what was wrong, naming the field or value")
    detail: list[dict[str, Any]] | None = None
