"""A small client for a Ray cluster's dashboard REST API, with token authentication.

Job submission, job status and the state API (nodes, actors) all go through the head node's
dashboard (``http://<head>:8265`` by default). Ray 2.60 clusters started with ``RAY_AUTH_MODE=token``
reject requests without ``Authorization: Bearer <token>``; the token is read the way Ray reads it:
``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``.

Plain HTTP keeps the caller's process free of Ray state: a test session that also runs its own
``ray.init()`` is not switched into another cluster's authentication mode.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TERMINAL_JOB_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def default_token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def read_token() -> str | None:
    """The cluster token as Ray's own clients find it, or None when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = default_token_path()
    return path.read_text().strip() if path.is_file() else None


class DashboardError(RuntimeError):
    """The dashboard answered with an error, or did not answer."""


@dataclass(frozen=True)
class Dashboard:
    url: str  # e.g. http://127.0.0.1:8270
    timeout_s: float = 30.0

    def _headers(self) -> dict[str, str]:
        token = read_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers() | ({"Content-Type": "application/json"} if data else {})
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode()[:300]
            raise DashboardError(f"{method} {path}: HTTP {error.code} {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise DashboardError(f"{method} {path}: {self.url} unreachable ({error})") from error
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def reachable(self) -> bool:
        try:
            self.get("/api/version")
        except DashboardError:
            return False
        return True

    def _list(self, kind: str, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """A state API listing (``/api/v0/<kind>``) with equality filters."""
        query: list[tuple[str, str]] = [("limit", "10000"), ("detail", "true")]
        for key, value in (filters or {}).items():
            query += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
        reply = self.get(f"/api/v0/{kind}?{urllib.parse.urlencode(query)}")
        if not reply.get("result"):
            raise DashboardError(f"list {kind}: {reply.get('msg')}")
        return list(reply["data"]["result"]["result"])

    def nodes(self) -> list[dict[str, Any]]:
        """Every node the GCS knows, alive and dead: node_id, state, is_head_node, resources_total..."""
        return self._list("nodes")

    def alive_nodes(self) -> list[dict[str, Any]]:
        return [node for node in self.nodes() if node.get("state") == "ALIVE"]

    def actors(self, **filters: str) -> list[dict[str, Any]]:
        """Actors (alive and dead) matching the filters, e.g. ``actors(job_id=...)``."""
        return self._list("actors", filters)

    def tasks(self, **filters: str) -> list[dict[str, Any]]:
        """Task attempts matching the filters (name, state, node_id...), e.g. ``tasks(actor_id=...)``."""
        return self._list("tasks", filters)

    def job(self, submission_id: str) -> dict[str, Any]:
        """The job's details: status, message, job_id (the Ray job id), driver_info..."""
        return dict(self.get(f"/api/jobs/{submission_id}"))

    def job_logs(self, submission_id: str) -> str:
        return str(self.get(f"/api/jobs/{submission_id}/logs").get("logs", ""))

    def stop_job(self, submission_id: str) -> None:
        self.request("POST", f"/api/jobs/{submission_id}/stop")

    def wait_job(self, submission_id: str, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the job reaches a terminal state; raises TimeoutError with the log tail if not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            details = self.job(submission_id)
            if details.get("status") in TERMINAL_JOB_STATES:
                return details
            time.sleep(poll_s)
        raise TimeoutError(f"job {submission_id} not finished after {timeout_s:.0f}s; log tail:\n"
                           f"{self.job_logs(submission_id)[-3000:]}")
