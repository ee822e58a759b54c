"""Semantic validation: every invalid spec is refused with its field and a fix; valid ones pass.

The corpus (tests/data/invalid_specs.yaml) is shared with the integration tests, which prove the
`schema` entries against the real API server; here the operator's side of each entry is checked.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given

from phalanx.models import ReplicatedStoreSpec
from phalanx.validation import SpecError, parse_spec, validate_spec
from tests.openapi import CORPUS_FILE, EXAMPLES, InvalidSpec, apply_defaults, cel_violations, invalid_specs, root_schema
from tests.strategies import specs

SEMANTIC = invalid_specs("semantic")
SCHEMA = invalid_specs("schema")


def test_the_corpus_is_large_enough_and_named_uniquely() -> None:
    corpus = invalid_specs()
    assert len(corpus) >= 30
    assert len(SCHEMA) >= 15 and len(SEMANTIC) >= 15
    assert len({entry.name for entry in corpus}) == len(corpus)


def _base() -> dict[str, Any]:
    return dict(yaml.safe_load(CORPUS_FILE.read_text())["base"])


def test_the_corpus_base_is_valid() -> None:
    assert isinstance(parse_spec(_base(), name="store"), ReplicatedStoreSpec)


@pytest.mark.parametrize("entry", SEMANTIC, ids=lambda entry: entry.id)
def test_semantic_errors_name_the_field_and_the_fix(entry: InvalidSpec) -> None:
    result = parse_spec(entry.spec, name=entry.store_name or "store")
    assert isinstance(result, list), f"{entry.name}: accepted"
    matching = [error for error in result if error.field == entry.field]
    assert matching, f"{entry.name}: no error on {entry.field}, only {result}"
    assert entry.message is not None
    assert any(entry.message in error.message for error in matching), matching


@pytest.mark.parametrize("entry", SCHEMA, ids=lambda entry: entry.id)
def test_the_models_refuse_whatever_the_schema_refuses(entry: InvalidSpec) -> None:
    result = parse_spec(entry.spec, name="store")
    assert isinstance(result, list), f"{entry.name}: accepted by the models"
    assert any(error.field.startswith(entry.field) for error in result), result


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_the_examples_are_valid(example: Any) -> None:
    document = yaml.safe_load(example.read_text())
    assert parse_spec(document["spec"], name=document["metadata"]["name"]) == ReplicatedStoreSpec.model_validate(
        document["spec"]
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_the_examples_pod_templates_are_real_pod_specs(example: Any) -> None:
    # Phalanx does not re-declare PodSpec, so Kubernetes' own schema (1.27, the oldest users run) checks it.
    template = yaml.safe_load(example.read_text())["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m-1", **template.get("metadata", {})}}
    kubernetes_validate.validate({**pod, "spec": template["spec"]}, "1.27", strict=True)


@given(specs())
def test_generated_specs_are_valid(spec: ReplicatedStoreSpec) -> None:
    assert validate_spec(spec) == []


def test_all_errors_are_reported_at_once_sorted_by_field() -> None:
    body = {
        **_base(),
        "replicas": 2,
        "updates": {"canary": 3},
        "deletionPolicy": "Snapshot",
        "template": {"metadata": {"labels": {"phalanx.dev/member": "x"}}, "spec": {"containers": []}},
    }
    errors = parse_spec(body, name="Store")
    assert isinstance(errors, list)
    assert [error.field for error in errors] == [
        "metadata.name",
        "spec.deletionPolicy",
        "spec.template.metadata.labels[phalanx.dev/member]",
        "spec.template.spec.containers",
        "spec.updates.canary",
    ]
    assert str(errors[-1]).startswith("spec.updates.canary: a canary of 3 is larger than the store (2 replicas)")


def test_model_errors_come_in_the_same_shape() -> None:
    errors = parse_spec({**_base(), "replicas": 0, "zones": ["a", "a"], "storge": {}})
    assert isinstance(errors, list)
    assert len(errors) == 3
    by_field = {error.field: error.message for error in errors}
    assert by_field["spec.replicas"] == "should be greater than or equal to 1 (got 0)"
    assert by_field["spec.zones"] == "'a' is listed twice: list each zone once"
    assert by_field["spec.storge"].startswith("is not a field of ReplicatedStore: remove it or correct its spelling")


@pytest.mark.parametrize(
    "pod",
    [
        {"containers": "store"},
        {"containers": [1, None, "x"]},
        {"containers": [{"name": 5, "image": ["x"], "env": "A=1", "volumeMounts": {"name": "data"}}]},
        {"containers": [{"name": "s", "image": "i", "env": [None, {"value": 1}], "volumeMounts": [None]}]},
        {"volumes": "data", "initContainers": {}, "nodeSelector": ["zone"]},
    ],
)
def test_any_shape_of_pod_template_gets_errors_not_a_crash(pod: dict[str, Any]) -> None:
    errors = parse_spec({**_base(), "template": {"spec": pod}})
    assert isinstance(errors, list) and errors
    assert all(error.field.startswith("spec.template.spec") for error in errors)


def test_a_sidecar_need_not_mount_the_data_volume() -> None:
    body = _base()
    body["template"]["spec"]["containers"].append({"name": "exporter", "image": "exporter:1"})
    assert isinstance(parse_spec(body), ReplicatedStoreSpec)


def test_a_data_mount_in_an_init_container_alone_is_not_enough() -> None:
    body = _base()
    body["template"]["spec"] = {
        "initContainers": [{"name": "init", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
        "containers": [{"name": "store", "image": "i"}],
    }
    errors = parse_spec(body)
    assert isinstance(errors, list)
    assert [error.field for error in errors] == ["spec.template.spec.containers"]


@pytest.mark.parametrize(("replicas", "allowed"), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3), (9, 4)])
def test_the_disruption_budget_keeps_a_majority(replicas: int, allowed: int) -> None:
    def errors(max_unavailable: int) -> list[SpecError] | ReplicatedStoreSpec:
        return parse_spec({**_base(), "replicas": replicas, "disruptionBudget": {"maxUnavailable": max_unavailable}})

    assert isinstance(errors(allowed), ReplicatedStoreSpec)
    assert isinstance(errors(allowed + 1), list)


# ------------------------------------------------------------------------------------------ CEL
# The CRD carries the cross-field rules as CEL for servers that run it. They must agree with the
# operator: refuse exactly the corpus entries marked `cel`, and accept every valid spec.


def _cel_violations(spec: dict[str, Any], name: str) -> list[tuple[str, str]]:
    schema = root_schema()
    store = apply_defaults(schema, {"metadata": {"name": name}, "spec": spec})
    return cel_violations(schema, store)


@pytest.mark.parametrize("entry", SEMANTIC, ids=lambda entry: entry.id)
def test_cel_rules_refuse_exactly_the_entries_marked_cel(entry: InvalidSpec) -> None:
    violations = _cel_violations(entry.spec, entry.store_name or "store")
    if entry.cel:
        assert violations, f"{entry.name}: no CEL rule refuses it"
        assert any(path == entry.field or entry.field.startswith(path) for path, _ in violations), violations
    else:
        assert violations == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_cel_rules_accept_the_examples(example: Any) -> None:
    document = yaml.safe_load(example.read_text())
    assert _cel_violations(document["spec"], document["metadata"]["name"]) == []


@given(specs())
def test_cel_rules_accept_every_valid_spec(spec: ReplicatedStoreSpec) -> None:
    assert _cel_violations(spec.to_wire(), "store") == []
