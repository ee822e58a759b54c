"""The Helm chart, checked without a cluster: it lints, renders valid manifests, and grants least privilege.

`helm template` output is what users' clusters (1.27 and newer) and GitOps tools receive, so every
rendered object is validated against the bundled OpenAPI schemas of several Kubernetes versions in
strict mode, which catches misspelt or misplaced fields that the 1.20 test control plane would silently
drop. The RBAC tests pin the exact permission set: a widened rule must be a deliberate change here.
The chart runs the operator highly available (two replicas electing a leader on a Lease); these tests
pin what makes that safe and available: the rolling strategy, the election's settings and their
constraints, the probes, the PodDisruptionBudget, the spread and the node-failure tolerations.
Needs the helm binaries from `make tools` (.tools/bin), nothing else.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Iterable
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO, tool

CHART = REPO / "charts" / "phalanx"
CRD_NAME = "replicatedstores.phalanx.dev.yaml"
HELMS = ["helm3", "helm4"]
RELEASE = "phalanx"
RELEASE_NAMESPACE = "phalanx-system"
# The oldest version users run, a middle one, and the newest whose schemas kubernetes-validate bundles.
VERSIONS = ["1.27", "1.30", kubernetes_validate.latest_version()]
# The chart's minimum (Chart.yaml kubeVersion) and the test control plane's: no policy/v1 there.
OLDEST = "1.20"
# Value sets every template must render validly with: the defaults, the namespaced/monitored mode (with
# every opt-in observability object), and one pod without leader election.
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "namespaced-monitored": [
        "--set",
        "watchNamespaces={a,b}",
        "--set",
        "metrics.serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
    ],
    "single-unelected": ["--set", "replicaCount=1", "--set", "leaderElection.enabled=false"],
}
LEADER_ROLE = f"{RELEASE}-leader-election"
HEARTBEATS_ROLE = f"{RELEASE}-node-heartbeats"

Obj = dict[str, Any]
Permission = tuple[str, str, str]  # (apiGroup, resource, verb)
NamedPermission = tuple[str, str, str, str]  # (apiGroup, resource, verb, resourceName; "" for any)


def helm(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a helm binary with no kubeconfig: rendering must never need a cluster."""
    result = subprocess.run(
        [tool(name), *args], capture_output=True, text=True, timeout=60, env={"HOME": "/nonexistent", "PATH": ""}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def render(*values: str, helm_name: str = "helm3", include_crds: bool = False) -> list[Obj]:
    """The chart's manifests as `helm install` would send them (release `phalanx` in `phalanx-system`)."""
    args = ["template", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, *values]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(helm(helm_name, *args).stdout) if doc]


def only(objs: Iterable[Obj], kind: str, namespace: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"].get("namespace", None) == namespace]
    assert len(found) == 1, f"expected one {kind} in {namespace}, got {len(found)}"
    return found[0]


def container(objs: list[Obj]) -> Obj:
    containers = only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(objs: list[Obj]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}


def pod_spec(objs: list[Obj]) -> Obj:
    return dict(only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["template"]["spec"])


def named(objs: Iterable[Obj], kind: str, name: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]


def permissions(role: Obj) -> set[Permission]:
    """A role's rules flattened to (group, resource, verb): order and grouping of rules do not matter."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def named_permissions(role: Obj) -> set[NamedPermission]:
    """Like ``permissions``, keeping each rule's resourceNames ("" where a rule names none: any object)."""
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [""]
    }


def grant(group: str, resources: Iterable[str], verbs: Iterable[str]) -> set[Permission]:
    return {(group, r, v) for r in resources for v in verbs}


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def tenant_role(obj: Obj) -> bool:
    """A ClusterRole that extends Kubernetes' view/edit/admin roles (test_chart_observability.py)."""
    return any(label.startswith(AGGREGATE) for label in obj["metadata"].get("labels") or {})


def operators(objs: Iterable[Obj]) -> list[Obj]:
    """The release's objects without the tenants' aggregated roles: what the operator itself runs with."""
    return [o for o in objs if not tenant_role(o)]


