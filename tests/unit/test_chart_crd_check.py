"""The chart's CRD check (templates/crd-check.yaml), without a cluster.

On a cluster the check compares the CRD Helm's `lookup` returns with the chart's (tested end to end in
tests/integration/test_chart_crd_upgrade.py). Here its comparison, the recursive
`phalanx.crd.missingFields`, is run on schemas of our choosing (a copy of the chart with one template
of the test's), and `helm template`, which cannot look anything up, is shown to check nothing.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_chart_render import CHART, CRD_NAME, HELMS, helm, render

PROBE = """\
{{- $want := .Files.Get "want.yaml" | fromYaml }}
{{- $have := .Files.Get "have.yaml" | fromYaml }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: missing
data:
  missing: {{ include "phalanx.crd.missingFields" (dict "want" $want "have" $have "path" "") | trim | quote }}
"""


def schema() -> dict[str, Any]:
    crd = yaml.safe_load((CHART / "crds" / CRD_NAME).read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def missing(tmp_path: Path, want: dict[str, Any], have: dict[str, Any], helm_name: str = "helm3") -> list[str]:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-probe.yaml").write_text(PROBE)
    (chart / "want.yaml").write_text(yaml.safe_dump(want))
    (chart / "have.yaml").write_text(yaml.safe_dump(have))
    out = helm(helm_name, "template", "probe", str(chart), "--show-only", "templates/zz-probe.yaml").stdout
    return sorted(yaml.safe_load(out)["data"]["missing"].split())


@pytest.mark.parametrize("helm_name", HELMS)
def test_the_same_schema_lacks_nothing(tmp_path: Path, helm_name: str) -> None:
    assert missing(tmp_path, schema(), schema(), helm_name) == []


def test_every_missing_field_is_named_by_its_path(tmp_path: Path) -> None:
    """Top-level and nested properties, fields of list items ([]) and of map values ({})."""
    have = copy.deepcopy(schema())
    spec = have["properties"]["spec"]["properties"]
    del spec["retiredVolumes"]
    del spec["recovery"]["properties"]["zoneFailureGrace"]
    del have["properties"]["status"]["properties"]["members"]["items"]["properties"]["seededFrom"]
    want = {
        "properties": {
            **schema()["properties"],
            "extra": {"additionalProperties": {"properties": {"a": {}, "b": {}}}},
        }
    }
    have["properties"]["extra"] = {"additionalProperties": {"properties": {"a": {}}}}
    assert missing(tmp_path, want, have) == [
        "extra{}.b",
        "spec.recovery.zoneFailureGrace",
        "spec.retiredVolumes",
        "status.members[].seededFrom",
    ]


def test_an_older_cluster_schema_with_more_fields_is_not_a_problem(tmp_path: Path) -> None:
    """A field the chart dropped (a downgrade, or a newer CRD applied by hand) refuses nothing."""
    have = copy.deepcopy(schema())
    have["properties"]["spec"]["properties"]["legacy"] = {"type": "string"}
    assert missing(tmp_path, schema(), have) == []


def test_helm_template_checks_nothing() -> None:
    """No cluster to look at (and GitOps tools render this way): the check renders nothing, even on."""
    assert render("--set", "crds.check=true") == render("--set", "crds.check=false")
