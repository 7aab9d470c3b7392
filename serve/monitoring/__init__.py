"""Monitoring of live trading: structural breaks, data anomalies, performance degradation,
alerts, Prometheus metrics and their configuration."""
