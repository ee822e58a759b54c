"""The Helm chart on the real control plane: it installs with Helm 3 and 4, grants what it says, uninstalls.

Rendering and schemas are covered without a cluster in tests/unit/test_chart_render.py; what only an
API server can show is here: the install is accepted (admission, RBAC escalation checks, the CRD on a
real apiextensions server), the Deployment's two replicas become available (the simulator runs their
pods; no image is pulled, so nothing here depends on the operator itself), its PodDisruptionBudget is
served in the version the cluster has and counts them, an upgrade rolls them, the RBAC really
authorizes the operator's ServiceAccount for its work and nothing more (`kubectl auth can-i` with
impersonation), and `helm uninstall` leaves nothing of the release behind but the CRD, which Helm never
deletes, on purpose: deleting it would delete every store.

No container runs here, so which of the two pods leads cannot be seen (nothing takes the Lease): the
election itself is tested with two operator processes on one Lease in test_leader.py. What is checked
here is what the election needs from the chart: the Lease's rights, in the release namespace only.

Helm 4 and the 1.20 control plane: Helm 4 writes with server-side apply by default, and applies the
chart's crds/ even when the CRD exists. The 1.20 server's apply schema predates the CRD's CEL rules
(`x-kubernetes-validations`, 1.25+), so it refuses that apply, although it accepts (and prunes) the same
CRD on a plain create. Users run 1.27 and newer, where this does not arise; here, Helm 4 installs the
CRD client-side (`--server-side=false`), or skips it (`--skip-crds`) to exercise its default
server-side apply on every other object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml

from phalanx_sandbox import wait_for
from tests.conftest import REPO, Cluster, tool

pytestmark = pytest.mark.cluster

CHART = str(REPO / "charts" / "phalanx")
CRD_FILE = str(REPO / "charts" / "phalanx" / "crds" / "replicatedstores.phalanx.dev.yaml")
CRD = "customresourcedefinition/replicatedstores.phalanx.dev"
# Namespaced kinds a release creates, and cluster-scoped ones, for the "nothing left behind" checks.
NAMESPACED_KINDS = "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets"
CLUSTER_KINDS = "clusterroles,clusterrolebindings"
# How each Helm installs the chart with its CRD on the 1.20 control plane (see the module docstring).
CRD_INSTALL = {"helm3": [], "helm4": ["--server-side=false"]}


@contextmanager
def installed(cluster: Cluster, helm: str, release: str, namespace: str, *values: str) -> Iterator[str]:
    """The chart installed (and waited for), uninstalled afterwards even when the test fails.

    Yields the operator's ServiceAccount as an impersonation user name.
    """
    cluster.run(
        [tool(helm), "install", release, CHART, "--namespace", namespace, "--wait", "--timeout", "120s", *values]
    )
    try:
        yield f"system:serviceaccount:{namespace}:{release}"
    finally:
        cluster.run([tool(helm), "uninstall", release, "--namespace", namespace, "--wait"], check=False)


def ensure_crd(cluster: Cluster) -> None:
    """The ReplicatedStore CRD, created from the chart if this session has none yet."""
    if cluster.kubectl("get", CRD, check=False).returncode != 0:
        cluster.kubectl("create", "--validate=false", "-f", CRD_FILE)
    cluster.kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")


def names(cluster: Cluster, kinds: str, *scope: str, selector: str) -> list[str]:
    result = cluster.kubectl("get", kinds, *scope, "-l", selector, "-o", "name")
    return result.stdout.split()


def jsonpath(cluster: Cluster, obj: str, namespace: str, path: str) -> str:
    return cluster.kubectl("get", obj, "-n", namespace, "-o", f"jsonpath={path}").stdout


def lease_rights(lease: str, namespace: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """What leader election needs (allowed) and what it must not have (refused), as `can` arguments:
    its Lease got and updated by name and a Lease created, in the release namespace only."""
    leases = "leases.coordination.k8s.io"
    allowed: list[tuple[str, ...]] = [
        ("get", f"{leases}/{lease}", "-n", namespace),
        ("update", f"{leases}/{lease}", "-n", namespace),
        ("create", leases, "-n", namespace),
    ]
    refused = [
        ("delete", f"{leases}/{lease}", "-n", namespace),
        ("patch", f"{leases}/{lease}", "-n", namespace),
        ("list", leases, "-n", namespace),
        ("watch", leases, "-n", namespace),
        ("get", f"{leases}/kube-scheduler", "-n", namespace),
        ("update", f"{leases}/other", "-n", namespace),
        ("get", f"{leases}/{lease}", "-n", "default"),
        ("update", f"{leases}/{lease}", "-n", "default"),
        ("create", leases, "-n", "default"),
        ("list", leases, "--all-namespaces"),
        ("update", f"{leases}/kube-scheduler", "-n", "kube-system"),
    ]
    return allowed, refused


def can(cluster: Cluster, user: str, verb: str, resource: str, *scope: str) -> bool:
    """`kubectl auth can-i` as `user`: the API server's own authorizer answers, not our reading of rules."""
    result = cluster.kubectl("auth", "can-i", verb, resource, *scope, "--as", user, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource}: {result.stdout}{result.stderr}"
    return answer == "yes"


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_install_makes_an_available_operator_and_uninstall_cleans_up(
    cluster: Cluster, namespace: str, helm: str
) -> None:
    """Installing twice in a session (one test per Helm) must not trip over the CRD the first created."""
    release = f"phalanx-{helm}"
    selector = f"app.kubernetes.io/instance={release}"
    with installed(cluster, helm, release, namespace, *CRD_INSTALL[helm]):
        cluster.kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")
        cluster.kubectl("get", "replicatedstores.phalanx.dev", "-n", namespace)  # the API is served
        cluster.kubectl("wait", "--for=condition=Available", f"deployment/{release}", "-n", namespace, "--timeout=60s")
        two_replicas_available(cluster, release, namespace)
        status = cluster.run([tool(helm), "status", release, "--namespace", namespace]).stdout
        assert "STATUS: deployed" in status
        assert "It manages the ReplicatedStores of every namespace." in status  # NOTES.txt rendered
        assert f"get lease {release} -o jsonpath='{{.spec.holderIdentity}}'" in status  # how to find the leader
        created = names(cluster, NAMESPACED_KINDS, "-n", namespace, selector=selector)
        assert {
            f"deployment.apps/{release}",
            f"service/{release}-metrics",
            f"serviceaccount/{release}",
            f"poddisruptionbudget.policy/{release}",
            f"role.rbac.authorization.k8s.io/{release}-leader-election",
            f"rolebinding.rbac.authorization.k8s.io/{release}-leader-election",
        } <= set(created)
        budget_counts_both_replicas(cluster, helm, release, namespace)
        assert set(names(cluster, CLUSTER_KINDS, selector=selector)) == {
            f"clusterrole.rbac.authorization.k8s.io/{release}",
            f"clusterrolebinding.rbac.authorization.k8s.io/{release}",
            # Tenants' rights, aggregated into view/edit/admin (test_chart_tenants.py).
            f"clusterrole.rbac.authorization.k8s.io/{release}-view",
            f"clusterrole.rbac.authorization.k8s.io/{release}-edit",
        }
        # An upgrade (each Helm's default apply; CRDs are not touched) replaces the operator's pod.
        upgrade = ["upgrade", release, CHART, "--namespace", namespace, "--reuse-values", "--set", "logFormat=json"]
        cluster.run([tool(helm), *upgrade, "--wait", "--timeout", "120s"])
        log_format = cluster.kubectl(
            "get",
            f"deployment/{release}",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[?(@.name=='PHALANX_LOG_FORMAT')].value}",
        ).stdout
        assert log_format == "json"
        two_replicas_available(cluster, release, namespace)
    assert release not in cluster.run([tool(helm), "list", "--namespace", namespace, "--short"]).stdout
    # Pods go through graceful deletion (finished by the simulator): wait rather than look once.
    cluster.kubectl("wait", "--for=delete", "pods", "-l", selector, "-n", namespace, "--timeout=60s", check=False)
    assert names(cluster, NAMESPACED_KINDS, "-n", namespace, selector=selector) == []
    assert names(cluster, CLUSTER_KINDS, selector=selector) == []
    cluster.kubectl("get", CRD)  # kept: Helm never deletes CRDs from crds/, so stores outlive the operator


