"""Prometheus metrics of the policy service, in a registry of their own (scraped at ``/metrics``).

Metric names and labels (counters gain ``_total`` in the exposition)::

    mft_serve_requests_total            counter    endpoint, outcome (ok, client_error, server_error)
    mft_serve_request_latency_seconds   histogram  endpoint, outcome
    mft_serve_decisions_total           counter    variant, role (live, shadow)
    mft_serve_ensemble_latency_seconds  histogram  variant, role: time inside the ensemble replica
    mft_serve_ensemble_disagreement     histogram  variant, role: weight share of members against the action
    mft_serve_member_errors_total       counter    variant, member
    mft_serve_fallbacks_total           counter    variant, baseline
    mft_serve_model_version_info        gauge      variant, role, member, version: 1 per version answering
    mft_serve_shadow_agreement_total    counter    variant, agreed (true, false): shadow vs live decision
    mft_serve_paper_log_return          gauge      variant, role: would-be log return summed over streams
    mft_serve_variant_unavailable_total counter    variant, role: decisions a variant did not answer
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DISAGREEMENT_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def outcome(status: int) -> str:
    return "ok" if status < 400 else "client_error" if status < 500 else "server_error"


class ServiceMetrics:
    """The service's metrics; see the module docstring for names and labels."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "mft_serve") -> None:
        self.registry = registry or CollectorRegistry()
        reg: dict[str, Any] = {"registry": self.registry, "namespace": namespace}
        self.requests = Counter("requests", "HTTP requests answered", ["endpoint", "outcome"], **reg)
        self.latency = Histogram(
            "request_latency_seconds",
            "HTTP request latency inside the service",
            ["endpoint", "outcome"],
            buckets=LATENCY_BUCKETS,
            **reg,
        )
        self.decisions = Counter("decisions", "Ensemble decisions", ["variant", "role"], **reg)
        self.ensemble_latency = Histogram(
            "ensemble_latency_seconds",
            "Time inside the ensemble replica",
            ["variant", "role"],
            buckets=LATENCY_BUCKETS,
            **reg,
        )
        self.disagreement = Histogram(
            "ensemble_disagreement",
            "Weight share of members against the ensemble",
            ["variant", "role"],
            buckets=DISAGREEMENT_BUCKETS,
            **reg,
        )
        self.member_errors = Counter(
            "member_errors", "Members that failed on a decision", ["variant", "member"], **reg
        )
        self.fallbacks = Counter(
            "fallbacks", "Decisions taken by the fallback", ["variant", "baseline"], **reg
        )
        self.versions = Gauge(
            "model_version_info",
            "Model versions that answered",
            ["variant", "role", "member", "version"],
            **reg,
        )
        self.shadow_agreement = Counter(
            "shadow_agreement", "Shadow decision equal to the live one", ["variant", "agreed"], **reg
        )
        self.paper = Gauge(
            "paper_log_return",
            "Cumulative would-be log return, summed over streams",
            ["variant", "role"],
            **reg,
        )
        self.unavailable = Counter(
            "variant_unavailable", "Decisions a variant did not answer", ["variant", "role"], **reg
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        kind = outcome(status)
        self.requests.labels(endpoint=endpoint, outcome=kind).inc()
        self.latency.labels(endpoint=endpoint, outcome=kind).observe(seconds)

    def observe_decision(self, answer: Mapping[str, Any]) -> None:
        """Record one successful ensemble answer (a dict from EnsembleService.decide)."""
        variant, role = str(answer["variant"]), str(answer["role"])
        self.decisions.labels(variant=variant, role=role).inc()
        self.disagreement.labels(variant=variant, role=role).observe(float(answer["disagreement"]))
        if "service_ms" in answer:
            self.ensemble_latency.labels(variant=variant, role=role).observe(
                float(answer["service_ms"]) / 1e3
            )
        for member in answer["members"]:
            if member["error"] is not None:
                self.member_errors.labels(variant=variant, member=member["member"]).inc()
            else:
                self.versions.labels(
                    variant=variant, role=role, member=member["member"], version=member["version"]
                ).set(1.0)
        if answer.get("fallback") and answer["fallback"].get("baseline"):
            self.fallbacks.labels(variant=variant, baseline=answer["fallback"]["baseline"]).inc()
        if answer.get("paper"):
            self.paper.labels(variant=variant, role=role).inc(float(answer["paper"]["step_log_return"]))

    def observe_shadow(self, variant: str, agreed: bool) -> None:
        self.shadow_agreement.labels(variant=variant, agreed=str(agreed).lower()).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
