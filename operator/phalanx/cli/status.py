"""``kubectl phalanx status``: a store at a glance, and every store of a namespace in a line each.

Rendered from the store as the API server returns it (raw dicts, every field optional), not through
the status model: a plugin older or newer than the operator still shows what it finds. The clock is
passed in, and colour and tree lines are a ``Style``, so that the output is a pure function of the
store and the moment (the golden tests rely on it).

One more thing the status cannot say by itself: whether anyone is writing it. ``operator_silence``
warns when the operator has not answered the store for a while.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from phalanx.kube import Obj

SILENCE: Final = timedelta(seconds=60)
"""How long a store may wait for the operator's first status, or for its status to catch up with a
new generation, before ``status`` warns that the operator may not be running."""
AT_REST: Final = {"Ready": "True", "Reconciling": "False", "Stalled": "False", "Degraded": "False"}
"""Conditions' status on a store at rest (as ``phalanx.dryrun``'s, plus: any other type True, but
ForeignObjects, which is alarming when True)."""
_BAD_WHEN_TRUE: Final = frozenset({"Stalled", "Degraded", "ForeignObjects"})
_PHASE_COLOUR: Final = {
    "Ready": "green",
    "Pending": "yellow",
    "Recovering": "yellow",
    "Updating": "yellow",
    "Paused": "yellow",
    "Deleting": "yellow",
    "Degraded": "red",
    "Invalid": "red",
}
_STATE_COLOUR: Final = {
    "Ready": "green",
    "Pending": "yellow",
    "Restoring": "yellow",
    "Starting": "yellow",
    "Retiring": "yellow",
    "Unavailable": "red",
    "Lost": "red",
}
_ANSI: Final = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2"}


@dataclass(frozen=True)
class Style:
    """How text is drawn: tree lines and colour on a terminal, indentation only when piped."""

    tree: bool = False
    colour: bool = False

    def paint(self, text: str, colour: str | None) -> str:
        if not self.colour or not colour or not text:
            return text
        return f"\x1b[{_ANSI[colour]}m{text}\x1b[0m"


PLAIN: Final = Style()
TERMINAL: Final = Style(tree=True, colour=True)


Cell = tuple[str, str | None]
"""A table cell: its text and its colour (None: none)."""


@dataclass
class Node:
    """One line of the tree, and the lines under it."""

    text: str
    children: list[Node] = field(default_factory=list)


def draw(nodes: Sequence[Node], style: Style, prefix: str = "") -> list[str]:
    """The lines of a tree: box-drawing branches with ``style.tree``, else two spaces a level."""
    lines: list[str] = []
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        if style.tree:
            lines.append(prefix + ("└── " if last else "├── ") + node.text)
            lines += draw(node.children, style, prefix + ("    " if last else "│   "))
        else:
            lines.append(prefix + "  " + node.text)
            lines += draw(node.children, style, prefix + "  ")
    return lines


def columns(rows: Sequence[Sequence[Cell]], style: Style) -> list[str]:
    """Rows with their cells padded to each column's width (the last column not padded), then
    painted: colour codes never count as width."""
    widths = [max((len(row[i][0]) for row in rows if i < len(row)), default=0) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        cells = []
        for index, (text, colour) in enumerate(row):
            pad = "" if index == len(row) - 1 else " " * (widths[index] - len(text))
            cells.append(style.paint(text, colour) + pad)
        lines.append("  ".join(cells).rstrip())
    return lines


# ------------------------------------------------------------------------------------------------
# Time


def parse_time(value: Any) -> datetime | None:
    """An API timestamp (RFC 3339, ``Z`` or an offset, with or without fractions), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def human(seconds: float) -> str:
    """A duration as kubectl prints ages: 45s, 3m20s, 47m, 5h10m, 30h, 4d2h, 120d, 3y."""
    s = max(0, int(seconds))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    return f"{days // 365}y"


def age(value: Any, now: datetime) -> str | None:
    """How long ago a timestamp was (``in ...`` for one in the future), or None."""
    moment = parse_time(value)
    if moment is None:
        return None
    delta = (now - moment).total_seconds()
    return human(delta) if delta >= 0 else f"in {human(-delta)}"


def size(count: Any) -> str:
    """Bytes as a Kubernetes binary quantity, rounded down to one decimal: 2Gi, 1.5Ti."""
    value = float(count or 0)
    for unit in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        scale = 1024.0 ** ("KMGTPE".index(unit[0]) + 1)
        if value >= scale:
            shown = int(value / scale * 10) / 10
            return f"{shown:g}{unit}"
    return f"{int(value)}"


