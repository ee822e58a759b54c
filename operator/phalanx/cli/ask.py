"""``pause``, ``resume``, ``snapshot`` and ``replace``: the annotations a store answers, and following
what they started.

Each verb checks first what it can (a target that names no member, a store without snapshots), so
that nothing is asked that Phalanx would only refuse; then sends one JSON merge patch of the store's
``metadata.annotations`` and says what it asked. A token makes each request new (``snapshot`` and
``replace`` are answered once per value), so the same target can be asked again.

``--wait`` follows by polling the API server once a second until a deadline: the snapshot carrying
the token ready (or failed, with its error), the named members gone and the store Ready, or the
rollout done. A store that says ``Stalled=True`` is stuck: waiting longer would not help, so the wait
ends there with its reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from phalanx import kube as k
from phalanx import names
from phalanx.cli.client import CliError, get_store
from phalanx.cli.status import condition, rollout_progress
from phalanx.kube import Kube, Obj

POLL: Final = 1.0
"""Seconds between two looks at the store while waiting."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class Asked:
    """What a verb asked of the store: the annotation patch it sent, and the sentence it printed."""

    annotations: dict[str, str | None]
    said: str
    members: tuple[str, ...] = ()
    """The members a replacement names (for ``--wait``)."""


def token(now: datetime) -> str:
    """A value never used before: the moment (sortable, readable in ``kubectl get -o yaml``) and a
    random suffix (two people asking within the same second)."""
    return f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def where(store: Obj) -> str:
    meta = store["metadata"]
    return f"{meta.get('namespace')}/{meta['name']}"


def annotate(kube: Kube, store: Obj, annotations: dict[str, str | None]) -> Obj:
    """One JSON merge patch of the store's annotations (None removes one)."""
    meta = store["metadata"]
    return kube.patch(k.STORES, meta["name"], {"metadata": {"annotations": annotations}}, meta.get("namespace"))


def pause(kube: Kube, store: Obj) -> Asked:
    asked = Asked(
        {names.ROLLOUT_PAUSED_ANNOTATION: "true"},
        f"{where(store)}: rollouts paused ({names.ROLLOUT_PAUSED_ANNOTATION}=true): "
        "no next step starts; a step in flight completes",
    )
    annotate(kube, store, asked.annotations)
    return asked


def resume(kube: Kube, store: Obj) -> Asked:
    said = f"{where(store)}: rollouts resumed ({names.ROLLOUT_PAUSED_ANNOTATION} removed)"
    if ((store.get("spec") or {}).get("updates") or {}).get("paused"):
        said += "; spec.updates.paused is still true, and holds them until the spec says otherwise"
    asked = Asked({names.ROLLOUT_PAUSED_ANNOTATION: None}, said)
    annotate(kube, store, asked.annotations)
    return asked


def not_acting(store: Obj) -> str | None:
    """Why Phalanx would take no action on the store at all (None: it would)."""
    meta, spec = store.get("metadata") or {}, store.get("spec") or {}
    if meta.get("deletionTimestamp"):
        return "the store is being deleted"
    if spec.get("paused"):
        return "spec.paused is true: Phalanx reports status only"
    return None


def snapshot(kube: Kube, store: Obj, value: str) -> Asked:
    """Ask for a snapshot now, unless Phalanx would not take one (no spec.snapshots, paused)."""
    if not (store.get("spec") or {}).get("snapshots"):
        raise CliError(f"{where(store)} has no spec.snapshots: Phalanx takes no snapshots of it (add spec.snapshots)")
    if reason := not_acting(store):
        raise CliError(f"{where(store)}: {reason}; no snapshot would be taken")
    asked = Asked(
        {names.SNAPSHOT_REQUEST: value}, f"{where(store)}: snapshot requested ({names.SNAPSHOT_REQUEST}={value})"
    )
    annotate(kube, store, asked.annotations)
    return asked


def targets(store: Obj, target: str) -> list[str]:
    """The members a replace target names, as Phalanx reads it (``all``, ``zone/<z>``,
    ``member/<m>``) from the members on record; an error naming what exists when it names none."""
    members = [m for m in (store.get("status") or {}).get("members") or [] if m.get("name")]
    if target == "all":
        chosen = [str(m["name"]) for m in members]
    elif target.startswith("zone/"):
        chosen = [str(m["name"]) for m in members if m.get("zone") == target.removeprefix("zone/")]
    else:
        chosen = [str(m["name"]) for m in members if m["name"] == target.removeprefix("member/")]
    if not chosen:
        zones = sorted({str(m.get("zone")) for m in members})
        listing = f"members: {', '.join(str(m['name']) for m in members)}; zones: {', '.join(zones)}"
        raise CliError(f"{where(store)}: {target} names no member ({listing if members else 'it has no members yet'})")
    return chosen


def replace(kube: Kube, store: Obj, target: str, value: str) -> Asked:
    """Ask for the target's members to be replaced (through the rollout's Replace path)."""
    chosen = targets(store, target)
    if reason := not_acting(store):
        raise CliError(f"{where(store)}: {reason}; nobody would be replaced")
    request = f"{target}#{value}"
    asked = Asked(
        {names.REPLACE_ANNOTATION: request},
        f"{where(store)}: replacement of {', '.join(chosen)} requested ({names.REPLACE_ANNOTATION}={request})",
        tuple(chosen),
    )
    annotate(kube, store, asked.annotations)
    return asked


