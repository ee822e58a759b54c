"""Benchmarks reuse the test fixtures: one real control plane per session, the simulator, the operator."""

pytest_plugins = ["tests.conftest"]
