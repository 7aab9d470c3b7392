"""Execution and monitoring: risk limits, the write-ahead journal, the command layer, notifications,
drift and anomaly alerts, and Prometheus metrics; and the policy service (serve/app.py): an ensemble
of trained policies on Ray Serve behind an HTTP API, with ONNX export (docs/serving.md).

This is where MFT touches money, so every building block is written so that
nothing is lost, duplicated or done without permission.  ``serve`` may import
``features``, ``envs`` and ``rl``; nothing imports ``serve``.
"""
