"""Where the actor's decisions come from: the Serve endpoint over HTTP, or a policy in the same process.

:class:`HttpDecider` is what paper and live trading use: it posts the observation to
``POST /v1/decide`` of the policy service (docs/serving.md) for one trading stream and returns
the ensemble's action with the versions that answered.  :class:`LocalDecider` runs a policy
in-process, for research replays without a service and for tests of the trading loop.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from features.data.schema import DataError


class DecisionError(RuntimeError):
    """The policy service could not be reached or refused the request; the bar is decided again later."""


@dataclass(frozen=True)
class Decision:
    action: Any  # int, list of ints or list of floats, in the members' action space
    model: str = ""  # versions that decided, e.g. "main: ppo_mlp@3"
    payload: dict[str, Any] = field(default_factory=dict)  # the service's whole answer, for the journal
    seconds: float = 0.0


class Decider(ABC):
    @abstractmethod
    def decide(self, stream_id: str, observation: np.ndarray) -> Decision: ...

    def reset(self, stream_id: str) -> None:  # noqa: B027 - stateless deciders have no memory to reset
        """Forget the stream's recurrent memory (after a structural break)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class HttpDecider(Decider):
    """The policy service at ``url`` (e.g. http://127.0.0.1:8000)."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, attempts: int = 3, backoff_s: float = 0.5) -> None:
        self.url = url.rstrip("/")
        self.attempts, self.backoff_s = max(1, attempts), backoff_s
        self.client = httpx.Client(base_url=self.url, timeout=timeout_s)

    def decide(self, stream_id: str, observation: np.ndarray) -> Decision:
        values = np.asarray(observation, dtype=np.float64).ravel()
        if not np.isfinite(values).all():
            raise DataError(f"observation for stream {stream_id} holds NaN or infinite values")
        body = {"stream_id": stream_id, "observation": values.tolist()}
        started = time.perf_counter()
        answer = self._post("/v1/decide", body)
        versions = answer.get("versions") or {}
        model = f"{answer.get('variant', '')}: " + ", ".join(f"{m}@{v}" for m, v in sorted(versions.items()))
        return Decision(answer["action"], model, answer, time.perf_counter() - started)

    def reset(self, stream_id: str) -> None:
        self._post(f"/v1/streams/{stream_id}/reset", None)

    def _post(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        last = ""
        for attempt in range(self.attempts):
            try:
                response = self.client.post(path, json=body)
            except httpx.HTTPError as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code < 400:
                    answer: dict[str, Any] = response.json()
                    return answer
                last = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code < 500:  # the request is wrong: retrying cannot help
                    raise DecisionError(f"{self.url}{path} refused the request: {last}")
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff_s * 2**attempt)
        raise DecisionError(f"{self.url}{path} failed after {self.attempts} attempt(s): {last}")

    def close(self) -> None:
        self.client.close()


class LocalDecider(Decider):
    """An :class:`rl.policy.Policy` (a trained agent's module policy) run in this process."""

    def __init__(self, policy: Any, name: str = "local") -> None:
        self.policy, self.name = policy, name
        self.policy.reset(None)

    def decide(self, stream_id: str, observation: np.ndarray) -> Decision:
        started = time.perf_counter()
        action = self.policy.act(np.asarray(observation, dtype=np.float32))
        action = action.tolist() if isinstance(action, np.ndarray) else action
        if isinstance(action, float) and not math.isfinite(action):
            raise DecisionError(f"policy {self.name} returned {action}")
        return Decision(action, self.name, {"action": action}, time.perf_counter() - started)

    def reset(self, stream_id: str) -> None:
        self.policy.reset(None)
