"""The Grafana dashboard parses and shows only metrics the service and the trading process export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from serve.monitoring.metrics import TradingMetrics
from serve.service_metrics import ServiceMetrics

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
DASHBOARD = Path(__file__).resolve().parents[2] / "serve" / "grafana" / "mft-dashboard.json"


def exported() -> set[str]:
    """Every series name the two registries can expose (labelled families have no samples until used)."""
    names = set()
    for registry in (ServiceMetrics().registry, TradingMetrics().registry):
        for family in registry.collect():
            suffixes = SUFFIXES.get(family.type, ("",))
            names |= {family.name + suffix for suffix in suffixes}
    return names


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for q in queries for m in re.findall(r"\bmft_[a-z_]+", q)}
    known = exported()
    assert used and used <= known, used - known
    for family in (
        "mft_serve_requests",
        "mft_serve_request_latency_seconds",
        "mft_serve_ensemble_disagreement",
        "mft_serve_model_version_info",
        "mft_equity",
        "mft_drawdown",
        "mft_orders_placed",
        "mft_loop_latency_seconds",
    ):
        assert any(m.startswith(family) for m in used), family
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