READ = ("get", "list", "watch")
# What the operator does in a store's namespace (design: act writes, observe watches, Kopf posts events).
NAMESPACED = (
    grant(
        "phalanx.dev",
        ["replicatedstores", "replicatedstores/status", "replicatedstores/finalizers"],
        [*READ, "patch", "update"],
    )
    | grant("", ["pods", "persistentvolumeclaims"], [*READ, "create", "delete", "patch"])
    | grant("", ["services"], [*READ, "create", "patch"])
    | grant("", ["events"], ["create", "patch"])
    | grant("events.k8s.io", ["events"], ["create", "patch"])
    | grant("policy", ["poddisruptionbudgets"], [*READ, "create", "patch"])
    | grant("snapshot.storage.k8s.io", ["volumesnapshots"], [*READ, "create", "delete"])
)
# Cluster-scoped reads: zones and node health, where volumes live, snapshot classes, Kopf's scanning;
# and patching volumes (deletionPolicy Retain makes their reclaim policy Retain).
CLUSTER = (
    grant("", ["nodes", "namespaces"], READ)
    | grant("", ["persistentvolumes"], [*READ, "patch"])
    | grant("snapshot.storage.k8s.io", ["volumesnapshotclasses"], READ)
    | grant("apiextensions.k8s.io", ["customresourcedefinitions"], READ)
)
# Leader election, in the release namespace only: the release's Lease read and renewed by name, any
# Lease created (RBAC cannot restrict a create by name), nothing deleted, listed or watched.
LEASE: set[NamedPermission] = {
    ("coordination.k8s.io", "leases", "create", ""),
    ("coordination.k8s.io", "leases", "get", RELEASE),
    ("coordination.k8s.io", "leases", "update", RELEASE),
}
# The LeaderElected Event on the Lease, where no other role grants events in the release namespace.
LEASE_EVENTS: set[NamedPermission] = {("", "events", "create", ""), ("", "events", "patch", "")}


# --- lint and schema validation -----------------------------------------------------------------


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints_strictly(helm_name: str, values: list[str]) -> None:
    """Both Helm majors users have accept the chart, warnings included (--strict)."""
    result = helm(helm_name, "lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_manifest_validates_strictly(helm_name: str, values: list[str], version: str) -> None:
    """Every object, the CRD included, is valid for Kubernetes 1.27 up to the newest bundled schemas.

    The ServiceMonitor and the PrometheusRule are Prometheus Operator custom resources, for which no
    schema is bundled: the rules are checked by promtool instead (test_chart_observability.py).
    """
    objs = render(*values, "--kube-version", version, helm_name=helm_name, include_crds=True)
    kinds = sorted(o["kind"] for o in objs)
    assert {"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount", "ClusterRole"} <= set(kinds)
    assert ("PodDisruptionBudget" in kinds) == ("replicaCount=1" not in values)
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["kind"] in ("ServiceMonitor", "PrometheusRule")
            continue
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["--set", "replicas=3"], "replicas"),
        (["--set", "replicaCount=0"], "replicaCount"),
        (["--set", "leaderElection.enabled=false"], "replicaCount"),
        (["--set", "leaderElection.renewDeadline=15"], "renewDeadline"),
        (["--set", "leaderElection.renewDeadline=20"], "renewDeadline"),
        (["--set", "leaderElection.leaseDuration=8"], "renewDeadline"),
        (["--set", "leaderElection.retryPeriod=0"], "retryPeriod"),
        (["--set", "leaderElection.retryPeriod=9"], "retryPeriod"),
        (["--set", "leaderElection.leaseDuration=1"], "leaseDuration"),
        (["--set", "leaderElection.leaseDuration=7.5"], "leaseDuration"),
        (["--set", "leaderElection.lease=x"], "lease"),
        (["--set", "nodeFailureTolerationSeconds=-1"], "nodeFailureTolerationSeconds"),
        (["--set", "topologySpreadConstraints[0].maxSkew=1"], "topologySpreadConstraints"),
        (["--set", "logFormat=xml"], "logFormat"),
        (["--set", "apiThreads=0"], "apiThreads"),
        (["--set", "watchNamespaces={Not_A_Namespace}"], "watchNamespaces"),
        (["--set", "watchNamespaces={a,a}"], "watchNamespaces"),
        (["--set", "metrics.port=8081"], "metrics"),
        (["--set", "metrics.port=http"], "metrics"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name is required"),
    ],
)
def test_values_that_cannot_work_are_refused_at_render_time(values: list[str], complaint: str) -> None:
    """A mistaken value fails `helm install` with a message naming it, not a broken operator later.

    `replicas` is not the chart's name for it (`replicaCount` is). Without leader election, a second
    replica would race the first: one only. The election's durations must leave a leader time to stop
    acting before its Lease may be taken (1.2 x retryPeriod < renewDeadline < leaseDuration), which the
    operator would refuse at startup (crash-looping every pod); the chart refuses them at render time.
    """
    for helm_name in HELMS:
        result = helm(helm_name, "template", RELEASE, str(CHART), *values, check=False)
        assert result.returncode != 0, f"{helm_name} accepted {values}"
        assert complaint in result.stderr, result.stderr