def two_replicas_available(cluster: Cluster, release: str, namespace: str) -> None:
    """Both replicas of the current revision Ready and available, rolled without going below two."""
    deployment = f"deployment/{release}"
    cluster.kubectl("rollout", "status", deployment, "-n", namespace, "--timeout=60s")
    spec = jsonpath(cluster, deployment, namespace, "{.spec.replicas} {.spec.strategy.rollingUpdate.maxUnavailable}")
    assert spec == "2 0"
    counts = "{.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas}"
    wait_for(
        lambda: jsonpath(cluster, deployment, namespace, counts) == "2 2 2 2",
        f"{deployment}: 2 pods available",
        timeout=60,
        interval=0.5,
    )
    pods = cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "-o", "name"
    ).stdout.split()
    assert len(pods) == 2, pods
    for pod in pods:  # each knows its own name and namespace: its identity, and the Lease's namespace
        env = jsonpath(
            cluster, pod, namespace, "{.spec.containers[0].env[?(@.valueFrom)].valueFrom.fieldRef.fieldPath}"
        )
        assert env.split() == ["metadata.name", "metadata.namespace"]


def budget_counts_both_replicas(cluster: Cluster, helm: str, release: str, namespace: str) -> None:
    """The budget in the version the cluster serves (policy/v1beta1 on the 1.20 test bed), and the
    disruption controller finds both pods healthy: one may be evicted at a time."""
    served = set(cluster.kubectl("api-versions").stdout.split())
    manifest = cluster.run([tool(helm), "get", "manifest", release, "--namespace", namespace]).stdout
    budgets = [doc for doc in yaml.safe_load_all(manifest) if doc and doc["kind"] == "PodDisruptionBudget"]
    assert [b["apiVersion"] for b in budgets] == ["policy/v1" if "policy/v1" in served else "policy/v1beta1"]
    fields = "{.spec.maxUnavailable} {.status.currentHealthy} {.status.desiredHealthy} {.status.disruptionsAllowed}"
    budget = f"poddisruptionbudget/{release}"
    wait_for(
        lambda: jsonpath(cluster, budget, namespace, fields) == "1 2 1 1",
        f"{budget} to count 2 healthy pods",
        timeout=60,
        interval=0.5,
    )


