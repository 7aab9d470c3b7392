"""Fixtures of the sweep tests (the session Ray is in tests/conftest.py)."""
