"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that two operators never act at once.

The election itself is the official client's (``kubernetes.leaderelection``: acquire, renew every
``retryPeriod``, give up after ``renewDeadline`` without a renewal), on its ``LeaseLock``. What it
lacks is a fence: when a holder is frozen (a long GC pause, SIGSTOP, a partition) past its lease and
wakes up, its renew loop only notices after trying for another ``renewDeadline``, and meanwhile the
rest of the process would go on writing. So this module adds one:

- ``Leadership.may_act()`` is true only while the last successful renewal is younger than
  ``renewDeadline``, measured on the monotonic clock (which runs on while the process is stopped).
  The renew deadline is shorter than the lease, so a holder stops acting before anyone else may take
  the lease. Every write of Phalanx's client asks it first (``kube.Kube(write_guard=...)``).
- A watchdog exits the process (to be restarted by its Deployment) the moment the fence closes while
  it leads, and ``run`` exits when the official loop gives the lease up.
- On SIGTERM the holder closes its fence, then gives the lease back (so the standby takes over at
  once, not after the lease runs out), then exits.

A standby does nothing but try to acquire the lease every ``retryPeriod`` (one GET), serve its
health endpoints and metrics: it watches nothing and writes nothing else.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import kubernetes.client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger("phalanx.leader")


@dataclass(frozen=True)
class ElectionSettings:
    """Where the Lease lives, who this process is, and the election's three durations (seconds)."""

    namespace: str
    name: str = "phalanx"
    identity: str = ""
    lease_duration: int = 15
    """Whole seconds: a Lease holds leaseDurationSeconds as an integer."""
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not (self.retry_period >= 1 and 1.2 * self.retry_period < self.renew_deadline < self.lease_duration):
            raise ValueError(
                "leader election needs 1 <= retryPeriod, 1.2 x retryPeriod < renewDeadline < leaseDuration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration}): a holder must "
                "stop acting before another may take its lease"
            )


def default_identity() -> str:
    """The pod's name (stable across container restarts, so a restarted holder takes its lease back
    at once), else host and process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class _Election(leaderelection.LeaderElection):
    """The official election, telling its owner each time it holds the lease afresh."""

    def __init__(self, config: Any, renewed: Callable[[], None]) -> None:
        super().__init__(config)  # type: ignore[no-untyped-call]
        self._renewed = renewed

    def try_acquire_or_renew(self) -> bool:
        try:
            held = bool(super().try_acquire_or_renew())  # type: ignore[no-untyped-call]
        except Exception:  # the API server away (restarting): not held this time, tried again
            log.warning("could not reach lease %s", self.election_config.lock.name, exc_info=True)
            return False
        if held:
            self._renewed()
        return held


class Leadership:
    """Who leads, and whether this process may act now."""

    def __init__(
        self,
        settings: ElectionSettings,
        api_client: kubernetes.client.ApiClient,
        monotonic: Callable[[], float] = time.monotonic,
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        self.settings = settings
        self.identity = settings.identity or default_identity()
        self.monotonic = monotonic
        self.exit_process = exit_process
        self.lock = LeaseLock(settings.name, settings.namespace, self.identity)  # type: ignore[no-untyped-call]
        self.lock.api_instance = kubernetes.client.CoordinationV1Api(api_client)
        self.renewed_at: float | None = None
        self.leading = threading.Event()
        self.closed = threading.Event()
        """Set for good when this process stopped acting (lost the lease, or is shutting down)."""
        self.on_change: Callable[[bool], None] = lambda leading: None

    # -------------------------------------------------------------------------------- the fence

    def _renewed(self) -> None:
        self.renewed_at = self.monotonic()
        if not self.leading.is_set() and not self.closed.is_set():
            self.leading.set()
            log.info("%s leads: it holds lease %s/%s", self.identity, self.settings.namespace, self.settings.name)
            self.on_change(True)

    def may_act(self) -> bool:
        """True while this process holds the lease and renewed it within renewDeadline."""
        if self.closed.is_set() or not self.leading.is_set() or self.renewed_at is None:
            return False
        return self.monotonic() - self.renewed_at < self.settings.renew_deadline

    def _close(self, why: str) -> None:
        if not self.closed.is_set():
            self.closed.set()
            log.warning("%s stops acting: %s", self.identity, why)
            self.on_change(False)

    def stop_acting(self, why: str, code: int) -> None:
        """Close the fence for good, then exit: a new process starts as a standby."""
        self._close(why)
        self.exit_process(code)

    def watchdog(self, period: float = 0.1) -> None:
        """Exit the moment the fence closes while leading (a frozen holder that wakes up)."""
        while not self.closed.is_set():
            if self.leading.is_set() and not self.may_act():
                self.stop_acting("its lease was not renewed within renewDeadline", 1)
                return
            time.sleep(period)

    # -------------------------------------------------------------------------------- running

    def run(self, on_started_leading: Callable[[], None]) -> None:
        """Block: stand by until the lease is ours, then run ``on_started_leading`` in a thread and
        renew until renewing fails, then exit."""
        config = electionconfig.Config(  # type: ignore[no-untyped-call]
            self.lock,
            self.settings.lease_duration,
            self.settings.renew_deadline,
            self.settings.retry_period,
            on_started_leading,
            lambda: self.stop_acting("it could not renew its lease", 1),
        )
        threading.Thread(target=self.watchdog, name="phalanx-leader-watchdog", daemon=True).start()
        log.info("%s stands by for lease %s/%s", self.identity, self.settings.namespace, self.settings.name)
        _Election(config, self._renewed).run()  # type: ignore[no-untyped-call]

    def release(self) -> None:
        """Give the lease back (only if it is still ours), so that a standby takes over at once."""
        try:
            found, record = self.lock.get(self.settings.name, self.settings.namespace)  # type: ignore[no-untyped-call]
            if not found or record.holder_identity != self.identity:
                return
            lease = self.lock.lease_reference
            if lease is None or lease.spec is None:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.now(UTC)
            self.lock.api_instance.replace_namespaced_lease(self.settings.name, self.settings.namespace, lease)
            log.info("%s gave lease %s/%s back", self.identity, self.settings.namespace, self.settings.name)
        except Exception:  # shutting down: the lease runs out by itself
            log.warning("could not give the lease back", exc_info=True)

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        """Stop acting first, then give the lease back, then exit."""
        was_leading = self.leading.is_set()
        self._close("asked to stop")
        if was_leading:
            self.release()
        self.exit_process(0)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGINT, self.on_sigterm)
