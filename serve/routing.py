"""A Ray Serve request router that sends every request of a trading stream to the same replica.

Recurrent members keep their memory per stream inside a replica, so a stream must keep meeting
the same replica.  The router reads the stream id (the first positional argument of
``decide`` and ``reset``) and ranks the replica chosen by rendezvous hashing first; other
replicas are not offered, so a busy replica makes the stream wait rather than lose its memory.
When that replica dies, its streams move to the survivors (and start with fresh memory, which the
response's ``memory_steps`` shows).  Requests without a stream id go to any replica.
"""

from __future__ import annotations

import random

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

from serve.traffic import preferred_replica


class StreamAffinityRouter(RequestRouter):
    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True  # retry with backoff, not in a tight loop
        stream = _stream_of(pending_request)
        if stream is None:
            return [[random.choice(candidate_replicas)]]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        chosen = preferred_replica(stream, by_id)
        return [[by_id[chosen]]] if chosen is not None else []


def _stream_of(request: PendingRequest | None) -> str | None:
    if request is None or not request.args:
        return None
    first = request.args[0]
    return first if isinstance(first, str) else None