# ------------------------------------------------------------------------------------------------
# What the status cannot say by itself


def spec_changed_at(metadata: Mapping[str, Any]) -> datetime | None:
    """When someone last wrote the spec, as far as ``managedFields`` tell: the newest time of a
    manager that owns spec fields (the operator never writes spec). None when there is no record."""
    times = [
        moment
        for entry in metadata.get("managedFields") or []
        if "f:spec" in (entry.get("fieldsV1") or {})
        and entry.get("subresource") != "status"
        and (moment := parse_time(entry.get("time"))) is not None
    ]
    return max(times, default=None)


def operator_silence(store: Obj, now: datetime) -> str | None:
    """A warning when the operator has not answered the store for longer than ``SILENCE``: no status
    at all on a store older than that, or ``observedGeneration`` behind ``generation`` that long
    since the spec changed. None while it answers (or has had no time to)."""
    meta = store.get("metadata") or {}
    status = store.get("status") or {}
    created = parse_time(meta.get("creationTimestamp"))
    observed, generation = status.get("observedGeneration"), meta.get("generation")
    hint = "is the Phalanx operator running? (kubectl get pods -A -l app.kubernetes.io/name=phalanx)"
    if observed is None:
        if created is not None and now - created > SILENCE:
            return (
                f"no status from Phalanx {human((now - created).total_seconds())} after the store was created: {hint}"
            )
        return None
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        since = spec_changed_at(meta) or created
        if since is not None and now - since > SILENCE:
            return (
                f"status describes generation {observed}, the spec is at {generation} since "
                f"{human((now - since).total_seconds())} ago: {hint}"
            )
    return None


# ------------------------------------------------------------------------------------------------
# One store


