"""The documentation's links hold: README's, the docs', and every alert's runbook_url.

A runbook link that 404s at 3 a.m. is worse than none, and a README link to a moved page is the first
thing a new user meets. Relative links are resolved against the files (and headings, for `#anchors`,
as GitHub slugs them); web links are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

DOCS = REPO / "docs"
RUNBOOKS = DOCS / "runbooks"
RULES = REPO / "deploy" / "prometheus" / "phalanx-rules.yaml"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
RUNBOOK_SECTIONS = ["## What it means", "## Impact", "## Look", "## Do", "## Escalate"]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not a link
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    for target in links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.relative_to(REPO)}: {target} does not exist"
        if anchor:
            assert resolved.suffix == ".md", f"{page.relative_to(REPO)}: #{anchor} on a non-page"
            assert anchor in anchors(resolved), f"{page.relative_to(REPO)}: no heading #{anchor} in {path or page.name}"


def test_readme_lists_the_documentation_near_the_top() -> None:
    """One short list before the first section, linking every page of docs/ (runbooks by their index)."""
    readme = (REPO / "README.md").read_text()
    head = readme[: readme.index("\n## ", readme.index("## Documentation") + 1)]
    assert readme.index("## Documentation") < readme.index("## What works today")
    listed = {target.partition("#")[0] for target in LINK.findall(head)}
    pages = {str(p.relative_to(REPO)) for p in DOCS.glob("*.md")} | {"docs/runbooks/README.md"}
    assert pages <= listed, f"README's Documentation list misses {sorted(pages - listed)}"


def test_readme_metrics_points_at_the_alerts_and_the_dashboard() -> None:
    readme = (REPO / "README.md").read_text()
    metrics = readme[readme.index("## Metrics") : readme.index("\n## ", readme.index("## Metrics") + 1)]
    for thing in ("deploy/prometheus/phalanx-rules.yaml", "deploy/grafana/phalanx-dashboard.json", "docs/runbooks/"):
        assert thing in metrics, f"README's Metrics section does not mention {thing}"


def test_every_alert_has_its_runbook_and_every_runbook_its_alert() -> None:
    urls = {str(rule["alert"]): str(rule["annotations"]["runbook_url"]) for rule in alerts()}
    for name, url in urls.items():
        assert url == f"docs/runbooks/{name}.md"
        assert (REPO / url).is_file(), f"{name}: {url} is missing"
    assert {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"} == set(urls), "a runbook without an alert"
    index = (RUNBOOKS / "README.md").read_text()
    for name in urls:
        assert f"]({name}.md)" in index, f"docs/runbooks/README.md does not list {name}"


@pytest.mark.parametrize("runbook", sorted(p for p in RUNBOOKS.glob("Phalanx*.md")), ids=lambda p: p.stem)
def test_every_runbook_answers_on_calls_questions_in_order(runbook: Path) -> None:
    """What it means, what it costs, how to look, what to do, whom to call: always in that order."""
    text = runbook.read_text()
    assert text.startswith(f"# {runbook.stem}\n")
    positions = [text.find(f"\n{section}\n") for section in RUNBOOK_SECTIONS]
    assert -1 not in positions, (
        f"{runbook.name} lacks {[s for s, p in zip(RUNBOOK_SECTIONS, positions, strict=True) if p < 0]}"
    )
    assert positions == sorted(positions), f"{runbook.name}: sections out of order"
    assert "kubectl" in text
