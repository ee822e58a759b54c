"""Operator settings, read from the environment once at startup (the Helm chart sets them).

| variable | default | meaning |
|---|---|---|
| ``PHALANX_NAMESPACES`` | empty | comma-separated namespaces to watch; empty watches all |
| ``PHALANX_METRICS_PORT`` | 8080 | Prometheus /metrics port; 0 disables it |
| ``PHALANX_LIVENESS_PORT`` | 8081 | probes: /healthz, /readyz (either role), /leader (leader only); 0: none |
| ``PHALANX_LOG_FORMAT`` | text | ``text`` or ``json`` |
| ``PHALANX_API_THREADS`` | 16 | threads (and pooled connections) that send writes to the API server |
| ``PHALANX_LEADER_ELECTION`` | true | run only while holding a Lease, so that replicas never act at once |
| ``PHALANX_LEASE_NAMESPACE`` | ``POD_NAMESPACE``, else ``default`` | where the Lease lives |
| ``PHALANX_LEASE_NAME`` | phalanx | the Lease's name |
| ``PHALANX_IDENTITY`` | ``POD_NAME``, else host-pid | who holds the Lease |
| ``PHALANX_LEASE_DURATION`` | 15 | seconds a standby waits after the last renewal it saw before taking over |
| ``PHALANX_RENEW_DEADLINE`` | 10 | seconds without a renewal after which the holder stops acting and exits |
| ``PHALANX_RETRY_PERIOD`` | 2 | seconds between two renewals (or two tries of a standby) |
| ``PHALANX_RESTORE_RATE`` | 200Mi | bytes a second a snapshot is restored at (predicted recovery time) |
| ``PHALANX_CATCHUP_RATE`` | 50Mi | bytes a second a new member copies from its peers (predicted recovery time) |
| ``PHALANX_NODE_HEARTBEATS`` | true | a node whose Lease stopped being renewed is NotReady at once (``heartbeats``) |

There is no limit on how many stores are reconciled at once: each store has its own loop, and what
they share is the API threads. (``PHALANX_WORKERS``, which capped Kopf's per-kind workers and could
deadlock the operator in a cluster with more objects of a kind than workers, is gone; setting it only
logs a warning.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from phalanx.leader import ElectionSettings
from phalanx.plan.reliability import DEFAULT_RATES, Rates
from phalanx.units import Quantity

RETIRED = ("PHALANX_WORKERS",)
"""Settings that no longer mean anything: the operator warns when one is set."""


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    liveness_port: int = 8081
    log_format: str = "text"
    api_threads: int = 16
    node_heartbeats: bool = True
    rates: Rates = DEFAULT_RATES
    election: ElectionSettings | None = None
    """None: leader election is off (one operator, or a test that wants none)."""
    retired: tuple[str, ...] = ()
    """Retired settings found in the environment (to warn about)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        log_format = env.get("PHALANX_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ValueError(f"PHALANX_LOG_FORMAT must be text or json, not {log_format!r}")
        api_threads = int(env.get("PHALANX_API_THREADS", "16"))
        if api_threads < 1:
            raise ValueError(f"PHALANX_API_THREADS must be at least 1, not {api_threads}")
        election = None
        if env.get("PHALANX_LEADER_ELECTION", "true").strip().lower() not in ("false", "0", "no", "off"):
            election = ElectionSettings(
                namespace=env.get("PHALANX_LEASE_NAMESPACE") or env.get("POD_NAMESPACE") or "default",
                name=env.get("PHALANX_LEASE_NAME") or "phalanx",
                identity=env.get("PHALANX_IDENTITY") or env.get("POD_NAME") or "",
                lease_duration=int(env.get("PHALANX_LEASE_DURATION", "15")),
                renew_deadline=float(env.get("PHALANX_RENEW_DEADLINE", "10")),
                retry_period=float(env.get("PHALANX_RETRY_PERIOD", "2")),
            )
        rates = Rates(
            restore=float(Quantity(env.get("PHALANX_RESTORE_RATE", "200Mi")).bytes),
            catch_up=float(Quantity(env.get("PHALANX_CATCHUP_RATE", "50Mi")).bytes),
        )
        if rates.restore <= 0 or rates.catch_up <= 0:
            raise ValueError("PHALANX_RESTORE_RATE and PHALANX_CATCHUP_RATE must be positive quantities")
        return cls(
            rates=rates,
            node_heartbeats=env.get("PHALANX_NODE_HEARTBEATS", "true").strip().lower()
            not in ("false", "0", "no", "off"),
            election=election,
            namespaces=tuple(n.strip() for n in env.get("PHALANX_NAMESPACES", "").split(",") if n.strip()),
            metrics_port=int(env.get("PHALANX_METRICS_PORT", "8080")),
            liveness_port=int(env.get("PHALANX_LIVENESS_PORT", "8081")),
            log_format=log_format,
            api_threads=api_threads,
            retired=tuple(name for name in RETIRED if name in env),
        )