# --- the operator's Deployment --------------------------------------------------------------------


def test_two_replicas_roll_one_extra_pod_at_a_time() -> None:
    """Two pods by default (one leads, one stands by); an upgrade adds a new pod before stopping an old
    one, never running with one fewer: safe, because only the Lease's holder acts."""
    deployment = only(render(), "Deployment", RELEASE_NAMESPACE)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == RELEASE
    assert only(render("--set", "replicaCount=3"), "Deployment", RELEASE_NAMESPACE)["spec"]["replicas"] == 3


def test_without_leader_election_one_pod_replaced_by_recreate() -> None:
    """Nothing else keeps two copies from acting at once: one pod, the old gone before the new starts."""
    objs = render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    deployment = only(objs, "Deployment", RELEASE_NAMESPACE)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(objs)
    assert env["PHALANX_LEADER_ELECTION"] == "false"
    assert not {name for name in env if name.startswith(("PHALANX_LEASE", "PHALANX_RENEW", "PHALANX_RETRY"))}
    assert not named(objs, "Role", LEADER_ROLE) and not named(objs, "RoleBinding", LEADER_ROLE)
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget"]


def test_container_runs_the_operator_with_its_configuration() -> None:
    objs = render("--set", "metrics.port=9100", "--set", "logFormat=json", "--set", "apiThreads=24")
    c = container(objs)
    assert c["command"] == ["python", "-m", "phalanx"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert c["image"] == f"phalanx:{chart['appVersion']}"
    assert env_of(objs) == {
        "PHALANX_NAMESPACES": "",
        "PHALANX_METRICS_PORT": "9100",
        "PHALANX_LOG_FORMAT": "json",
        "PHALANX_API_THREADS": "24",
        "PHALANX_LIVENESS_PORT": "8081",
        "PHALANX_NODE_HEARTBEATS": "true",
        "PHALANX_LEADER_ELECTION": "true",
        "PHALANX_LEASE_NAME": RELEASE,
        "PHALANX_LEASE_DURATION": "15",
        "PHALANX_RENEW_DEADLINE": "10",
        "PHALANX_RETRY_PERIOD": "2",
    }
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9100, "health": 8081}
    service = only(objs, "Service", RELEASE_NAMESPACE)
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_leader_election_settings_and_the_pods_identity_reach_the_operator() -> None:
    """The durations as set; the Lease named after the release (two releases never share one) and, by
    the downward API, in the pods' own namespace (POD_NAMESPACE), each pod known by its name (POD_NAME)."""
    objs = render(
        "--set",
        "leaderElection.leaseDuration=30,leaderElection.renewDeadline=20,leaderElection.retryPeriod=4",
        "--set",
        "fullnameOverride=ops",
    )
    env = env_of(objs)
    assert env["PHALANX_LEADER_ELECTION"] == "true"
    assert env["PHALANX_LEASE_NAME"] == "ops"
    assert (env["PHALANX_LEASE_DURATION"], env["PHALANX_RENEW_DEADLINE"], env["PHALANX_RETRY_PERIOD"]) == (
        "30",
        "20",
        "4",
    )
    assert "PHALANX_LEASE_NAMESPACE" not in env and "PHALANX_IDENTITY" not in env  # the operator's defaults
    downward = {e["name"]: e["valueFrom"] for e in container(objs)["env"] if "valueFrom" in e}
    assert downward == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    assert only(objs, "Deployment", RELEASE_NAMESPACE)["metadata"]["namespace"] == RELEASE_NAMESPACE


