"""Watching a resource in a test: every transition, not a poll's samples.

An invariant such as "never fewer than N ready members" must be checked on every state the API
server went through; a poll every 50 ms misses a dip shorter than that.
"""

from __future__ import annotations

import threading
import time

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj


class Watcher:
    """Every event of one resource from a known version on, in a thread, for a bounded time.

    The watch is resumed from the last version seen every two seconds, so that ``stop`` returns
    promptly and no event between two watches is missed; an ERROR event (version too old) fails.
    """

    def __init__(
        self, kube: Kube, resource: k.Resource, namespace: str, selector: str | None = None, limit: float = 90
    ) -> None:
        listing = kube.listing(resource, namespace, selector)
        self.kube, self.resource, self.namespace, self.selector = kube, resource, namespace, selector
        self.initial: list[Obj] = listing.get("items") or []
        self.version = str(listing["metadata"]["resourceVersion"])
        self.events: list[tuple[str, Obj]] = []
        self.error: BaseException | None = None
        self.deadline = time.monotonic() + limit
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                stream = self.kube.watch(
                    self.resource, self.version, timeout_seconds=2, namespace=self.namespace, selector=self.selector
                )
                for kind, obj in stream:
                    if kind == "ERROR":
                        raise AssertionError(f"the watch broke: {obj}")
                    self.version = str(obj["metadata"]["resourceVersion"])
                    if kind != "BOOKMARK":
                        self.record(kind, obj)
        except BaseException as error:
            self.error = error

    def record(self, kind: str, obj: Obj) -> None:
        """Keep one event (a subclass may note more about it, such as when it was read)."""
        self.events.append((kind, obj))

    def stop(self) -> list[tuple[str, Obj]]:
        """Stop now; every event seen."""
        self.stopping.set()
        return self._joined()

    def run_out(self) -> list[tuple[str, Obj]]:
        """Watch until the bounded time is over; every event seen."""
        return self._joined()

    def _joined(self) -> list[tuple[str, Obj]]:
        self.thread.join(timeout=max(0.0, self.deadline - time.monotonic()) + 15)
        assert not self.thread.is_alive(), "the watch did not end"
        if self.error is not None:
            raise self.error
        return list(self.events)


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def serving(pods: dict[str, Obj]) -> int:
    """Member pods that are ready, not terminating and not of a retired member."""
    return sum(
        1
        for p in pods.values()
        if _ready(p)
        and not p["metadata"].get("deletionTimestamp")
        and (p["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) != "true"
    )


def lowest_ready(initial: list[Obj], events: list[tuple[str, Obj]]) -> int:
    """The fewest serving pods at any moment, replaying every event from the initial list."""
    state = {p["metadata"]["name"]: p for p in initial}
    lowest = serving(state)
    for kind, pod in events:
        if kind == "DELETED":
            state.pop(pod["metadata"]["name"], None)
        else:
            state[pod["metadata"]["name"]] = pod
        lowest = min(lowest, serving(state))
    return lowest


def budget_breaches(initial: list[Obj], events: list[tuple[str, Obj]], replicas: int, per_zone: int) -> list[str]:
    """Every moment a rollout broke its budget, replaying every pod event from the initial list.

    Each zone should serve as many members as it did at the start; a zone short of that is out. A
    breach: members out in two zones at once, more out in one zone than ``per_zone``, or no majority
    of ``replicas`` serving. A Replace step adds a member before one goes, so it is never short."""
    state = {p["metadata"]["name"]: p for p in initial}

    def per_zone_serving(pods: dict[str, Obj]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in pods.values():
            if serving({"_": pod}):
                zone = (pod["metadata"].get("labels") or {}).get(names.ZONE_LABEL, "")
                counts[zone] = counts.get(zone, 0) + 1
        return counts

    target = per_zone_serving(state)
    found = []
    for index, (kind, pod) in enumerate(events):
        if kind == "DELETED":
            state.pop(pod["metadata"]["name"], None)
        else:
            state[pod["metadata"]["name"]] = pod
        now = per_zone_serving(state)
        short = {z: n - now.get(z, 0) for z, n in target.items() if now.get(z, 0) < n}
        total = sum(now.values())
        if len(short) > 1 or any(n > per_zone for n in short.values()) or total * 2 <= replicas:
            found.append(f"event {index} ({kind} {pod['metadata']['name']}): {total} serving, short {short}")
    return found
