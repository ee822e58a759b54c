"""The ReplicatedStore API on the real API server: the CRD, the examples, kubectl, refusals, defaults.

What the unit tests check against the models is proven here against kube-apiserver itself: it
accepts the generated CRD as structural, serves the documentation to `kubectl explain`, refuses the
corpus' `schema` entries with a message naming the field, and applies the same defaults as the
models, so that any spec the models accept comes back from the server as the same spec.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from phalanx import kube as k
from phalanx.crd import CRD_NAME
from phalanx.kube import ApiError, Kube
from phalanx.models import ReplicatedStoreSpec, ReplicatedStoreStatus
from phalanx.validation import parse_spec
from phalanx_sandbox import wait_for
from tests.conftest import Cluster
from tests.openapi import CRD_FILE, EXAMPLES, InvalidSpec, invalid_specs
from tests.strategies import spec_bodies
from tests.unit.test_models import STATUS

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[Cluster]:
    """The session's cluster with the committed CRD installed and established."""
    # kubectl checks a CRD against the server's own OpenAPI before sending it, and a 1.20 server's
    # predates x-kubernetes-validations (CEL); the server itself accepts the CRD and ignores them.
    cluster.kubectl("apply", "--validate=false", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    # The server publishes the schema to its OpenAPI (what kubectl explain reads) a moment later.
    wait_for(
        lambda: cluster.kubectl("explain", "replicatedstore", check=False).returncode == 0,
        "the ReplicatedStore schema in the server's OpenAPI",
        timeout=60,
        interval=1,
    )
    yield cluster


def _store(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": "phalanx.dev/v1alpha1", "kind": "ReplicatedStore", "metadata": {"name": name}, "spec": spec}


def _minimal_spec() -> Any:
    return yaml.safe_load((CRD_FILE.parent.parent / "examples" / "minimal.yaml").read_text())["spec"]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_the_api_server_accepts_the_crd_as_structural(api: Cluster, kube: Kube) -> None:
    conditions = {c["type"]: c for c in kube.get(k.CRDS, CRD_NAME)["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    assert "NonStructuralSchema" not in conditions


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_is_accepted_and_comes_back_with_the_models_defaults(
    api: Cluster, kube: Kube, namespace: str, example: Path
) -> None:
    api.kubectl("apply", "-n", namespace, "-f", str(example))
    written = yaml.safe_load(example.read_text())
    stored = kube.get(k.STORES, written["metadata"]["name"], namespace)
    parsed = parse_spec(stored["spec"], name=stored["metadata"]["name"])
    assert parsed == ReplicatedStoreSpec.model_validate(written["spec"])
    assert stored["spec"]["recovery"]["source"] == "Snapshot"  # a default, filled in by the server


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("replicatedstore.spec.recovery", ["How lost members are replaced.", "memberFailureGrace", "zoneFailure"]),
        ("rstore.spec.snapshots.maxAge", ["never used to seed a member", "Must be at least `interval`"]),
        ("replicatedstore.spec.template.spec", ["A Kubernetes PodSpec", "PHALANX_SEEDED_FROM"]),
        ("replicatedstore.status.lastRecovery", ["seconds", "Recovery time"]),
    ],
)
def test_kubectl_explain_shows_the_field_docs(api: Cluster, field: str, expected: list[str]) -> None:
    text = " ".join(api.kubectl("explain", field).stdout.split())
    for phrase in expected:
        assert phrase in text


def test_status_round_trips_and_feeds_the_printer_columns(api: Cluster, kube: Kube, namespace: str) -> None:
    name = _unique("status")
    kube.create(k.STORES, _store(name, _minimal_spec()), namespace)
    stored = kube.patch(k.STORES, name, {"status": STATUS}, namespace, sub="status")
    assert ReplicatedStoreStatus.model_validate(stored["status"]) == ReplicatedStoreStatus.model_validate(STATUS)

    table = api.kubectl("get", "rstore", name, "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "ZONES", "PHASE", "LAST-SNAPSHOT", "AGE"]
    assert table[1].split()[:4] == [name, "6/6", "3/3", "Ready"]
    wide = api.kubectl("get", "rstore", name, "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["UPDATED", "REVISION"]
    assert name in api.kubectl("get", "phalanx", "-n", namespace).stdout  # the category


def test_kubectl_scale_sets_the_replicas(api: Cluster, kube: Kube, namespace: str) -> None:
    name = _unique("scale")
    kube.create(k.STORES, _store(name, _minimal_spec()), namespace)
    api.kubectl("scale", "-n", namespace, f"rstore/{name}", "--replicas=5")
    assert kube.get(k.STORES, name, namespace)["spec"]["replicas"] == 5


@pytest.mark.parametrize("entry", invalid_specs("schema"), ids=lambda entry: entry.id)
def test_the_api_server_refuses_schema_violations_naming_the_field(
    api: Cluster, kube: Kube, namespace: str, entry: InvalidSpec
) -> None:
    with pytest.raises(ApiError) as refused:
        kube.create(k.STORES, _store(_unique("bad"), entry.spec), namespace)
    assert refused.value.status == 422
    assert entry.field in refused.value.message


def _server_runs_cel(kube: Kube) -> bool:
    version = kube.request("GET", "/version")
    return (int(version["major"]), int(version["minor"].rstrip("+"))) >= (1, 25)


@pytest.mark.parametrize("entry", invalid_specs("semantic"), ids=lambda entry: entry.id)
def test_semantic_errors_are_for_the_operator_to_catch(
    api: Cluster, kube: Kube, namespace: str, entry: InvalidSpec
) -> None:
    """The server cannot judge these (without CEL): the operator must, which is why they are here."""
    body = _store(entry.store_name or _unique("semantic"), entry.spec)
    if entry.cel and _server_runs_cel(kube):
        with pytest.raises(ApiError):
            kube.create(k.STORES, body, namespace)
    else:
        kube.create(k.STORES, body, namespace)
    assert isinstance(parse_spec(entry.spec, name=body["metadata"]["name"]), list)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=spec_bodies())
def test_specs_the_models_accept_are_accepted_and_round_trip(
    api: Cluster, kube: Kube, namespace: str, pair: tuple[ReplicatedStoreSpec, dict[str, Any]]
) -> None:
    spec, body = pair
    name = _unique("prop")
    created = kube.create(k.STORES, _store(name, body), namespace)
    try:
        assert ReplicatedStoreSpec.model_validate(created["spec"]) == spec
        assert ReplicatedStoreSpec.model_validate(kube.get(k.STORES, name, namespace)["spec"]) == spec
    finally:
        kube.delete(k.STORES, name, namespace)
