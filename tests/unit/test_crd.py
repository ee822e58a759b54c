"""The generated CRD: in step with the models, structural, documented, and what kubectl shows."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from pydantic import BaseModel, ConfigDict, Field

from phalanx import crd
from phalanx.models import ReplicatedStoreSpec
from tests.openapi import CRD_FILE, apply_defaults, root_schema
from tests.strategies import sparse_body, specs


def test_crds_folder_matches_the_models() -> None:
    assert CRD_FILE.read_text() == crd.render(), "crds/ drifted from phalanx.models: run `make crds`"


def test_generation_is_deterministic() -> None:
    assert crd.render() == crd.render()


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert crd.main(["--out", str(CRD_FILE.parent), "--check"]) == 0
    assert crd.main(["--out", str(tmp_path), "--check"]) == 1
    assert crd.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / crd.FILE_NAME).read_text() == crd.render()
    assert crd.main(["--out", str(tmp_path), "--check"]) == 0
    copy = tmp_path / "chart"
    assert crd.main(["--out", str(tmp_path), "--out", str(copy)]) == 0
    assert crd.main(["--out", str(tmp_path), "--out", str(copy), "--check"]) == 0
    (copy / crd.FILE_NAME).write_text("stale")
    assert crd.main(["--out", str(tmp_path), "--out", str(copy), "--check"]) == 1


@pytest.mark.parametrize("version", ["1.27", kubernetes_validate.latest_version()])
def test_the_crd_is_a_valid_object_for_the_kubernetes_versions_users_run(version: str) -> None:
    kubernetes_validate.validate(crd.build(), version, strict=True)


def test_names_and_scope() -> None:
    spec = crd.build()["spec"]
    assert crd.build()["metadata"]["name"] == "replicatedstores.phalanx.dev"
    assert spec["group"] == "phalanx.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ReplicatedStore",
        "listKind": "ReplicatedStoreList",
        "plural": "replicatedstores",
        "singular": "replicatedstore",
        "shortNames": ["rstore"],
        "categories": ["phalanx"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


# ------------------------------------------------------------------------------------------ structural


def _nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


NODES = list(_nodes(root_schema()))


def test_every_node_is_typed() -> None:
    untyped = [
        path
        for path, node in NODES
        if "type" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not node.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


def test_no_construct_that_structural_schemas_forbid() -> None:
    forbidden = {"$ref", "$defs", "definitions", "allOf", "oneOf", "not", "title", "nullable", "uniqueItems"}
    for path, node in NODES:
        assert not forbidden & set(node), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", {}) is not False, path
        if "anyOf" in node:
            assert node["x-kubernetes-int-or-string"] is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
    assert "$ref" not in CRD_FILE.read_text()


def test_every_field_is_documented_in_prose() -> None:
    for path, node in NODES:
        if re.search(r"\.[A-Za-z]+$", path) and not path.startswith(".metadata"):
            description = node.get("description", "")
            assert description, f"{path} has no description"
            assert "\n" not in description.replace("\n\n", ""), f"{path}: lines should be joined"


def test_optional_fields_are_simply_not_required() -> None:
    schema = root_schema()
    spec = schema["properties"]["spec"]
    assert schema["required"] == ["spec"]
    assert spec["required"] == ["template", "storage"]
    assert "zones" in spec["properties"] and "snapshots" in spec["properties"]
    assert "required" not in spec["properties"]["snapshots"]


def test_the_pod_template_is_kubernetes_own_schema_not_redeclared() -> None:
    template = root_schema()["properties"]["spec"]["properties"]["template"]
    assert template["required"] == ["spec"]
    assert template["properties"]["spec"] == {
        "description": template["properties"]["spec"]["description"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    metadata = template["properties"]["metadata"]["properties"]
    assert set(metadata) == {"labels", "annotations"}
    # Free-form for the server (see models.FreeFormMap); the models check keys and values.
    assert metadata["labels"]["x-kubernetes-preserve-unknown-fields"] is True


def test_sizes_are_quantities_and_durations_are_patterned_strings() -> None:
    spec = root_schema()["properties"]["spec"]["properties"]
    size = spec["storage"]["properties"]["size"]
    assert size["x-kubernetes-int-or-string"] is True and "pattern" in size
    grace = spec["recovery"]["properties"]["memberFailureGrace"]
    assert (grace["type"], grace["default"]) == ("string", "30s")
    assert re.fullmatch(grace["pattern"], "1h30m") and not re.fullmatch(grace["pattern"], "1d")


def test_enums_and_bounds_are_in_the_schema() -> None:
    spec = root_schema()["properties"]["spec"]["properties"]
    assert spec["deletionPolicy"]["enum"] == ["Retain", "Snapshot", "Delete"]
    assert spec["deletionPolicy"]["default"] == "Retain"
    assert (spec["replicas"]["minimum"], spec["replicas"]["maximum"], spec["replicas"]["default"]) == (1, 1000, 3)
    assert spec["zones"]["x-kubernetes-list-type"] == "set"


def test_policy_blocks_default_to_an_object_so_their_fields_get_defaults() -> None:
    spec = root_schema()["properties"]["spec"]["properties"]
    for block in ("recovery", "updates", "disruptionBudget"):
        assert spec[block]["default"] == {}, block
    assert spec["updates"]["properties"]["healthGate"]["default"] == {}
    assert "default" not in spec["snapshots"]  # no snapshots unless asked for


@given(specs())
def test_the_servers_defaults_are_the_models_defaults(spec: ReplicatedStoreSpec) -> None:
    schema = root_schema()["properties"]["spec"]
    defaulted = apply_defaults(schema, sparse_body(spec))
    assert _without_empty(defaulted) == _without_empty(spec.to_wire())


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {key: _without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in ({}, [])}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


def test_cel_rules_sit_on_the_nodes_they_judge() -> None:
    schema = root_schema()
    spec = schema["properties"]["spec"]
    assert schema["x-kubernetes-validations"][0]["rule"].startswith("size(self.metadata.name)")
    assert len(spec["x-kubernetes-validations"]) == 4
    assert "maxAge" in spec["properties"]["snapshots"]["x-kubernetes-validations"][0]["rule"]
    for _, node in NODES:
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) == {"rule", "message"}  # fieldPath and reason need 1.28+


# ------------------------------------------------------------------------------------------ kubectl


def _version() -> dict[str, Any]:
    return dict(crd.build()["spec"]["versions"][0])


def _resolves(path: str) -> bool:
    if path.startswith(".metadata."):
        return True  # ObjectMeta: the API server's own
    node: Mapping[str, Any] = root_schema()
    for part in path.strip(".").split("."):
        node = node.get("properties", {}).get(part, {})
        if not node:
            return False
    return True


def test_printer_columns_show_ready_zones_phase_snapshot_age() -> None:
    columns = _version()["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == ["Ready", "Zones", "Phase", "Last-Snapshot", "Age"]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Last-Snapshot"] == {
        **by_name["Last-Snapshot"],
        "type": "date",
        "jsonPath": ".status.snapshots.latestTime",
    }
    assert by_name["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    for column in columns:
        assert _resolves(column["jsonPath"]), column


def test_status_and_scale_subresources() -> None:
    subresources = _version()["subresources"]
    assert subresources["status"] == {}
    scale = subresources["scale"]
    assert _resolves(scale["specReplicasPath"]) and _resolves(scale["statusReplicasPath"])
    # HorizontalPodAutoscalers and `kubectl scale` find the members' pods through it.
    assert scale["labelSelectorPath"] == ".status.selector" and _resolves(scale["labelSelectorPath"])


# ------------------------------------------------------------------------------------------ refusals


class _Documented(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class _Union(_Documented):
    value: int | str
    """A union."""


class _Undocumented(_Documented):
    value: int


class _Exclusive(_Documented):
    value: int = Field(gt=0)
    """An exclusive bound: OpenAPI v3.0 writes it differently from JSON Schema 2020-12."""


@pytest.mark.parametrize(
    ("model", "complaint"),
    [(_Union, "union of several types"), (_Undocumented, "no docstring"), (_Exclusive, "exclusiveMinimum")],
)
def test_the_generator_refuses_what_kubernetes_cannot_express(model: type[BaseModel], complaint: str) -> None:
    raw = model.model_json_schema(by_alias=True)
    with pytest.raises(ValueError, match=complaint):
        crd.structural(raw, raw.get("$defs", {}), where=model.__name__)
