"""Argo CD's health check of a store (deploy/argocd/health.lua), run as Argo CD runs it.

Argo CD (through gopher-lua, a Lua 5.1) sets the resource as the global ``obj`` and reads ``status``
and ``message`` from the table the script returns. PyPI's lupa embeds the reference Lua 5.1, so the
script is run here exactly so, on store objects the API server returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lupa.lua51 as lupa
from lupa.lua51 import LuaRuntime

REPO = Path(__file__).resolve().parent.parent
HEALTH_LUA = REPO / "deploy" / "argocd" / "health.lua"
ARGOCD_CM = REPO / "deploy" / "argocd" / "argocd-cm.yaml"
HEALTH_KEY = "resource.customizations.health.phalanx.dev_ReplicatedStore"
RECORDED = REPO / "tests" / "data" / "argocd"
"""Store objects recorded on the real control plane, one per state (tests/integration/test_argocd.py)."""
STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})
"""What Argo CD accepts as a health status."""


def health(obj: Mapping[str, Any], script: str | None = None) -> tuple[str, str]:
    """The (status, message) the health script gives ``obj``, in a fresh Lua state as Argo CD uses."""
    lua = LuaRuntime(unpack_returned_tuples=False)
    # Through JSON, as Argo CD gets it: plain maps, lists, strings, numbers, booleans.
    lua.globals()["obj"] = lua.table_from(json.loads(json.dumps(obj)), recursive=True)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    assert lupa.lua_type(result) == "table", f"the script returned {result!r}, not a table"
    status, message = str(result["status"]), str(result["message"])  # type: ignore[index]
    assert status in STATUSES, f"Argo CD knows no health status {status!r}"
    return status, message


def recorded() -> dict[str, dict[str, Any]]:
    """Every recorded store object, by state (the file's name)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(RECORDED.glob("*.json"))}


EXPECTED: dict[str, tuple[str, str]] = {
    "created": ("Progressing", "Waiting for Phalanx to report"),
    "creating": ("Progressing", "Converging"),
    "ready": ("Healthy", "AllMembersReady"),
    "scaled-not-yet-observed": ("Progressing", "Waiting for Phalanx to observe generation 2"),
    "scaling": ("Progressing", "Converging"),
    "member-unavailable": ("Degraded", "MembersUnavailable"),
    "recovering": ("Progressing", "Recovering"),
    "invalid-spec": ("Degraded", "InvalidSpec: spec.updates.canary"),
    "paused": ("Suspended", "spec.paused is true"),
    "rollout-paused": ("Suspended", "Rollout paused"),
    "rolling-out": ("Progressing", "RollingOut"),
    "rollout-halted": ("Degraded", "RolloutHalted"),
}
"""Each recorded state, in the order the recorder drives a store through them: the health Argo CD must
show, and words its message must hold."""
