"""The REST adapter of the operator command layer: ``POST /v1/commands/{name}`` with an API key.

Callers present ``X-API-Key``; keys come from an environment variable (``name:key,name:key``),
never from a config file, and the key's *name* is the caller's identity that the
:class:`~serve.commands.Allowlist` checks and the audit log records.  Status codes: 200 done,
401 no or unknown key, 403 not allowed, 404 unknown command, 409 refused or failed (the reply's
text says why).
"""

from __future__ import annotations

import hmac
import importlib
import os
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from features.data.schema import DataError
from serve.commands import Allowlist, Caller, CommandHandler, TradingControl
from serve.config import CommandsConfig
from serve.schema import CommandRequest, CommandResponse, ErrorResponse

TRANSPORT = "rest"


def parse_keys(text: str | None) -> dict[str, str]:
    """'ops:abc,ci:def' -> {'abc': 'ops', 'def': 'ci'} (key -> name)."""
    keys: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, key = item.strip().partition(":")
        if not sep or not name or len(key) < 8:
            raise DataError(
                "API keys must be 'name:key' pairs separated by commas, keys of 8 characters or more"
            )
        keys[key] = name
    return keys


def identify(key: str | None, keys: Mapping[str, str]) -> str | None:
    """The name of ``key``, compared in constant time against every known key."""
    if not key:
        return None
    found = None
    for known, name in keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = name
    return found


def load_control(spec: str) -> TradingControl:
    """'package.module:factory' -> factory(): the trading process's control."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise DataError(f"commands.control {spec!r}: use 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attribute)
    control: TradingControl = factory()
    return control


def command_handler(config: CommandsConfig) -> CommandHandler | None:
    if config.control is None:
        return None
    return CommandHandler(load_control(config.control), Allowlist(config.allow, transport=TRANSPORT))


def command_router(
    handler: CommandHandler, keys: Mapping[str, str] | None = None, keys_env: str = "MFT_API_KEYS"
) -> APIRouter:
    """Routes under /v1/commands answering through ``handler``."""
    known = dict(keys) if keys is not None else parse_keys(os.environ.get(keys_env))
    router = APIRouter(prefix="/v1/commands", tags=["commands"])
    names = {name for name, _ in handler.commands}

    @router.get("", summary="the operator commands")
    async def commands() -> dict[str, str]:
        return dict(handler.commands)

    @router.post(
        "/{name}",
        response_model=CommandResponse,
        summary="run an operator command",
        responses={
            401: {"model": ErrorResponse},
            403: {"model": CommandResponse},
            404: {"model": CommandResponse},
            409: {"model": CommandResponse},
        },
    )
    def run(
        name: str,
        body: CommandRequest | None = None,
        x_api_key: str | None = Header(None, description="API key; see the keys environment variable"),
    ) -> Any:
        identity = identify(x_api_key, known)
        if identity is None:
            return JSONResponse({"error": "missing or unknown X-API-Key"}, status_code=401)
        reply = handler.handle(name, (body or CommandRequest()).args, Caller(TRANSPORT, identity))
        status = (
            200 if reply.ok else 403 if not reply.authorized else 404 if reply.command not in names else 409
        )
        content = {"command": reply.command, "ok": reply.ok, "text": reply.text, "data": dict(reply.data)}
        return JSONResponse(content, status_code=status)

    return router
