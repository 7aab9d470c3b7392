"""The HTTP API over stub ensembles: bad requests get a 4xx naming the problem, routing, shadow, metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve.api import MAX_BODY_BYTES, build_api
from serve.config import RoutingConfig
from serve.schema import DecisionRequest
from serve.traffic import choose_variant


class StubBackend:
    """Answers like an EnsembleService: a fixed action, or the error it is told to give."""

    def __init__(
        self,
        name: str,
        action: Any,
        role: str = "live",
        problem: tuple[int, str] | None = None,
        raises: Exception | None = None,
        delay: float = 0.0,
    ) -> None:
        self.name, self.action, self.role, self.problem, self.raises, self.delay = (
            name,
            action,
            role,
            problem,
            raises,
            delay,
        )
        self.payloads: list[tuple[str, dict[str, Any]]] = []

    async def decide(self, stream: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.payloads.append((stream, payload))
        await asyncio.sleep(self.delay)
        if self.raises is not None:
            raise self.raises
        if self.problem is not None:
            return {"ok": False, "status": self.problem[0], "error": self.problem[1]}
        member = {
            "member": "m1",
            "version": "m1/7",
            "action": self.action,
            "probabilities": None,
            "seconds": 0.001,
            "error": None,
        }
        return {
            "ok": True,
            "variant": self.name,
            "role": self.role,
            "stream_id": stream,
            "action": self.action,
            "disagreement": 0.25,
            "fallback": None,
            "members": [member],
            "versions": {"m1": "m1/7"},
            "bar_time": None,
            "memory_steps": 1,
            "warnings": [],
            "paper": None,
            "service_ms": 1.5,
        }

    async def reset(self, stream: str) -> dict[str, Any]:
        return {"ok": True, "had_memory": any(s == stream for s, _ in self.payloads)}

    async def describe(self) -> dict[str, Any]:
        if self.raises is not None:
            raise self.raises
        return {"variant": self.name}


def bar(i: int, **changes: Any) -> dict[str, Any]:
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    return {
        "timestamp": start.isoformat(),
        "open": 100.0,
        "high": 101.0,
        "low": 99.0,
        "close": 100.5,
        "volume": 12.0,
    } | changes


@pytest.fixture
def client() -> TestClient:
    backends = {
        "main": StubBackend("main", 1),
        "other": StubBackend("other", 2),
        "candidate": StubBackend("candidate", 0, role="shadow"),
    }
    return TestClient(
        build_api(backends, RoutingConfig({"main": 0.5, "other": 0.5}, "candidate"), timeout_s=0.5)
    )


def post(client: TestClient, body: str) -> Any:
    return client.post("/v1/decide", content=body.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ('{"stream_id": "s", "observation": [1.0, 2', 400, "malformed JSON: JSON decode error"),
        (
            '{"stream_id": "s", "observation": [1.0, NaN]}',
            422,
            "observation.1: Input should be a finite number",
        ),
        (
            '{"stream_id": "s", "observation": [Infinity]}',
            422,
            "observation.0: Input should be a finite number",
        ),
        ('{"observation": [1.0]}', 422, "stream_id: Field required"),
        ('{"stream_id": "s"}', 422, "give exactly one of 'bars' or 'observation'"),
        (
            '{"stream_id": "s", "observation": [1.0], "bars": {"binance:BTC/USDT": []}}',
            422,
            "give exactly one",
        ),
        ('{"stream_id": "s", "bars": {"binance:BTC/USDT": []}}', 422, "bars of 'binance:BTC/USDT' are empty"),
        ('{"stream_id": "s", "observation": []}', 422, "observation: List should have at least 1 item"),
        ('{"stream_id": "s", "observation": "1,2"}', 422, "observation: Input should be a valid list"),
        (
            '{"stream_id": "s", "observation": [1.0], "leverage": 3}',
            422,
            "leverage: Extra inputs are not permitted",
        ),
        ('{"stream_id": "bad id!", "observation": [1.0]}', 422, "stream_id: String should match pattern"),
        (
            '{"stream_id": "s", "observation": [1.0], "portfolio": {"bars_since_trade": -1}}',
            422,
            "portfolio.bars_since_trade: Input should be greater than or equal to 0",
        ),
        ("[1, 2, 3]", 422, "Input should be a valid dictionary"),
    ],
)
def test_bad_requests_name_the_problem(client: TestClient, body: str, status: int, message: str) -> None:
    response = post(client, body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_bad_bar_fields_are_located(client: TestClient) -> None:
    bars = [bar(0), bar(1, close=float("nan")), bar(2, volume=-1.0), bar(3, low=0.0)]
    response = post(client, json.dumps({"stream_id": "s", "bars": {"binance:BTC/USDT": bars}}))
    error = response.json()["error"]
    assert response.status_code == 422
    assert "bars.binance:BTC/USDT.1.close: Input should be a finite number" in error
    assert "bars.binance:BTC/USDT.2.volume: Input should be greater than or equal to 0" in error
    assert "bars.binance:BTC/USDT.3.low: Input should be greater than 0" in error


def test_oversized_body_is_refused_before_parsing(client: TestClient) -> None:
    response = client.post(
        "/v1/decide",
        content=b"x",
        headers={"content-type": "application/json", "content-length": str(MAX_BODY_BYTES + 1)},
    )
    assert response.status_code == 413 and "request body over" in response.json()["error"]


def test_ensemble_errors_pass_through_and_failures_become_503() -> None:
    backends = {
        "main": StubBackend("main", 1, problem=(422, "bars for binance:ETH/USDT are missing")),
        "dead": StubBackend("dead", 1, raises=RuntimeError("replica died")),
        "slow": StubBackend("slow", 1, delay=2.0),
    }
    for name, status, message in (
        ("main", 422, "bars for binance:ETH/USDT are missing"),
        ("dead", 503, "ensemble 'dead' is unavailable: RuntimeError: replica died"),
        ("slow", 503, "ensemble 'slow' did not answer within 0.3 s"),
    ):
        client = TestClient(build_api(backends, RoutingConfig({name: 1.0}), timeout_s=0.3))
        response = client.post("/v1/decide", json={"stream_id": "s", "observation": [1.0]})
        assert (response.status_code, response.json()["error"]) == (status, message)
    ready = TestClient(build_api(backends, RoutingConfig({"main": 1.0}))).get("/ready")
    assert ready.status_code == 503
    assert ready.json()["variants"] == {
        "main": "ready",
        "dead": "RuntimeError: replica died",
        "slow": "ready",
    }


def test_streams_follow_the_split_and_the_shadow_is_never_returned(client: TestClient) -> None:
    backends = client.app.state.routes.backends  # type: ignore[attr-defined]
    for i in range(40):
        stream = f"desk-{i}"
        body = client.post("/v1/decide", json={"stream_id": stream, "observation": [1.0, 2.0]}).json()
        variant = choose_variant(stream, {"main": 0.5, "other": 0.5})
        assert body["variant"] == variant and body["action"] == {"main": 1, "other": 2}[variant]
        assert body["shadow"] == "candidate" and body["versions"] == {"m1": "m1/7"}
    asyncio.run(client.app.state.routes.drain())  # type: ignore[attr-defined]
    live = backends["main"].payloads + backends["other"].payloads
    assert sorted(backends["candidate"].payloads, key=str) == sorted(
        live, key=str
    )  # the shadow saw every request...
    metrics = client.get("/metrics").text
    assert (
        'mft_serve_shadow_agreement_total{agreed="false",variant="candidate"} 40.0' in metrics
    )  # ...never acted on
    assert 'mft_serve_decisions_total{role="shadow",variant="candidate"} 40.0' in metrics
    assert (
        'mft_serve_model_version_info{member="m1",role="live",variant="main",version="m1/7"} 1.0' in metrics
    )


def test_metrics_count_requests_by_endpoint_and_outcome(client: TestClient) -> None:
    client.post("/v1/decide", json={"stream_id": "s", "observation": [1.0]})
    post(client, "{oops")
    client.get("/health")
    client.post("/v1/streams/s/reset")
    text = client.get("/metrics").text
    for line in (
        'mft_serve_requests_total{endpoint="/v1/decide",outcome="ok"} 1.0',
        'mft_serve_requests_total{endpoint="/v1/decide",outcome="client_error"} 1.0',
        'mft_serve_requests_total{endpoint="/health",outcome="ok"} 1.0',
        'mft_serve_requests_total{endpoint="/v1/streams/{stream_id}/reset",outcome="ok"} 1.0',
        'mft_serve_request_latency_seconds_count{endpoint="/v1/decide",outcome="ok"} 1.0',
        'mft_serve_ensemble_disagreement_sum{role="live"',
    ):
        assert line in text


def test_openapi_documents_the_decision_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v1/decide" in schema["paths"] and "/v1/model-info" in schema["paths"]
    assert {"DecisionRequest", "DecisionResponse", "Bar", "Portfolio"} <= set(schema["components"]["schemas"])
    assert client.get("/docs").status_code == 200


def test_bars_become_columns_with_exact_microseconds() -> None:
    request = DecisionRequest.model_validate(
        {
            "stream_id": "s",
            "bars": {
                "binance:BTC/USDT": [
                    bar(0, timestamp="2024-01-01T00:00:00.000001"),
                    bar(1, timestamp="2024-01-01T02:00:00+01:00"),
                ]
            },
        }
    )
    columns = request.service_payload()["bars"]["binance:BTC/USDT"]
    assert columns["timestamp"] == [
        1_704_067_200_000_001,
        1_704_070_800_000_000,
    ]  # naive is UTC; +01:00 converted
    assert columns["close"] == [100.5, 100.5]
    assert request.service_payload()["portfolio"] == {
        "weights": {},
        "cash_share": None,
        "unrealised_pnl": {},
        "bars_since_trade": 0,
    }


def test_bars_as_columns(client: TestClient) -> None:
    rows = [bar(i) for i in range(3)]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    by_rows = DecisionRequest.model_validate({"stream_id": "s", "bars": {"binance:BTC/USDT": rows}})
    by_columns = DecisionRequest.model_validate({"stream_id": "s", "bars": {"binance:BTC/USDT": columns}})
    assert by_rows.service_payload() == by_columns.service_payload()
    bad = columns | {"close": [100.0, float("nan"), 100.0], "volume": [1.0, 2.0]}
    response = post(client, json.dumps({"stream_id": "s", "bars": {"binance:BTC/USDT": bad}}))
    assert response.status_code == 422
    assert response.json()["error"] == "bars.binance:BTC/USDT.close.1: Input should be a finite number"
    short = columns | {"volume": [1.0, 2.0]}
    response = post(client, json.dumps({"stream_id": "s", "bars": {"binance:BTC/USDT": short}}))
    assert "3 timestamps but {'volume': 2} values" in response.json()["error"]
