"""Argo CD's health check (deploy/argocd/health.lua) on store objects recorded on the real control
plane (tests/data/argocd/, written by tests/integration/test_argocd.py), run as Argo CD runs it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd import ARGOCD_CM, EXPECTED, HEALTH_KEY, HEALTH_LUA, REPO, health, recorded

RECORDS = recorded()


def test_every_state_was_recorded() -> None:
    again = "record them: PHALANX_RECORD_ARGOCD=1 pytest tests/integration/test_argocd.py"
    assert list(RECORDS) and set(RECORDS) == set(EXPECTED), again


@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_the_health_of_each_recorded_state(state: str) -> None:
    status, message = health(RECORDS[state])
    expected, words = EXPECTED[state]
    assert status == expected, message
    assert words in message


def test_a_degraded_message_names_what_went_wrong_in_the_stores_own_words() -> None:
    for state in ("invalid-spec", "member-unavailable", "rollout-halted"):
        obj = RECORDS[state]
        kind = "Stalled" if state != "member-unavailable" else "Degraded"
        [said] = [c["message"] for c in obj["status"]["conditions"] if c["type"] == kind]
        assert said in health(obj)[1]


def later(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The recorded object as it would be right after a change: a new generation, or spec fields."""
    changed = copy.deepcopy(obj)
    changed["metadata"]["generation"] += 1
    changed["spec"].update(changes)
    return changed


@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_a_spec_change_not_yet_observed_is_progressing_whatever_the_state(state: str) -> None:
    status, message = health(later(RECORDS[state]))
    assert status == "Progressing" and "Waiting for Phalanx" in message


def test_a_paused_store_is_suspended_and_still_says_what_is_unavailable() -> None:
    paused = later(RECORDS["member-unavailable"], paused=True)
    paused["status"]["observedGeneration"] = paused["metadata"]["generation"]
    status, message = health(paused)
    assert status == "Suspended" and "unavailable: " in message


def test_the_argocd_cm_snippet_carries_the_script_verbatim() -> None:
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert data == {HEALTH_KEY: HEALTH_LUA.read_text()}, "copy deploy/argocd/health.lua into argocd-cm.yaml"


def test_the_readme_shows_where_the_script_goes() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## GitOps: Argo CD and Flux", 1)[1].split("\n## ", 1)[0]
    assert HEALTH_KEY in section
    for path in (HEALTH_LUA, ARGOCD_CM):
        assert str(path.relative_to(REPO)) in section
        assert Path(REPO, path.relative_to(REPO)).exists()
