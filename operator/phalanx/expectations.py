"""Expectations: the writes of a store that its watch cache has not shown yet.

Between act and the next observe. The API server answers a create before its watch delivers the new
object, and under load that gap grows to seconds. A store that planned in the gap would see a member
missing that it has just created, and create another one (a duplicate member, an extra volume, a
serial burned), or retire a member again. So every write that succeeded leaves an expectation of
what the cache must show (the object there; gone, terminating or marked retired), and a store does
not plan while one of its expectations is unmet. An expectation also ends after ``TIMEOUT`` (the
object was deleted by someone else before the watch ever showed it, say): the next pass then plans
on what is observed, which is level-triggered and safe, only perhaps redundant.

Pure: the cache is read through a lookup function passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from phalanx import names
from phalanx.plan import (
    Action,
    CreateMember,
    CreatePod,
    DeleteDrill,
    DeletePod,
    DeleteSnapshot,
    DeleteVolume,
    EnsureChild,
    ExpandVolume,
    FinalAction,
    KeepVolume,
    PinVolume,
    RetireMember,
    Snapshot,
    StartDrill,
)
from phalanx.units import Quantity

Obj = Mapping[str, Any]

TIMEOUT = 300.0
"""Seconds after which an unmet expectation is dropped (as Kubernetes' own controllers do)."""

Lookup = Callable[[str, str], Obj | None]
"""(cache kind, object name) -> the cached object of the store's namespace, or None."""
Check = Callable[[Obj | None], bool]


def _present(obj: Obj | None) -> bool:
    return obj is not None


def _gone_or_terminating(uid: str) -> Check:
    def check(obj: Obj | None) -> bool:
        meta = (obj or {}).get("metadata") or {}
        return obj is None or meta.get("uid") != uid or bool(meta.get("deletionTimestamp"))

    return check


def _retired(uid: str) -> Check:
    def check(obj: Obj | None) -> bool:
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return _gone_or_terminating(uid)(obj) or labels.get(names.RETIRED_LABEL) == "true"

    return check


def _asks(size: str) -> Check:
    def check(obj: Obj | None) -> bool:
        requests = (((obj or {}).get("spec") or {}).get("resources") or {}).get("requests") or {}
        if obj is None:
            return True
        try:  # the API server writes quantities back in its own form: 1.5Gi as 1536Mi
            return Quantity(str(requests.get("storage"))) >= Quantity(size)
        except ValueError:
            return False

    return check


def _pinned(obj: Obj | None) -> bool:
    return obj is None or ((obj.get("spec") or {}).get("persistentVolumeReclaimPolicy")) == "Retain"


def _child_is(digest: str | None) -> Check:
    def check(obj: Obj | None) -> bool:
        return obj is not None and (digest is None or str(obj.get("child", "")).endswith(f"#{digest}"))

    return check


@dataclass(frozen=True)
class Expectation:
    """The cache must show ``kind``/``name`` such that ``met`` holds."""

    kind: str
    name: str
    met: Check
    why: str
    since: float


def expected(
    action: Action | FinalAction, now: float, child_digests: Mapping[str, str] | None = None
) -> list[Expectation]:
    """What the cache shows once ``action`` (carried out without error) has come back through the watch."""

    def expect(kind: str, name: str, met: Check, why: str) -> Expectation:
        return Expectation(kind, name, met, why, now)

    match action:
        case CreateMember(member=member):
            return [
                expect("claims", member, _present, f"claim {member} created"),
                expect("pods", member, _present, f"pod {member} created"),
            ]
        case CreatePod(member=member):
            return [expect("pods", member, _present, f"pod {member} created")]
        case DeletePod(member=member, uid=uid):
            return [expect("pods", member, _gone_or_terminating(uid), f"pod {member} deleted")]
        case RetireMember(member=member, pod_uid=pod_uid, claim_uid=claim_uid, delete_volume=delete_volume):
            found = []
            if claim_uid is not None and delete_volume:  # seen retired is not enough: seen going
                found.append(expect("claims", member, _gone_or_terminating(claim_uid), f"claim {member} deleted"))
            elif claim_uid is not None:
                found.append(expect("claims", member, _retired(claim_uid), f"claim {member} retired"))
            if pod_uid is not None:
                found.append(expect("pods", member, _retired(pod_uid), f"pod {member} retired"))
            return found
        case EnsureChild(child=child, name=name):
            kind = "budgets" if child == "disruption-budget" else "services"
            digest = (child_digests or {}).get(f"{child}/{name}")
            return [expect(kind, name, _child_is(digest), f"{child} {name} written")]
        case Snapshot(name=name):
            return [expect("snapshots", name, _present, f"snapshot {name} created")]
        case DeleteSnapshot(name=name, uid=uid):
            return [expect("snapshots", name, _gone_or_terminating(uid), f"snapshot {name} deleted")]
        case ExpandVolume(member=member, size=size):
            return [expect("claims", member, _asks(size), f"claim {member} asks for {size}")]
        case PinVolume(volume=volume):
            return [expect("volumes", volume, _pinned, f"volume {volume} pinned")]
        case StartDrill(name=name, verify=verify):
            found = [expect("claims", name, _present, f"drill claim {name} created")]
            if verify:  # a drill's pod is watched apart (cache kind "drills"): it has no store label
                found.append(expect("drills", name, _present, f"drill pod {name} created"))
            return found
        case DeleteDrill(name=name, pod_uid=pod_uid, claim_uid=claim_uid):
            found = []
            if pod_uid is not None:
                found.append(expect("drills", name, _gone_or_terminating(pod_uid), f"drill pod {name} deleted"))
            if claim_uid is not None:
                found.append(expect("claims", name, _gone_or_terminating(claim_uid), f"drill claim {name} deleted"))
            return found
        case KeepVolume() | DeleteVolume():
            return []  # the finalizer's: it waits for the store's expectations, then plans on the cache
        case _:
            assert_never(action)


class Expectations:
    """Per store, what its writes must still show in the cache."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], list[Expectation]] = {}

    def add(self, store: tuple[str, str], expectations: Iterable[Expectation]) -> None:
        listed = list(expectations)
        if listed:
            self._pending.setdefault(store, []).extend(listed)

    def unmet(self, store: tuple[str, str], lookup: Lookup, now: float) -> tuple[list[Expectation], list[Expectation]]:
        """The store's expectations not met yet, and those just dropped for being older than TIMEOUT."""
        waiting: list[Expectation] = []
        expired: list[Expectation] = []
        for item in self._pending.get(store, []):
            if item.met(lookup(item.kind, item.name)):
                continue
            (expired if now - item.since > TIMEOUT else waiting).append(item)
        if waiting:
            self._pending[store] = waiting
        else:
            self._pending.pop(store, None)
        return waiting, expired

    def forget(self, store: tuple[str, str]) -> None:
        self._pending.pop(store, None)
