"""The floor of the serving benchmark: a bare Ray Serve FastAPI deployment on the same machine and load.

It parses the same observation body and answers a constant action - no validation, no models, no
metrics - so its latency is what Ray Serve's HTTP proxy, one replica hop and the load generator
cost on this machine.  ``python -m serve.bench_serve`` measures it in the same run as the service.
"""

# No `from __future__ import annotations`: FastAPI must see the real `Request` type to inject it.
from typing import Any

from fastapi import FastAPI, Request
from ray import serve

bare_api = FastAPI()


@serve.deployment(logging_config={"enable_access_log": False, "log_level": "WARNING"})
@serve.ingress(bare_api)
class BareDecider:
    @bare_api.post("/v1/decide")
    async def decide(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"stream_id": body["stream_id"], "action": 0, "size": len(body["observation"])}


def deploy_bare(port: int, app_name: str = "mft-bench-bare") -> str:
    """Deploy the bare decider (Serve must already run on ``port``); returns its URL."""
    serve.run(BareDecider.bind(),  # type: ignore[attr-defined]
              name=app_name, route_prefix="/", logging_config={"enable_access_log": False})
    return f"http://127.0.0.1:{port}"