def condition(store: Obj, kind: str) -> Obj:
    """The store's condition of this type ({} when it has none)."""
    for entry in (store.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def condition_colour(kind: str, status: str) -> str:
    """Green when the condition is as on a store at rest, red when it says something is wrong,
    yellow when it says something is under way."""
    rest = AT_REST.get(kind, "False" if kind in _BAD_WHEN_TRUE else "True")
    if status == rest:
        return "green"
    if status == "Unknown" or kind == "Reconciling":
        return "yellow"
    return "red"


def rollout_progress(rollout: Mapping[str, Any]) -> str:
    """``updated/total``: the members past the gate on the new revision, of all to update."""
    updated = len(rollout.get("updated") or [])
    total = rollout.get("total") or updated + len(rollout.get("inFlight") or []) + len(rollout.get("pending") or [])
    done = rollout.get("replaced", updated) if rollout.get("total") else updated
    return f"{done}/{total}"


def document(store: Obj) -> dict[str, Any]:
    """What ``-o json|yaml`` prints: the store's name and namespace, and its status as the API has it."""
    meta = store.get("metadata") or {}
    return {"name": meta.get("name"), "namespace": meta.get("namespace"), "status": store.get("status") or {}}


def _headline(store: Obj, style: Style) -> str:
    meta, spec, status = store.get("metadata") or {}, store.get("spec") or {}, store.get("status") or {}
    phase = status.get("phase") or "Unknown"
    parts = [
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', '?')} ready",
        f"zones {status.get('zonesDisplay') or '-'}",
    ]
    if status.get("updateRevision"):
        parts.append(f"revision {status['updateRevision']}")
    observed = status.get("observedGeneration")
    generation = meta.get("generation")
    parts.append(f"generation {generation}" + (" (observed)" if observed == generation else f" (status at {observed})"))
    name = style.paint(f"{meta.get('namespace')}/{meta.get('name')}", "bold")
    return f"{name}: {style.paint(phase, _PHASE_COLOUR.get(phase))}, " + ", ".join(parts)


def _conditions(status: Mapping[str, Any], now: datetime, style: Style) -> Node:
    entries = status.get("conditions") or []
    if not entries:
        return Node("conditions: none yet")
    rows: list[list[Cell]] = []
    for entry in entries:
        kind, value = str(entry.get("type", "?")), str(entry.get("status", "?"))
        since = age(entry.get("lastTransitionTime"), now) or "-"
        reason, message = entry.get("reason") or "", entry.get("message") or ""
        rows.append(
            [(kind, None), (value, condition_colour(kind, value)), (since, None), (f"{reason}: {message}", None)]
        )
    return Node("conditions", [Node(line) for line in columns(rows, style)])


def _zones(store: Obj, now: datetime, style: Style) -> Node:
    status = store.get("status") or {}
    members = status.get("members") or []
    zones = {str(z.get("name")): z for z in status.get("zones") or []}
    for member in members:
        zones.setdefault(str(member.get("zone")), {"name": member.get("zone")})
    if not zones:
        return Node("zones: none yet")
    rows: list[list[Cell]] = []
    for member in members:
        state = str(member.get("state") or "?")
        row: list[Cell] = [
            (str(member.get("name")), None),
            (state, _STATE_COLOUR.get(state)),
            (f"node {member.get('node') or '-'}", None),
            (f"volume {member.get('volume') or '-'}", None),
            (f"revision {member.get('revision') or '-'}", None),
            (f"since {age(member.get('since'), now) or '-'}", None),
        ]
        if member.get("seededFrom"):
            row.append((f"seeded from {member['seededFrom']}", None))
        rows.append(row)
    lines = dict(zip((str(m.get("name")) for m in members), columns(rows, style), strict=True)) if rows else {}
    nodes = []
    for name in sorted(zones):
        zone = zones[name]
        text = f"{name}  {zone.get('ready', 0)}/{zone.get('members', 0)} ready"
        if zone.get("downSince"):
            text += "  " + style.paint(f"no ready node for {age(zone['downSince'], now)}", "red")
        elif zone.get("returnedAt"):
            text += f"  back {age(zone['returnedAt'], now)} ago"
        in_zone = [Node(lines[str(m.get("name"))]) for m in members if str(m.get("zone")) == name]
        nodes.append(Node(text, in_zone))
    return Node("zones", nodes)


def _snapshots(store: Obj, now: datetime, style: Style) -> Node:
    spec, found = store.get("spec") or {}, (store.get("status") or {}).get("snapshots")
    if not spec.get("snapshots") and not found:
        return Node("snapshots: none (spec.snapshots is not set)")
    if not found or not found.get("latest"):
        text = "none ready yet"
    else:
        when = age(found.get("latestTime"), now)
        text = f"newest {found['latest']}" + (f" ({when} ago)" if when else "")
    text += f", {found.get('count', 0) if found else 0} kept"
    failures = int((found or {}).get("failures") or 0)
    failed = f"{failures} failed in a row" + (
        f" (last {found['lastFailure']})" if found and found.get("lastFailure") else ""
    )
    text += ", " + (style.paint(failed, "red") if failures else "no failures")
    return Node("snapshots", [Node(text)])


def _recovery(status: Mapping[str, Any], now: datetime) -> Node | None:
    last = status.get("lastRecovery")
    if not last:
        return None
    text = f"{last.get('member')} ({last.get('reason')})"
    if last.get("replacement"):
        text += f", replaced by {last['replacement']}"
    source = str(last.get("source") or "?")
    text += f", from {source}" + (f" {last['snapshot']}" if last.get("snapshot") else "")
    if last.get("seconds") is not None:
        text += f", in {float(last['seconds']):.1f} s"
    else:
        text += f", in progress for {age(last.get('startedAt'), now) or '?'}"
    started = age(last.get("startedAt"), now)
    if started and last.get("seconds") is not None:
        text += f", {started} ago"
    return Node("last recovery", [Node(text)])


def _rollout(status: Mapping[str, Any], now: datetime, style: Style) -> Node:
    rollout = status.get("rollout")
    if not rollout:
        revision = status.get("updateRevision")
        return Node("rollout: none in flight" + (f" (every member at {revision})" if revision else ""))
    head = f"revision {rollout.get('revision') or '?'}"
    if rollout.get("strategy"):
        head += f" ({rollout['strategy']})"
    head += f", {rollout_progress(rollout)} updated"
    lines: list[Node] = [Node(head)]
    if rollout.get("halted"):
        lines.append(Node(style.paint(f"halted: {rollout['halted']}", "red")))
    if rollout.get("paused"):
        lines.append(Node(style.paint("paused: the next step waits (rollout-paused annotation or spec)", "yellow")))
    if rollout.get("step"):
        step = f"step {rollout['step']}"
        if rollout.get("stepStartedAt"):
            step += f", started {age(rollout['stepStartedAt'], now)} ago"
        lines.append(Node(step))
    elif rollout.get("zone"):
        lines.append(Node(f"next step in {rollout['zone']}"))
    if rollout.get("inFlight"):
        lines.append(Node("in flight: " + ", ".join(rollout["inFlight"])))
    if rollout.get("waitingFor"):
        lines.append(Node(f"waiting for: {rollout['waitingFor']}"))
    if rollout.get("updated"):
        lines.append(Node("updated: " + ", ".join(rollout["updated"])))
    if rollout.get("pending"):
        lines.append(Node("pending: " + ", ".join(rollout["pending"])))
    if rollout.get("steps"):
        lines.append(Node("steps to come", [Node(step) for step in rollout["steps"]]))
    return Node("rollout", lines)


def _replace_request(status: Mapping[str, Any]) -> Node | None:
    request = status.get("replaceRequest")
    if not request:
        return None
    left = request.get("members") or []
    text = f"{request.get('request')}: " + (f"{', '.join(left)} still to replace" if left else "done")
    return Node("replace request", [Node(text)])


def _retired(status: Mapping[str, Any], now: datetime) -> Node:
    retired = status.get("retiredVolumes")
    if not retired or not retired.get("count"):
        return Node("retired volumes: none kept")
    text = f"{retired['count']} kept ({size(retired.get('bytes'))})"
    if retired.get("nextDeletion"):
        when = age(retired["nextDeletion"], now)
        text += f", next deletion {when if when and when.startswith('in ') else f'due ({when} ago)'}"
    return Node("retired volumes", [Node(text)])


def render(store: Obj, now: datetime, style: Style = PLAIN) -> str:
    """The store for a person: the headline, a warning when the operator seems not to answer, then
    conditions, zones with their members, snapshots, the last recovery, the rollout, the last replace
    request and the retired volumes kept."""
    status = store.get("status") or {}
    lines = [_headline(store, style)]
    silence = operator_silence(store, now)
    if silence:
        lines.append(style.paint(f"warning: {silence}", "red"))
    sections = [
        _conditions(status, now, style),
        _zones(store, now, style),
        _snapshots(store, now, style),
        _recovery(status, now),
        _rollout(status, now, style),
        _replace_request(status),
        _retired(status, now),
    ]
    for section in sections:
        if section is None:
            continue
        lines.append(style.paint(section.text, "bold") if section.children else section.text)
        lines += draw(section.children, style)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Every store of a namespace


def health(store: Obj, now: datetime) -> dict[str, str]:
    """One store's line: ready/desired, zones, phase, the newest snapshot's age, the rollout's
    progress, and a note when something needs a person (the operator silent, Stalled)."""
    meta, spec, status = store.get("metadata") or {}, store.get("spec") or {}, store.get("status") or {}
    rollout = status.get("rollout")
    progress = "-"
    if rollout:
        progress = rollout_progress(rollout)
        progress += " halted" if rollout.get("halted") else " paused" if rollout.get("paused") else ""
    notes = []
    silence = operator_silence(store, now)
    if silence:
        notes.append("operator not answering")
    stalled = condition(store, "Stalled")
    if stalled.get("status") == "True":
        notes.append(f"Stalled: {stalled.get('reason')}")
    snapshot = age((status.get("snapshots") or {}).get("latestTime"), now)
    return {
        "namespace": str(meta.get("namespace", "")),
        "name": str(meta.get("name", "")),
        "ready": f"{status.get('readyReplicas', 0)}/{spec.get('replicas', '?')}",
        "zones": str(status.get("zonesDisplay") or "-"),
        "phase": str(status.get("phase") or "-"),
        "snapshot": snapshot or "-",
        "rollout": progress,
        "note": "; ".join(notes),
    }


def render_list(stores: Sequence[Obj], now: datetime, all_namespaces: bool, style: Style = PLAIN) -> str:
    """A table of stores, one line each (with a NAMESPACE column for ``-A``)."""
    keys = ["namespace"] if all_namespaces else []
    keys += ["name", "ready", "zones", "phase", "snapshot", "rollout", "note"]
    titles = {"snapshot": "LAST-SNAPSHOT"}
    colour: dict[str, Callable[[str], str | None]] = {
        "phase": lambda v: _PHASE_COLOUR.get(v),
        "note": lambda v: "red" if v else None,
    }
    rows: list[list[Cell]] = [[(titles.get(key, key.upper()), None) for key in keys]]
    for store in stores:
        line = health(store, now)
        rows.append([(line[key], colour[key](line[key]) if key in colour else None) for key in keys])
    return "\n".join(columns(rows, style))
