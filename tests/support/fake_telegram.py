"""A local fake of the Telegram Bot API, so the real python-telegram-bot client can be tested offline.

The server binds 127.0.0.1 on an ephemeral port and answers the methods MFT
uses: getMe, getUpdates (with offset confirmation and a long-poll timeout,
capped so tests stay fast), sendMessage, deleteWebhook, setMyCommands,
getMyCommands, close and logOut.  Point PTB at it with
``base_url=fake.base_url`` (``http://127.0.0.1:<port>/bot``; PTB appends the
token) and ``base_file_url=fake.base_file_url``.

Tests inject chat messages (:meth:`FakeTelegram.inject_message`), which the
next getUpdates returns; every request is recorded with the status served;
faults are scripted per method (HTTP 503, 429 with ``parameters.retry_after``
in the Bot API format, or a dropped connection) or switched on for every
request (:meth:`FakeTelegram.set_outage`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER = {
    "id": 7000001,
    "is_bot": True,
    "first_name": "MFT",
    "username": "mft_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
RAW_STRING_PARAMS = frozenset({"text", "parse_mode", "caption", "description", "short_description"})
DROP = 0  # status recorded for a dropped connection


@dataclass(frozen=True)
class ApiCall:
    """One request: the Bot API method, its decoded parameters and the HTTP status served (0 = dropped)."""

    method: str
    params: dict[str, Any]
    status: int
    time: float


@dataclass(frozen=True)
class SentMessage:
    chat_id: int
    text: str


@dataclass(frozen=True)
class Fault:
    """A scripted failure: ``status`` with an error body, or a dropped connection when ``status`` is DROP."""

    status: int
    retry_after: int | None = None
    method: str | None = None  # None matches any method

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": _describe(self)}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _describe(fault: Fault) -> str:
    if fault.status == 429:
        return f"Too Many Requests: retry after {fault.retry_after}"
    return {
        503: "Service Unavailable",
        502: "Bad Gateway",
        500: "Internal Server Error",
        400: "Bad Request: message text is empty",
        403: "Forbidden: bot was blocked by the user",
    }.get(fault.status, "Error")


class FakeTelegram:
    """Threaded fake Bot API for one bot token."""

    def __init__(self, token: str, max_poll_seconds: float = 0.5) -> None:
        self.token = token
        self.max_poll_seconds = max_poll_seconds
        self._lock = threading.Condition()
        self._calls: list[ApiCall] = []
        self._sent: list[SentMessage] = []
        self._updates: list[dict[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self._outage: Fault | None = None
        self._next_update = 1
        self._next_message = 1
        self._commands: list[dict[str, Any]] = []
        self._stopped = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-telegram",
            daemon=True,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # -- test controls ---------------------------------------------------------------------------
    def inject_message(
        self, chat_id: int, text: str, user_id: int | None = None, date: float | None = None
    ) -> int:
        """Queue a private-chat text message (a bot command if it starts with '/'); returns its update id."""
        with self._lock:
            update_id, message_id = self._next_update, self._next_message
            self._next_update += 1
            self._next_message += 1
            user = {
                "id": user_id or chat_id,
                "is_bot": False,
                "first_name": "Operator",
                "username": "operator",
            }
            message: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time() if date is None else date),
                "chat": {"id": chat_id, "type": "private", "first_name": "Operator"},
                "from": user,
                "text": text,
            }
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            self._updates.append({"update_id": update_id, "message": message})
            self._lock.notify_all()
            return update_id

    def fail(
        self, status: int, times: int = 1, method: str | None = None, retry_after: int | None = None
    ) -> None:
        """Serve ``times`` failures with ``status`` (DROP closes the connection) ahead of normal answers."""
        with self._lock:
            self._faults.extend(Fault(status, retry_after, method) for _ in range(times))

    def set_outage(self, status: int | None, retry_after: int | None = None) -> None:
        """Fail every request with ``status`` (DROP: connection closed) until called with None."""
        with self._lock:
            self._outage = None if status is None else Fault(status, retry_after)

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def sent_messages(self) -> list[SentMessage]:
        with self._lock:
            return list(self._sent)

    @property
    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    def wait_for(self, condition: Callable[[FakeTelegram], bool], timeout: float = 10.0) -> bool:
        """Poll ``condition(self)`` until it holds or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return True
            time.sleep(0.01)
        return condition(self)

    # -- request handling ------------------------------------------------------------------------
    def _fault_for(self, method: str) -> Fault | None:
        with self._lock:
            if self._outage is not None:
                return self._outage
            for fault in self._faults:
                if fault.method in (None, method):
                    self._faults.remove(fault)
                    return fault
        return None

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        with self._lock:
            self._calls.append(ApiCall(method, params, status, time.monotonic()))

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        routes: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda _: BOT_USER,
            "deleteWebhook": lambda _: True,
            "close": lambda _: True,
            "logOut": lambda _: True,
            "setMyCommands": self._set_commands,
            "getMyCommands": lambda _: list(self._commands),
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
        }
        if method not in routes:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return 200, {"ok": True, "result": routes[method](params)}

    def _set_commands(self, params: dict[str, Any]) -> bool:
        self._commands = list(params.get("commands") or [])
        return True

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), self.max_poll_seconds)
        deadline = time.monotonic() + wait
        with self._lock:
            self._updates = [
                u for u in self._updates if u["update_id"] >= offset
            ]  # offset confirms older ones
            while not self._updates and not self._stopped and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
            return list(self._updates[:limit])

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, text = int(params["chat_id"]), str(params.get("text", ""))
        with self._lock:
            self._sent.append(SentMessage(chat_id, text))
            message_id = self._next_message
            self._next_message += 1
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": text,
        }


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        decoded = json.loads(raw)
        return dict(decoded) if isinstance(decoded, dict) else {}
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode(), keep_blank_values=True):
        if key in RAW_STRING_PARAMS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)  # PTB JSON-encodes every non-string parameter
        except ValueError:
            params[key] = value
    return params


def _make_handler(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            params = _decode(self.rfile.read(length), self.headers.get("Content-Type", ""))
            params.update(dict(parse_qsl(parts.query)))
            segments = parts.path.strip("/").split("/")
            if len(segments) != 2 or segments[0] != f"bot{fake.token}":
                fake._record(segments[-1] if segments else "", params, 401)
                return self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            method = segments[1]
            fault = fake._fault_for(method)
            if fault is not None and fault.status == DROP:
                fake._record(method, params, DROP)
                self.close_connection = True
                return None
            if fault is not None:
                fake._record(method, params, fault.status)
                return self._json(fault.status, fault.body())
            status, body = fake.answer(method, params)
            fake._record(method, params, status)
            return self._json(status, body)

        def _json(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on a long poll
                self.close_connection = True

    return Handler
