"""Phalanx: a Kubernetes operator for replicated stateful stores (see README.md and design notes)."""
