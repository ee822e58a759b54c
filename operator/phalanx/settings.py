"""Operator settings, read from the environment once at startup (the Helm chart sets them).

| variable | default | meaning |
|---|---|---|
| ``PHALANX_NAMESPACES`` | empty | comma-separated namespaces to watch; empty watches all |
| ``PHALANX_METRICS_PORT`` | 8080 | Prometheus /metrics port; 0 disables it |
| ``PHALANX_LIVENESS_PORT`` | 8081 | Kopf's /healthz port; 0 disables it |
| ``PHALANX_LOG_FORMAT`` | text | ``text`` or ``json`` |
| ``PHALANX_WORKERS`` | 20 | concurrent handler workers |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    liveness_port: int = 8081
    log_format: str = "text"
    workers: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        log_format = env.get("PHALANX_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ValueError(f"PHALANX_LOG_FORMAT must be text or json, not {log_format!r}")
        return cls(
            namespaces=tuple(n.strip() for n in env.get("PHALANX_NAMESPACES", "").split(",") if n.strip()),
            metrics_port=int(env.get("PHALANX_METRICS_PORT", "8080")),
            liveness_port=int(env.get("PHALANX_LIVENESS_PORT", "8081")),
            log_format=log_format,
            workers=int(env.get("PHALANX_WORKERS", "20")),
        )
