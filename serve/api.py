"""The HTTP API (FastAPI): decisions, stream resets, health, readiness, model info, metrics.

``build_api`` takes one *backend* per ensemble variant: an in-process
:class:`~serve.service.EnsembleService` (:class:`LocalBackend`, for tests and tools) or a Ray
Serve deployment handle (serve/app.py).  The same app therefore runs under Ray Serve and in a
plain test client.  Routes::

    POST /v1/decide                      the ensemble's action for a stream's latest bars or observation
    POST /v1/streams/{stream_id}/reset   forget the stream's recurrent memory (every variant)
    GET  /v1/model-info                  members, versions, inputs, rule and routing of every variant
    GET  /health                         the process answers
    GET  /ready                          every variant answers (503 otherwise)
    GET  /metrics                        Prometheus text format
    POST /v1/commands/{name}             operator commands (when a trading control is configured)
    GET  /docs, /openapi.json            the typed schema

A request that cannot be answered gets a JSON ``{"error": ...}`` naming the problem: 400 for
malformed JSON, 413 for an oversized body, 422 for wrong fields, shapes or values, 503 when a
variant does not answer in time.  A decision goes to the variant chosen by hash of the stream
id; the shadow variant (if any) decides on the same input in the background and its decision is
recorded (metrics, decision log), never returned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.config import RoutingConfig
from serve.schema import (
    COLUMNS,
    ROWS,
    STREAM_ID,
    DecisionRequest,
    DecisionResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    Readiness,
    ResetResponse,
)
from serve.service import EnsembleService
from serve.service_metrics import ServiceMetrics
from serve.traffic import choose_variant

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 16 * 1024 * 1024
READY_TIMEOUT_S = 5.0
RESPONSE_FIELDS = frozenset(DecisionResponse.model_fields) - {"shadow"}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 413, 422, 503)}


class Backend(Protocol):
    """One ensemble variant, wherever it runs."""

    async def decide(self, stream: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    async def reset(self, stream: str) -> dict[str, Any]: ...

    async def describe(self) -> dict[str, Any]: ...


class LocalBackend:
    """An in-process EnsembleService (calls are serialised: the service keeps per-stream state)."""

    def __init__(self, service: EnsembleService) -> None:
        self.service = service
        self._lock = asyncio.Lock()

    async def decide(self, stream: str, payload: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            return self.service.decide(stream, payload)

    async def reset(self, stream: str) -> dict[str, Any]:
        async with self._lock:
            return self.service.reset(stream)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe()


class DecisionLog:
    """Append-only JSON lines of every live and shadow decision: the record of would-be performance."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", buffering=1, encoding="utf-8")

    def write(self, answer: Mapping[str, Any]) -> None:
        record = {
            "logged_at": datetime.now(UTC).isoformat(),
            **{
                k: answer.get(k)
                for k in (
                    "stream_id",
                    "variant",
                    "role",
                    "action",
                    "disagreement",
                    "fallback",
                    "versions",
                    "bar_time",
                    "paper",
                )
            },
        }
        self._file.write(json.dumps(record, default=str) + "\n")

    def close(self) -> None:
        self._file.close()


def error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", ROWS, COLUMNS)]
    return ".".join(parts) or "body"


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field (400 for malformed JSON); the offending input is not echoed back."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        where = next(e for e in errors if e["type"] == "json_invalid")
        return error(400, f"malformed JSON: {where['msg']} (at {_location(tuple(where['loc']))})", errors)
    message = "; ".join(f"{_location(tuple(e['loc']))}: {e['msg']}" for e in errors[:8])
    return error(422, message, errors)