def test_probes_use_the_operators_health_and_readiness_endpoints() -> None:
    """Every pod serves /healthz and /readyz at 0.0.0.0:8081, in either role: a standby is alive and
    ready (to take over). /leader, which answers 200 on the leader only, is for people, not probes."""
    objs = render()
    c = container(objs)
    health_port = next(p["containerPort"] for p in c["ports"] if p["name"] == "health")
    assert health_port == 8081 == int(env_of(objs)["PHALANX_LIVENESS_PORT"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_watched_namespaces_reach_the_operator_comma_separated() -> None:
    assert env_of(render("--set", "watchNamespaces={data,cache}"))["PHALANX_NAMESPACES"] == "data,cache"


def test_pod_is_locked_down() -> None:
    """Non-root, read-only root filesystem, no capabilities, no privilege escalation, default seccomp."""
    objs = render()
    pod = only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(objs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_image_user_is_the_charts_non_root_user() -> None:
    """runAsNonRoot can only be verified by the kubelet for a numeric USER, and it must match the chart's."""
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users, "the Dockerfile must switch to a non-root USER"
    uid, _, gid = users[-1].partition(":")
    pod = only(render(), "Deployment", RELEASE_NAMESPACE)["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"] != 0
    assert int(gid) == pod["securityContext"]["runAsGroup"]
    exposed = {int(port) for line in dockerfile if line.startswith("EXPOSE ") for port in line.split()[1:]}
    assert exposed == {8080, 8081}
    assert any(line.startswith("ENTRYPOINT") and json.loads(line.split(None, 1)[1]) for line in dockerfile)


def test_scheduling_and_pod_metadata_values_are_applied() -> None:
    objs = render(
        "--set",
        "nodeSelector.role=ops",
        "--set",
        "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
        "--set",
        "podAnnotations.note=x",
        "--set",
        "podLabels.team=db",
        "--set",
        "priorityClassName=system-cluster-critical",
        "--set",
        "imagePullSecrets[0].name=pull",
        "--set",
        "image.repository=example.invalid/phalanx,image.tag=dev,image.pullPolicy=Never",
    )
    template = only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["template"]
    assert template["spec"]["nodeSelector"] == {"role": "ops"}
    assert template["spec"]["tolerations"][2:] == [{"key": "dedicated", "operator": "Exists"}]
    assert template["spec"]["priorityClassName"] == "system-cluster-critical"
    assert template["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    assert template["metadata"]["annotations"] == {"note": "x"}
    assert template["metadata"]["labels"]["team"] == "db"
    assert container(objs)["image"] == "example.invalid/phalanx:dev"
    assert container(objs)["imagePullPolicy"] == "Never"


# --- availability: budget, spread, node failure ----------------------------------------------------


def test_disruption_budget_lets_a_drain_take_one_operator_pod_at_a_time() -> None:
    """With two or more replicas; none with one, whose budget could only block drains."""
    objs = render()
    budget = only(objs, "PodDisruptionBudget", RELEASE_NAMESPACE)
    assert budget["metadata"]["name"] == RELEASE
    assert budget["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["selector"]["matchLabels"]},
    }
    assert (
        only(render("--set", "replicaCount=3"), "PodDisruptionBudget", RELEASE_NAMESPACE)["spec"]["maxUnavailable"] == 1
    )
    assert not [o for o in render("--set", "replicaCount=1") if o["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize("version", [OLDEST, *VERSIONS])
def test_disruption_budget_api_version_follows_the_cluster(helm_name: str, version: str) -> None:
    """policy/v1 from 1.21 (and the only one from 1.25); policy/v1beta1 before, as on the 1.20 test bed.

    On an install Helm asks the cluster which versions it serves; `helm template` has --kube-version.
    """
    budget = only(render("--kube-version", version, helm_name=helm_name), "PodDisruptionBudget", RELEASE_NAMESPACE)
    assert budget["apiVersion"] == ("policy/v1beta1" if version == OLDEST else "policy/v1")


def test_replicas_spread_over_zones_and_nodes_by_default_and_on_request() -> None:
    """Soft constraints (ScheduleAnyway): the Lease, not placement, keeps one acting, and a hard
    per-node rule could leave a replacement Pending beside a cordoned node."""
    objs = render()
    selector = only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["selector"]
    assert pod_spec(objs)["topologySpreadConstraints"] == [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]
    own = render(
        "--set-json",
        'topologySpreadConstraints=[{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule",'
        ' "labelSelector": {"matchLabels": {"app": "x"}}}, {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",'
        ' "whenUnsatisfiable": "DoNotSchedule"}]',
    )
    assert pod_spec(own)["topologySpreadConstraints"] == [
        {
            "maxSkew": 2,
            "topologyKey": "rack",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "x"}},
        },
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": selector,
        },
    ]
    assert "topologySpreadConstraints" not in pod_spec(render("--set", "topologySpreadConstraints=null"))
    assert "topologySpreadConstraints" not in pod_spec(render("--set-json", "topologySpreadConstraints=[]"))


def test_pods_leave_a_failed_node_in_seconds_not_five_minutes() -> None:
    """Eviction from a not-ready or unreachable node after nodeFailureTolerationSeconds (30), not the
    cluster's default 300, so the second replica returns sooner (failover itself is the Lease's)."""

    def failure_tolerations(objs: list[Obj]) -> list[Obj]:
        return list(pod_spec(objs)["tolerations"][:2])

    expected = [
        {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
        for taint in ("not-ready", "unreachable")
    ]
    assert pod_spec(render())["tolerations"] == expected
    assert failure_tolerations(render("--set", "nodeFailureTolerationSeconds=5")) == [
        {**t, "tolerationSeconds": 5} for t in expected
    ]


# --- metrics ----------------------------------------------------------------------------------------


def test_service_monitor_only_when_enabled() -> None:
    """Rendering a ServiceMonitor where the Prometheus Operator is absent would fail the install."""
    assert not [o for o in render() if o["kind"] == "ServiceMonitor"]
    objs = render("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=kps")
    monitor = only(objs, "ServiceMonitor", RELEASE_NAMESPACE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = only(objs, "Service", RELEASE_NAMESPACE)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}


# --- RBAC -------------------------------------------------------------------------------------------


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses() -> None:
    objs = render()
    role = only(operators(objs), "ClusterRole")
    assert permissions(role) == NAMESPACED | CLUSTER
    binding = only(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RELEASE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}]
    # The only Roles: leader election's (the ClusterRole already grants events in its namespace), and
    # the reading of the nodes' heartbeats in kube-node-lease.
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in ("Role", "RoleBinding")) == [
        ("Role", LEADER_ROLE),
        ("Role", HEARTBEATS_ROLE),
        ("RoleBinding", LEADER_ROLE),
        ("RoleBinding", HEARTBEATS_ROLE),
    ]
    assert named_permissions(only(objs, "Role", RELEASE_NAMESPACE)) == LEASE
    assert permissions(only(objs, "Role", "kube-node-lease")) == grant("coordination.k8s.io", ["leases"], READ)
    assert env_of(objs)["PHALANX_NODE_HEARTBEATS"] == "true"
    without = render("--set", "nodeHeartbeats=false")
    assert not named(without, "Role", HEARTBEATS_ROLE) and env_of(without)["PHALANX_NODE_HEARTBEATS"] == "false"


def test_namespaced_rbac_grants_namespaced_rights_only_in_watched_namespaces() -> None:
    """With watchNamespaces, no cluster-wide right to pods, volumes or snapshots remains."""
    objs = render("--set", "watchNamespaces={data,cache}")
    assert permissions(only(operators(objs), "ClusterRole")) == CLUSTER
    for ns in ("data", "cache"):
        assert permissions(only(objs, "Role", ns)) == NAMESPACED
        binding = only(objs, "RoleBinding", ns)
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == only(objs, "Role", ns)["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}]
    assert (
        only(objs, "ClusterRoleBinding")["roleRef"]["name"] == only(operators(objs), "ClusterRole")["metadata"]["name"]
    )


@pytest.mark.parametrize(
    ("watched", "events"),
    [("", False), ("{data,cache}", True), (f"{{data,{RELEASE_NAMESPACE}}}", False)],
    ids=["cluster-wide", "release-namespace-unwatched", "release-namespace-watched"],
)
def test_leader_election_role_grants_the_lease_and_nothing_more(watched: str, events: bool) -> None:
    """In the release namespace: the release's Lease got and updated by name, a Lease created; and the
    LeaderElected Event only where no other role already grants events in that namespace."""
    objs = render(*(["--set", f"watchNamespaces={watched}"] if watched else []))
    [role] = named(objs, "Role", LEADER_ROLE)
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert named_permissions(role) == LEASE | (LEASE_EVENTS if events else set())
    [binding] = named(objs, "RoleBinding", LEADER_ROLE)
    assert binding["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEADER_ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}]
    # Events in the release namespace, from one role or another, exactly once.
    in_release_namespace = [
        o
        for o in objs
        if o["kind"] == "ClusterRole" or (o["kind"] == "Role" and o["metadata"]["namespace"] == RELEASE_NAMESPACE)
    ]
    assert sum(("", "events", "create") in permissions(r) for r in in_release_namespace) == 1
    # The Lease's name is the operator's.
    assert {(g, r, v, n) for g, r, v, n in named_permissions(role) if n} == {
        ("coordination.k8s.io", "leases", verb, env_of(objs)["PHALANX_LEASE_NAME"]) for verb in ("get", "update")
    }


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rbac_has_no_wildcards_and_never_touches_secrets(values: list[str]) -> None:
    """Leases only in leader election's Role, in the release namespace, never deleted, listed or watched."""
    for role in (o for o in render(*values) if o["kind"] in ("ClusterRole", "Role")):
        for group, resource, verb in permissions(role):
            assert "*" not in (group, resource, verb)
            assert resource not in ("secrets", "configmaps", "serviceaccounts")
            assert verb not in ("escalate", "bind", "impersonate", "deletecollection")
            if resource == "leases" and role["metadata"]["name"] == HEARTBEATS_ROLE:
                assert role["metadata"]["namespace"] == "kube-node-lease" and verb in READ  # heartbeats: read
            elif resource == "leases":
                assert role["metadata"]["name"] == LEADER_ROLE
                assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
                assert verb in ("get", "create", "update")


def test_rbac_and_service_account_can_be_brought_by_the_user() -> None:
    objs = render("--set", "rbac.create=false", "--set", "serviceAccount.create=false,serviceAccount.name=ops-sa")
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    assert env_of(objs)["PHALANX_LEADER_ELECTION"] == "true"  # their roles must then grant the Lease
    assert not [o for o in objs if o["kind"] == "ServiceAccount"]
    assert only(objs, "Deployment", RELEASE_NAMESPACE)["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"


@pytest.mark.parametrize("helm_name", HELMS)
def test_names_that_yaml_reads_as_booleans_stay_strings(helm_name: str) -> None:
    """Helm re-parses rendered YAML as YAML 1.1, where y, on, no, off are booleans: every name is quoted.

    Unquoted, release `y` or namespace `on` fails the install with "cannot unmarshal bool into ...
    labels of type string"; strict schema validation sees the same type error.
    """
    args = ["template", "y", str(CHART), "--namespace", "on", "--set", "watchNamespaces={no,off}"]
    objs = [o for o in yaml.safe_load_all(helm(helm_name, *args, "--set", "fullnameOverride=yes").stdout) if o]
    for obj in objs:
        kubernetes_validate.validate(obj, VERSIONS[0], strict=True)
    assert {o["metadata"].get("namespace") for o in objs} == {"on", "no", "off", "kube-node-lease", None}
    assert only(objs, "RoleBinding", "no")["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "yes",
        "namespace": "on",
    }


def test_names_follow_release_and_overrides() -> None:
    """Two releases in one cluster never collide on their cluster-scoped objects."""
    result = helm("helm3", "template", "other", str(CHART), "--namespace", "x")
    names = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(result.stdout) if o}
    assert ("ClusterRole", "other-phalanx") in names
    assert ("Service", "other-phalanx-metrics") in names
    assert ("Role", "other-phalanx-leader-election") in names
    assert ("PodDisruptionBudget", "other-phalanx") in names
    objs = render("--set", "fullnameOverride=ops")
    assert only(operators(objs), "ClusterRole")["metadata"]["name"] == "ops"
    assert env_of(objs)["PHALANX_LEASE_NAME"] == "ops"
    assert named(objs, "Role", "ops-leader-election")


# --- chart metadata and the CRD -------------------------------------------------------------------


def test_chart_metadata() -> None:
    """appVersion follows the Python project's version, so the default image tag is the released one."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "phalanx"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == project["version"]


def test_chart_crd_is_a_byte_identical_copy_of_the_generated_one() -> None:
    """Helm installs the CRD from the chart's crds/; it must be the one generated from the models.

    On failure: `make crds` (which should copy it), or
    `cp crds/replicatedstores.phalanx.dev.yaml charts/phalanx/crds/`.
    """
    generated = REPO / "crds" / CRD_NAME
    copy = CHART / "crds" / CRD_NAME
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD_NAME]
    assert copy.read_bytes() == generated.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from {generated.relative_to(REPO)}: run `make crds` "
        f"or `cp {generated.relative_to(REPO)} {copy.relative_to(REPO)}`"
    )


def test_kind_script_is_valid_bash() -> None:
    """hack/kind.sh cannot run here (no Docker), but it must at least parse."""
    script = REPO / "hack" / "kind.sh"
    assert script.stat().st_mode & 0o111, "hack/kind.sh must be executable"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
