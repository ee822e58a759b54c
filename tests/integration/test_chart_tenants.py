"""Tenants and ReplicatedStores on the real RBAC authorizer: the chart's aggregated ClusterRoles extend
Kubernetes' built-in `view`, `edit` and `admin`, and nothing lets a tenant write a store's status.

Users are impersonated (`kubectl --as`): the API server authorizes each request as that user, through
the ClusterRoles the real clusterrole-aggregation controller (kube-controller-manager) composed. The
requests are real writes (a create, a status patch), not only `auth can-i` questions. Without the
chart's roles, `edit` knows nothing of stores: the test turns them off and sees the create refused.
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from phalanx_sandbox import wait_for
from tests.conftest import REPO, Cluster, tool
from tests.integration.test_chart import CHART, ensure_crd, installed

pytestmark = pytest.mark.cluster

STORES = "replicatedstores.phalanx.dev"
EXAMPLE = REPO / "examples" / "minimal.yaml"


def bind(cluster: Cluster, namespace: str, user: str, role: str) -> None:
    """A RoleBinding of one built-in ClusterRole to one user, in one namespace: how tenants get rights."""
    cluster.kubectl(
        "create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}", "-n", namespace
    )


def allowed(cluster: Cluster, user: str, verb: str, namespace: str, *extra: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, STORES, *extra, "-n", namespace, "--as", user, check=False)
    return result.stdout.strip() == "yes"


def as_user(cluster: Cluster, user: str, *args: str, manifest: str | None = None) -> tuple[bool, str]:
    """Run kubectl as `user`: (succeeded, what it said). A refusal must be RBAC's, nothing else."""
    result = cluster.kubectl(*args, "--as", user, check=False, input=manifest)
    said = result.stdout + result.stderr
    if result.returncode != 0:
        assert "forbidden" in said.lower(), said
    return result.returncode == 0, said


def store_manifest(name: str) -> str:
    """examples/minimal.yaml, as a tenant would apply it."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["name"] = name
    return yaml.safe_dump(body)


def test_edit_and_admin_manage_stores_view_reads_them_and_no_tenant_writes_status(
    cluster: Cluster, namespace: str
) -> None:
    ensure_crd(cluster)
    suffix = uuid.uuid4().hex[:6]
    editor, viewer, admin, stranger = (f"{who}-{suffix}" for who in ("alice", "bob", "carol", "dave"))
    bind(cluster, namespace, editor, "edit")
    bind(cluster, namespace, viewer, "view")
    bind(cluster, namespace, admin, "admin")
    release = "phalanx-tenants"
    with installed(cluster, "helm3", release, namespace, "--skip-crds"):
        # The aggregation controller composes edit/view/admin asynchronously after the install.
        wait_for(
            lambda: allowed(cluster, editor, "create", namespace) and allowed(cluster, viewer, "get", namespace),
            "the chart's rules aggregated into edit and view",
            timeout=60,
            interval=0.5,
        )

        # edit: a real create, then get and patch of the spec; never the status.
        ok, said = as_user(cluster, editor, "create", "-n", namespace, "-f", "-", manifest=store_manifest("orders"))
        assert ok, said
        assert as_user(cluster, editor, "get", STORES, "orders", "-n", namespace)[0]
        patch = ["patch", STORES, "orders", "-n", namespace, "--type=merge"]
        assert as_user(cluster, editor, *patch, "-p", '{"spec": {"replicas": 5}}')[0]
        status = [*patch, "--subresource=status", "-p", '{"status": {"phase": "Ready", "owned": []}}']
        ok, said = as_user(cluster, editor, *status)
        assert not ok and '"replicatedstores/status"' in said, said

        # admin: the same as edit for stores.
        ok, said = as_user(cluster, admin, "create", "-n", namespace, "-f", "-", manifest=store_manifest("carts"))
        assert ok, said
        assert not as_user(cluster, admin, *status)[0]

        # view: reads stores and their status; cannot create, change or delete one.
        assert as_user(cluster, viewer, "get", STORES, "-n", namespace)[0]
        assert allowed(cluster, viewer, "get", namespace, "--subresource=status")
        ok, said = as_user(cluster, viewer, "create", "-n", namespace, "-f", "-", manifest=store_manifest("users"))
        assert not ok, said
        assert not as_user(cluster, viewer, *patch, "-p", '{"spec": {"replicas": 1}}')[0]
        assert not as_user(cluster, viewer, *status)[0]
        assert not as_user(cluster, viewer, "delete", STORES, "orders", "-n", namespace)[0]

        # A user bound to nothing here sees nothing; rights stay in their namespace.
        assert not as_user(cluster, stranger, "get", STORES, "-n", namespace)[0]
        assert not allowed(cluster, editor, "create", "default")

        # edit deletes what it made.
        assert as_user(cluster, editor, "delete", STORES, "orders", "carts", "-n", namespace, "--wait=false")[0]

        # Without the chart's roles, edit knows nothing of stores.
        upgrade = ["upgrade", release, CHART, "-n", namespace, "--reuse-values", "--wait", "--timeout", "120s"]
        cluster.run([tool("helm3"), *upgrade, "--set", "rbac.aggregateClusterRoles=false"])
        wait_for(
            lambda: (
                not allowed(cluster, editor, "create", namespace) and not allowed(cluster, viewer, "get", namespace)
            ),
            "edit and view without the chart's rules",
            timeout=60,
            interval=0.5,
        )
        ok, said = as_user(cluster, editor, "create", "-n", namespace, "-f", "-", manifest=store_manifest("later"))
        assert not ok, said