class DecisionRoutes:
    """The decision and stream routes over the variants' backends."""

    def __init__(
        self,
        backends: Mapping[str, Backend],
        routing: RoutingConfig,
        metrics: ServiceMetrics,
        timeout_s: float,
        decision_log: DecisionLog | None,
    ) -> None:
        self.backends, self.routing, self.metrics = backends, routing, metrics
        self.timeout_s, self.log = timeout_s, decision_log
        self._background: set[asyncio.Task[Any]] = set()

    async def call(
        self,
        variant: str,
        role: str,
        work: Callable[[Backend], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """A backend call that always returns a dict: a timeout or a dead replica becomes a 503 answer."""
        try:
            return await asyncio.wait_for(work(self.backends[variant]), self.timeout_s)
        except TimeoutError:
            problem = f"ensemble {variant!r} did not answer within {self.timeout_s:g} s"
        except Exception as err:  # a replica died or the handle failed: the caller may retry
            problem = f"ensemble {variant!r} is unavailable: {type(err).__name__}: {str(err)[:300]}"
        self.metrics.unavailable.labels(variant=variant, role=role).inc()
        return {"ok": False, "status": 503, "error": problem}

    def record(self, answer: Mapping[str, Any]) -> None:
        self.metrics.observe_decision(answer)
        if self.log is not None:
            self.log.write(answer)

    async def decide(self, request: DecisionRequest) -> Any:
        stream = request.stream_id
        variant = choose_variant(stream, self.routing.split)
        payload = request.service_payload()
        shadow = self.routing.shadow
        shadow_task = None
        if shadow is not None:
            shadow_task = asyncio.ensure_future(
                self.call(shadow, "shadow", lambda b: b.decide(stream, payload))
            )
        answer = await self.call(variant, "live", lambda b: b.decide(stream, payload))
        if shadow_task is not None:
            self._keep(asyncio.ensure_future(self._record_shadow(shadow_task, answer)))
        if not answer["ok"]:
            return error(int(answer["status"]), str(answer["error"]))
        self.record(answer)
        # The service's answer already has the response's shape: skip a second validation pass.
        return JSONResponse({k: v for k, v in answer.items() if k in RESPONSE_FIELDS} | {"shadow": shadow})

    async def _record_shadow(self, task: asyncio.Future[dict[str, Any]], live: Mapping[str, Any]) -> None:
        answer = await task
        if not answer["ok"]:
            if live.get("ok") or answer["status"] != live.get("status"):  # not merely the same bad request
                log.warning("shadow ensemble failed: %s", answer["error"])
            return
        self.record(answer)
        if live.get("ok"):
            self.metrics.observe_shadow(str(answer["variant"]), answer["action"] == live["action"])

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._background.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._background.discard)  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait for background shadow decisions (tests and shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def reset(self, stream_id: Annotated[str, PathParam(pattern=STREAM_ID)]) -> Any:
        answers = {
            name: await self.call(name, "live", lambda b: b.reset(stream_id)) for name in self.backends
        }
        failed = {name: a["error"] for name, a in answers.items() if not a["ok"]}
        if failed:
            return error(503, "; ".join(f"{name}: {problem}" for name, problem in failed.items()))
        return ResetResponse(
            stream_id=stream_id, had_memory={n: bool(a["had_memory"]) for n, a in answers.items()}
        )

    async def readiness(self) -> Any:
        states: dict[str, str] = {}
        for name, backend in self.backends.items():
            try:
                await asyncio.wait_for(backend.describe(), READY_TIMEOUT_S)
                states[name] = "ready"
            except Exception as err:
                states[name] = f"{type(err).__name__}: {str(err)[:200]}"
        ready = all(state == "ready" for state in states.values())
        body = Readiness(ready=ready, variants=states)
        return body if ready else JSONResponse(body.model_dump(), status_code=503)

    async def model_info(self) -> ModelInfo:
        described = {name: await backend.describe() for name, backend in self.backends.items()}
        return ModelInfo(split=dict(self.routing.split), shadow=self.routing.shadow, variants=described)


class Observe:
    """ASGI middleware: refuses oversized bodies, records each answer's endpoint, outcome and time."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        size = dict(scope["headers"]).get(b"content-length", b"0")
        try:
            if not size.isdigit() or int(size) > MAX_BODY_BYTES:
                await error(413, f"request body over {MAX_BODY_BYTES} bytes")(scope, receive, record_status)
            else:
                await self.app(scope, receive, record_status)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")  # the route template, once routed
            self.metrics.observe_request(endpoint, status, time.perf_counter() - started)


def build_api(
    backends: Mapping[str, Backend],
    routing: RoutingConfig,
    *,
    metrics: ServiceMetrics | None = None,
    timeout_s: float = 10.0,
    decision_log: DecisionLog | None = None,
    extra_routers: tuple[APIRouter, ...] = (),
) -> FastAPI:
    """The FastAPI app over one backend per variant (every variant in ``routing`` must have one)."""
    missing = sorted({*routing.split, *([routing.shadow] if routing.shadow else [])} - set(backends))
    if missing:
        raise ValueError(f"no backend for variant(s) {missing}")
    metrics = metrics or ServiceMetrics()
    routes = DecisionRoutes(backends, routing, metrics, timeout_s, decision_log)
    app = FastAPI(title="MFT policy service", version="1", description=__doc__)
    app.state.routes = routes
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(Observe, metrics=metrics)
    app.post(
        "/v1/decide",
        response_model=DecisionResponse,
        responses=ERRORS,
        tags=["decisions"],
        summary="the ensemble's action for the latest bars",
    )(routes.decide)
    app.post(
        "/v1/streams/{stream_id}/reset",
        response_model=ResetResponse,
        responses=ERRORS,
        tags=["decisions"],
        summary="forget a stream's recurrent memory",
    )(routes.reset)
    app.get("/v1/model-info", response_model=ModelInfo, tags=["models"], summary="members and versions")(
        routes.model_info
    )
    app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["health"])(
        routes.readiness
    )

    @app.get("/health", response_model=Health, tags=["health"])
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    for router in extra_routers:
        app.include_router(router)
    return app
