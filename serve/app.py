"""The policy service on Ray Serve: one deployment per ensemble variant behind one FastAPI ingress.

::

    HTTP (127.0.0.1:8000) -> Serve proxy -> Ingress (FastAPI, serve/api.py)
                                              |-- handle -> ensemble-<variant> replicas (EnsembleModel)
                                              '-- shadow variant, in the background

Each ensemble deployment hosts only the members' RLModules (or their ONNX exports) and the runs'
feature pipelines, never an algorithm.  Its replicas, autoscaling and CPUs come from the config,
and, when a member is recurrent, :class:`serve.routing.StreamAffinityRouter` keeps each trading
stream on one replica so its memory stays put (stateless ensembles use Serve's default router).
Start it with ``mft serve run`` or
``serve run serve.app:app_builder config=configs/serve/default.yaml``.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.config import RequestRouterConfig
from ray.serve.deployment import Application, Deployment
from ray.serve.handle import DeploymentHandle

from serve.api import Backend, DecisionLog, LocalBackend, build_api
from serve.config import EnsembleConfig, ServeConfig
from serve.http_proxy import prepare_local_ray
from serve.rest_commands import command_handler, command_router
from serve.service import EnsembleService
from serve.service_metrics import ServiceMetrics

log = logging.getLogger(__name__)
ROUTER = "serve.routing:StreamAffinityRouter"


def _freeze_startup_objects() -> None:
    """Move everything loaded so far (torch, Ray, the models) out of the garbage collector's reach.

    A full collection otherwise walks those millions of objects and stalls the replica's event
    loop for tens of milliseconds now and then: the tail of the latency distribution.
    """
    gc.collect()
    gc.freeze()


class EnsembleModel:
    """One ensemble variant: an EnsembleService in a Serve replica."""

    def __init__(self, name: str, config: EnsembleConfig, role: str, tracking_uri: str | None) -> None:
        import torch

        torch.set_num_threads(1)  # one decision at a time; more threads only spin on a shared machine
        self.service = EnsembleService(name, config, role=role, tracking_uri=tracking_uri)
        _freeze_startup_objects()

    async def decide(self, stream: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self.service.decide(stream, payload)

    async def reset(self, stream: str) -> dict[str, Any]:
        return self.service.reset(stream)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe() | {"replica": serve.get_replica_context().replica_id.unique_id}


class HandleBackend:
    """A variant behind a Ray Serve deployment handle (the api's Backend).

    A call that meets a dead replica is sent once more: the router has dropped that replica by
    then, so the retry lands on a live one (a recurrent member starts there with fresh memory,
    which ``memory_steps`` in the answer shows).
    """

    def __init__(self, handle: DeploymentHandle, attempts: int = 2) -> None:
        self.handle = handle
        self.attempts = attempts

    async def _call(self, method: str, *args: Any) -> dict[str, Any]:
        for attempt in range(1, self.attempts + 1):
            try:
                result: dict[str, Any] = await getattr(self.handle, method).remote(*args)
                return result
            except (RayActorError, ActorUnavailableError):
                if attempt == self.attempts:
                    raise
                log.warning("%s: replica lost, retrying on another", method)
        raise AssertionError("unreachable")

    async def decide(self, stream: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._call("decide", stream, payload)

    async def reset(self, stream: str) -> dict[str, Any]:
        return await self._call("reset", stream)

    async def describe(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.handle.describe.remote()
        return result


class Ingress:
    """The HTTP front: validation, A/B routing, shadow, metrics, operator commands."""

    def __init__(self, config: ServeConfig, ensembles: dict[str, DeploymentHandle]) -> None:
        self.config = config
        self.backends: dict[str, Backend] = {
            name: HandleBackend(handle) for name, handle in ensembles.items()
        }
        self.metrics = ServiceMetrics()
        self.decision_log = DecisionLog(config.decision_log) if config.decision_log else None

    def __serve_build_asgi_app__(self) -> FastAPI:
        handler = command_handler(self.config.commands)
        routers = (
            () if handler is None else (command_router(handler, keys_env=self.config.commands.keys_env),)
        )
        return build_api(
            self.backends,
            self.config.routing,
            metrics=self.metrics,
            timeout_s=self.config.request_timeout_s,
            decision_log=self.decision_log,
            extra_routers=routers,
        )


class FusedIngress(Ingress):
    """The HTTP front with the ensemble in the same replica (a lone stateless variant): no second hop."""

    def __init__(self, config: ServeConfig, variant: str) -> None:
        import torch

        super().__init__(config, {})
        torch.set_num_threads(1)
        ensemble = _absolute(config.ensembles[variant])
        service = EnsembleService(variant, ensemble, tracking_uri=_tracking_uri(config))
        self.backends = {variant: LocalBackend(service)}
        _freeze_startup_objects()


EnsembleDeployment = cast(Deployment, serve.deployment(EnsembleModel))
IngressDeployment = cast(Deployment, serve.deployment(serve.ingress()(Ingress)))
FusedDeployment = cast(Deployment, serve.deployment(serve.ingress()(FusedIngress)))


def _tracking_uri(config: ServeConfig) -> str | None:
    return config.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")


def _absolute(config: EnsembleConfig) -> EnsembleConfig:
    """Member paths made absolute: replicas may run in another working directory."""
    import dataclasses

    members = tuple(
        m if m.source.startswith("models:/") else dataclasses.replace(m, source=str(Path(m.source).resolve()))
        for m in config.members
    )
    return dataclasses.replace(config, members=members)


def recurrent(config: EnsembleConfig, tracking_uri: str | None) -> bool:
    """Whether any member has a recurrent backbone, from the runs' configs (unknown counts as recurrent)."""
    import yaml

    from rl.artifacts import run_and_checkpoint
    from rl.models.backbones import BACKBONES
    from serve.registry import resolve_source

    for member in config.members:
        try:
            run, _ = run_and_checkpoint(resolve_source(member.source, tracking_uri).path)
            name = yaml.safe_load((run / "config.yaml").read_text())["model"]["name"]
            if BACKBONES[name].recurrent:
                return True
        except Exception:  # unreadable here: the replica will say what is wrong; keep streams on one replica
            return True
    return False


def fused_variant(config: ServeConfig) -> str | None:
    """The variant to run inside the HTTP replicas, when fusing applies."""
    if not config.fuse or config.routing.shadow is not None or len(config.active) != 1:
        return None
    variant = config.active[0]
    return None if recurrent(config.ensembles[variant], _tracking_uri(config)) else variant


def build_app(config: ServeConfig) -> Application:
    """The Serve application: an ensemble deployment per active variant, bound into the ingress (or, for a
    lone stateless ensemble, one deployment doing both, scaled like the ensemble)."""
    fused = fused_variant(config)
    if fused is not None:
        options = config.ensembles[fused].scaling.deployment_options()
        return FusedDeployment.options(name="ingress", **options).bind(config, fused)
    shadow = config.routing.shadow
    ensembles = {}
    for name in config.active:
        ensemble = config.ensembles[name]
        options = ensemble.scaling.deployment_options() | {"name": f"ensemble-{name}"}
        if recurrent(ensemble, _tracking_uri(config)):  # memory per stream: keep each stream on one replica
            router = RequestRouterConfig(request_router_class=ROUTER)  # type: ignore[arg-type]
            options["request_router_config"] = router
        role = "shadow" if name == shadow else "live"
        ensembles[name] = EnsembleDeployment.options(**options).bind(
            name, _absolute(ensemble), role, _tracking_uri(config)
        )
    return IngressDeployment.options(name="ingress", **config.ingress.deployment_options()).bind(
        config, ensembles
    )


def app_builder(args: dict[str, str]) -> Application:
    """For ``serve run serve.app:app_builder config=<file or name>``."""
    return build_app(ServeConfig.load(args.get("config", "default")))


def start(config: ServeConfig, *, blocking: bool = False, ray_address: str | None = None) -> DeploymentHandle:
    """Start (or join) Ray, start Serve on ``config.host:port`` and deploy the application."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        address = ray_address or os.environ.get("RAY_ADDRESS")
        if address is None:  # a local Ray starts here: its processes read the front door from the environment
            front_door = prepare_local_ray(config.http_proxy, config.host)
            log.info("Serve's HTTP front door: %s", front_door)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    # Per-request access logs cost the proxy and each replica a formatted, flushed line per decision;
    # the service's own metrics count every request, so they are off unless asked for.
    logging_config = {"enable_access_log": config.access_log, "log_level": "INFO" if config.access_log else "WARNING"}
    serve.start(http_options={"host": config.host, "port": config.port}, logging_config=logging_config)
    return serve.run(
        build_app(config),
        name=config.app_name,
        route_prefix=config.route_prefix,
        blocking=blocking,
        logging_config=logging_config,
    )