def test_cluster_wide_service_account_can_do_the_operators_work_and_no_more(cluster: Cluster, namespace: str) -> None:
    with installed(cluster, "helm3", "phalanx-rbac", namespace) as operator:
        allowed = [
            ("list", "pods", "--all-namespaces"),
            ("watch", "replicatedstores.phalanx.dev", "--all-namespaces"),
            ("patch", "replicatedstores.phalanx.dev", "--subresource=status", "-n", "default"),
            ("update", "replicatedstores.phalanx.dev", "--subresource=finalizers", "-n", namespace),
            ("create", "volumesnapshots.snapshot.storage.k8s.io", "-n", "default"),
            ("delete", "persistentvolumeclaims", "-n", "default"),
            ("create", "poddisruptionbudgets.policy", "-n", "default"),
            ("create", "events", "-n", "default"),
            ("create", "events.events.k8s.io", "-n", "default"),
            ("list", "nodes"),
            ("watch", "persistentvolumes"),
            ("list", "volumesnapshotclasses.snapshot.storage.k8s.io"),
            ("list", "customresourcedefinitions.apiextensions.k8s.io"),
            ("list", "namespaces"),
        ]
        refused = [
            ("delete", "nodes"),
            ("get", "secrets", "-n", namespace),
            ("list", "secrets", "--all-namespaces"),
            ("delete", "replicatedstores.phalanx.dev", "-n", "default"),
            ("delete", "services", "-n", "default"),
            ("delete", "persistentvolumes"),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
            ("create", "pods", "--subresource=exec", "-n", "default"),
        ]
        lease_allowed, lease_refused = lease_rights("phalanx-rbac", namespace)
        allowed += lease_allowed
        refused += lease_refused
        for verb, resource, *scope in allowed:
            assert can(cluster, operator, verb, resource, *scope), f"cannot {verb} {resource} {scope}"
        for verb, resource, *scope in refused:
            assert not can(cluster, operator, verb, resource, *scope), f"can {verb} {resource} {scope}"


def test_namespaced_service_account_is_confined_to_its_watched_namespaces(cluster: Cluster, namespace: str) -> None:
    """With watchNamespaces, the Roles grant the work in those namespaces only; cluster reads remain.

    Installed by Helm 4 with its default server-side apply, the CRD left out (see the module docstring).
    """
    ensure_crd(cluster)
    with installed(
        cluster, "helm4", "phalanx-ns", namespace, "--skip-crds", "--set", f"watchNamespaces={{{namespace}}}"
    ) as operator:
        assert can(cluster, operator, "list", "pods", "-n", namespace)
        assert can(cluster, operator, "patch", "replicatedstores.phalanx.dev", "--subresource=status", "-n", namespace)
        assert can(cluster, operator, "create", "volumesnapshots.snapshot.storage.k8s.io", "-n", namespace)
        assert not can(cluster, operator, "list", "pods", "--all-namespaces")
        assert not can(cluster, operator, "list", "pods", "-n", "default")
        assert not can(cluster, operator, "create", "volumesnapshots.snapshot.storage.k8s.io", "-n", "default")
        assert can(cluster, operator, "list", "nodes")
        assert can(cluster, operator, "watch", "persistentvolumes")
        assert not can(cluster, operator, "get", "secrets", "-n", namespace)
        # The release namespace is watched: its Role grants the LeaderElected Event, the Lease's Role
        # the Lease.
        assert can(cluster, operator, "create", "events", "-n", namespace)
        lease_allowed, lease_refused = lease_rights("phalanx-ns", namespace)
        for verb, resource, *scope in lease_allowed:
            assert can(cluster, operator, verb, resource, *scope), f"cannot {verb} {resource} {scope}"
        for verb, resource, *scope in lease_refused:
            assert not can(cluster, operator, verb, resource, *scope), f"can {verb} {resource} {scope}"
        env = cluster.kubectl(
            "get",
            "deployment/phalanx-ns",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[?(@.name=='PHALANX_NAMESPACES')].value}",
        ).stdout
        assert env == namespace
