"""Serve's HTTP front door (serve/http_proxy.py): HAProxy by default, every listener on the loopback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from features.data.schema import DataError
from serve.config import ServeConfig
from serve.http_proxy import free_port, haproxy_binary, proxy_environment, resolve, write_loopback_wrapper

HAPROXY_CONFIG = """global
    maxconn 100
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend http_frontend
    bind 127.0.0.1:{frontend}
    default_backend replicas
backend replicas
    server replica-1 127.0.0.1:30000 check
frontend prometheus
    bind :{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
listen stats
  bind *:{stats}
  stats enable
"""


def test_the_python_proxy_only_turns_haproxy_off() -> None:
    assert proxy_environment("python", "127.0.0.1") == {"RAY_SERVE_ENABLE_HA_PROXY": "0"}


def test_an_unknown_front_door_is_named() -> None:
    with pytest.raises(DataError, match=r"http_proxy must be one of .* got 'nginx'"):
        resolve("nginx")
    with pytest.raises(DataError, match="http_proxy"):
        ServeConfig.from_dict({"http_proxy": "nginx", "ensembles": {"main": {"members": [{"source": "run"}]}}})


def test_auto_is_the_python_proxy_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    assert resolve("auto") == "python"
    assert resolve("haproxy") == "haproxy"  # asked for explicitly: the operator knows their binary


def test_each_instance_gets_its_own_files_and_ports(tmp_path: Path) -> None:
    if resolve("auto") != "haproxy":
        pytest.skip("no HAProxy binary on this platform")
    first = proxy_environment("haproxy", "127.0.0.1", tmp_path / "a")
    second = proxy_environment("haproxy", "127.0.0.1", tmp_path / "b")
    assert first["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    for key in ("CONFIG_FILE_LOC", "SOCKET_PATH", "SERVER_STATE_FILE", "METRICS_SOCKET_PATH"):
        assert first[f"RAY_SERVE_HAPROXY_{key}"].startswith(str(tmp_path / "a"))
        assert second[f"RAY_SERVE_HAPROXY_{key}"].startswith(str(tmp_path / "b"))
    assert first["RAY_SERVE_HAPROXY_STATS_PORT"] != first["RAY_SERVE_HAPROXY_METRICS_PORT"]
    assert os.access(first["RAY_SERVE_HAPROXY_BINARY_PATH"], os.X_OK)
    # The wrapper is not mistaken for the operator's own binary the next time round.
    os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] = first["RAY_SERVE_HAPROXY_BINARY_PATH"]
    try:
        assert haproxy_binary() != first["RAY_SERVE_HAPROXY_BINARY_PATH"]
    finally:
        del os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"]


def test_an_exposed_host_keeps_haproxy_as_ray_configures_it(tmp_path: Path) -> None:
    if resolve("auto") != "haproxy":
        pytest.skip("no HAProxy binary on this platform")
    assert "RAY_SERVE_HAPROXY_BINARY_PATH" not in proxy_environment("haproxy", "0.0.0.0", tmp_path)


def test_the_wrapper_binds_catch_all_listeners_to_the_host_and_passes_every_argument(tmp_path: Path) -> None:
    recorded = tmp_path / "args.txt"
    fake = tmp_path / "fake-haproxy"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {recorded}\n")
    fake.chmod(0o755)
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(frontend=8000, metrics=9101, stats=8404))
    wrapper = write_loopback_wrapper(tmp_path, "127.0.0.1", str(fake))

    subprocess.run([str(wrapper), "-db", "-f", str(config), "-sf", "4242"], check=True, timeout=10)

    text = config.read_text()
    assert "bind 127.0.0.1:8000" in text
    assert "bind 127.0.0.1:9101" in text
    assert "bind 127.0.0.1:8404" in text
    assert "bind *:" not in text and "bind :" not in text
    assert "server replica-1 127.0.0.1:30000 check" in text
    assert recorded.read_text().split() == ["-db", "-f", str(config), "-sf", "4242"]


def test_real_haproxy_accepts_the_rewritten_config(tmp_path: Path) -> None:
    if resolve("auto") != "haproxy":
        pytest.skip("no HAProxy binary on this platform")
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(frontend=8000, metrics=9101, stats=8404))
    wrapper = write_loopback_wrapper(tmp_path, "127.0.0.1", haproxy_binary())
    checked = subprocess.run([str(wrapper), "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bind 127.0.0.1:8404" in config.read_text()


@pytest.fixture(scope="module")
def bare_service(serve_ray: None) -> Iterator[str]:
    from ray import serve

    from serve.bench_reference import deploy_bare

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield deploy_bare(port)
    finally:
        serve.shutdown()  # Serve keeps the first HTTP port it started with: the next module starts afresh


def test_the_session_service_answers_through_haproxy_listening_only_on_the_loopback(bare_service: str) -> None:
    if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") != "1":
        pytest.skip("this session's Ray runs Serve's Python proxy")
    answer = httpx.post(f"{bare_service}/v1/decide", json={"stream_id": "s", "observation": [0.0, 1.0]}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"stream_id": "s", "action": 0, "size": 2}

    folder = str(Path(os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent)  # Ray adds a node folder
    haproxies = [p for p in psutil.process_iter(["name", "cmdline"])
                 if p.info["name"] == "haproxy" and any(a.startswith(folder) for a in p.info["cmdline"] or [])]
    assert haproxies, "no HAProxy process runs this session's config"
    listening = {(c.laddr.ip, c.laddr.port) for p in haproxies for c in p.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN}
    ports = {port for _, port in listening}
    assert int(bare_service.rsplit(":", 1)[1]) in ports
    assert int(os.environ["RAY_SERVE_HAPROXY_STATS_PORT"]) in ports
    assert {ip for ip, _ in listening} == {"127.0.0.1"}
    # HAProxy forwards to the HTTP server inside the ingress replica (Ray's direct-ingress ports 30000-30999).
    replicas = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("ray::ServeRepli")]
    replica_http = {(c.laddr.ip, c.laddr.port) for p in replicas for c in p.net_connections("inet")
                    if c.status == psutil.CONN_LISTEN and 30000 <= c.laddr.port < 31000}
    assert replica_http and {ip for ip, _ in replica_http} == {"127.0.0.1"}
