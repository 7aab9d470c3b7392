"""Fixtures of the RLlib tests (the session Ray is in tests/conftest.py)."""