# ------------------------------------------------------------------------------------------------
# Following


def follow(
    look: Callable[[], tuple[bool, str]],
    timeout: float,
    say: Say,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Look until ``look`` says done (its line is the result), printing each new progress line; at
    the deadline, fail with the last. ``look`` raises ``CliError`` when waiting cannot help."""
    deadline = clock() + timeout
    last = ""
    while True:
        done, line = look()
        if done:
            return line
        if line != last:
            say(f"  {line}")
            last = line
        if clock() >= deadline:
            raise CliError(f"gave up after {timeout:g}s: {last}")
        sleep(POLL)


def stuck(store: Obj) -> None:
    """Raise when the store says it cannot converge (``Stalled=True``): waiting would not help."""
    stalled = condition(store, "Stalled")
    if stalled.get("status") == "True":
        raise CliError(f"{where(store)} is stuck: Stalled=True ({stalled.get('reason')}): {stalled.get('message')}")


def settled(store: Obj) -> bool:
    """Ready for its current generation, every member there, ready and at the update revision, and
    no rollout in flight."""
    meta, spec, status = store["metadata"], store.get("spec") or {}, store.get("status") or {}
    desired = spec.get("replicas")
    return (
        status.get("observedGeneration") == meta.get("generation")
        and condition(store, "Ready").get("status") == "True"
        and not status.get("rollout")
        and status.get("replicas") == desired
        and status.get("readyReplicas") == desired
        and status.get("updatedReplicas") == desired
    )


def rollout_line(status: dict[str, Any]) -> str:
    """The rollout in a line: progress, step, what it waits for."""
    rollout = status.get("rollout")
    if not rollout:
        return f"{status.get('readyDisplay') or '?'} ready, phase {status.get('phase') or '?'}"
    parts = [f"rollout {rollout_progress(rollout)} updated"]
    if rollout.get("paused"):
        parts.append("paused")
    if rollout.get("step"):
        parts.append(f"step {rollout['step']}")
    if rollout.get("waitingFor"):
        parts.append(f"waiting for {rollout['waitingFor']}")
    return ", ".join(parts)


def snapshot_taken(kube: Kube, store: Obj, value: str) -> Callable[[], tuple[bool, str]]:
    """A look for ``follow``: the snapshot carrying the request ready, or failed (raises)."""
    meta = store["metadata"]
    selector = f"{names.STORE_LABEL}={meta['name']}"

    def look() -> tuple[bool, str]:
        found = [
            s
            for s in kube.items(k.SNAPSHOTS, meta.get("namespace"), selector)
            if (s["metadata"].get("annotations") or {}).get(names.SNAPSHOT_REQUEST) == value
        ]
        if not found:
            current = get_store(kube, meta["name"], meta.get("namespace", ""))
            fresh = condition(current, "SnapshotsFresh")
            said = f" (SnapshotsFresh: {fresh.get('message')})" if fresh.get("message") else ""
            return False, f"waiting for Phalanx to take the snapshot{said}"
        snap = found[0]
        name, status = snap["metadata"]["name"], snap.get("status") or {}
        if status.get("readyToUse"):
            size = f", {status['restoreSize']}" if status.get("restoreSize") else ""
            return True, f"snapshot {name} is ready to use (taken {status.get('creationTime') or '?'}{size})"
        if (status.get("error") or {}).get("message"):
            raise CliError(f"snapshot {name} failed: {status['error']['message']}")
        return False, f"snapshot {name} taken, not ready to use yet"

    return look


def members_replaced(kube: Kube, store: Obj, value: str, named: tuple[str, ...]) -> Callable[[], tuple[bool, str]]:
    """A look for ``follow``: the request answered, its members gone, the store settled; raises when
    the store is stuck."""
    meta = store["metadata"]

    def look() -> tuple[bool, str]:
        current = get_store(kube, meta["name"], meta.get("namespace", ""))
        stuck(current)
        status = current.get("status") or {}
        request = status.get("replaceRequest") or {}
        live = {str(m.get("name")) for m in status.get("members") or []}
        if request.get("request") != value:
            return False, "waiting for Phalanx to answer the request"
        gone = [m for m in named if m not in live]
        done = not request.get("members") and len(gone) == len(named) and settled(current)
        return done, f"{len(gone)}/{len(named)} replaced; {rollout_line(status)}"

    return look


def rolled_out(kube: Kube, store: Obj) -> Callable[[], tuple[bool, str]]:
    """A look for ``follow``: no rollout left and the store settled; raises when stuck, or when the
    spec itself holds rollouts (``spec.updates.paused``), which no annotation can lift."""
    meta = store["metadata"]

    def look() -> tuple[bool, str]:
        current = get_store(kube, meta["name"], meta.get("namespace", ""))
        stuck(current)
        if ((current.get("spec") or {}).get("updates") or {}).get("paused"):
            raise CliError(f"{where(current)}: spec.updates.paused is true: the rollout waits for the spec")
        status = current.get("status") or {}
        return settled(current), rollout_line(status)

    return look
