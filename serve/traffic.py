"""Which variant a trading stream meets, and which replica keeps its memory: both by hash of the stream id.

A stream's share point ``u = hash(stream_id) / 2**64`` is fixed, so a stream stays with one
variant for as long as the split is unchanged, and the shares of streams per variant follow the
configured split.  Replicas are chosen by rendezvous (highest random weight) hashing: a stream
keeps its replica while that replica lives, and when one replica goes away only its own streams
move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from features.data.schema import DataError


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def choose_variant(stream_id: str, split: Mapping[str, float]) -> str:
    """The variant of ``split`` (name -> share, summing to 1) that ``stream_id`` is routed to."""
    point = _unit(stream_id)
    cumulative = 0.0
    last = None
    for name, share in split.items():
        if share <= 0:
            continue
        cumulative += share
        last = name
        if point < cumulative:
            return name
    if last is None:
        raise DataError(f"no variant takes traffic in split {dict(split)}")
    return last  # rounding: shares summing to 0.9999999 still cover [0, 1)


def preferred_replica(stream_id: str, replicas: Iterable[str]) -> str | None:
    """The replica id with the highest hash of (replica, stream): stable while it exists."""
    best, best_score = None, -1.0
    for replica in replicas:
        score = _unit(f"{replica}|{stream_id}")
        if score > best_score:
            best, best_score = replica, score
    return best
