#!/usr/bin/env bash
# Run Phalanx on a local kind cluster, for users with Docker (the project's own tests use the
# Docker-free sandbox instead: see README.md).
#
#   hack/kind.sh            create the cluster, storage, snapshots, image and the Phalanx release
#   hack/kind.sh down       delete the cluster
#
# What it builds:
#   - a kind cluster with one control-plane node and three workers, one per zone: each worker carries
#     topology.kubernetes.io/zone=zone-a|zone-b|zone-c, so Phalanx spreads members over three zones;
#   - the upstream external-snapshotter: the snapshot.storage.k8s.io CRDs and the snapshot controller;
#   - the CSI hostpath driver, in its distributed form (one instance per node, volumes local to their
#     node), with a StorageClass `csi-hostpath-fast` and a VolumeSnapshotClass `csi-hostpath-snapclass`;
#   - the Phalanx image from the repository's Dockerfile, loaded into the nodes (no registry involved);
#   - the chart charts/phalanx, installed as release `phalanx` in namespace `phalanx-system`.
#
# About snapshots on kind. The hostpath driver's distributed deployment provisions volumes on every
# node but ships no snapshotter; this script adds one per node (csi-snapshotter --node-deployment)
# and turns on the snapshot controller's distributed snapshotting. A snapshot lives on the node of its
# volume, so it can be restored on that node only. With one worker per zone, that is exactly where
# Phalanx puts a replacement member (a member's volume stays in its zone); a restore in another zone
# (recovery.zoneFailure: Redistribute) cannot be served by this driver, and Phalanx falls back to an
# empty volume there. Real zonal CSI drivers have no such limit. HOSTPATH_SNAPSHOTS=false skips the
# snapshot part (Phalanx then seeds every replacement from its peers).
#
# Every version and download location is a variable; override any of them in the environment, e.g.
#   SNAPSHOTTER_VERSION=v8.3.0 HOSTPATH_VERSION=v1.17.1 hack/kind.sh
# Requires: docker, kind (v0.20 or newer), kubectl, helm (3 or 4), curl, tar.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

CLUSTER=${CLUSTER:-phalanx}
# Node image; empty: kind's default for its version. Any Kubernetes 1.27 or newer.
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
ZONES=${ZONES:-"zone-a zone-b zone-c"}

SNAPSHOTTER_VERSION=${SNAPSHOTTER_VERSION:-v8.2.0}
SNAPSHOTTER_BASE_URL=${SNAPSHOTTER_BASE_URL:-https://raw.githubusercontent.com/kubernetes-csi/external-snapshotter/${SNAPSHOTTER_VERSION}}
SNAPSHOT_CRDS_URL=${SNAPSHOT_CRDS_URL:-${SNAPSHOTTER_BASE_URL}/client/config/crd}
SNAPSHOT_CONTROLLER_URL=${SNAPSHOT_CONTROLLER_URL:-${SNAPSHOTTER_BASE_URL}/deploy/kubernetes/snapshot-controller}
CSI_SNAPSHOTTER_RBAC_URL=${CSI_SNAPSHOTTER_RBAC_URL:-${SNAPSHOTTER_BASE_URL}/deploy/kubernetes/csi-snapshotter/rbac-csi-snapshotter.yaml}
# The per-node snapshotter sidecar. Empty: the csi-snapshotter image of the same release and registry
# as the snapshot controller that SNAPSHOT_CONTROLLER_URL deploys (read from that Deployment).
CSI_SNAPSHOTTER_IMAGE=${CSI_SNAPSHOTTER_IMAGE:-}

HOSTPATH_VERSION=${HOSTPATH_VERSION:-v1.17.1}
HOSTPATH_ARCHIVE_URL=${HOSTPATH_ARCHIVE_URL:-https://github.com/kubernetes-csi/csi-driver-host-path/archive/refs/tags/${HOSTPATH_VERSION}.tar.gz}
HOSTPATH_DEPLOYMENT=${HOSTPATH_DEPLOYMENT:-kubernetes-distributed}
HOSTPATH_SNAPSHOTS=${HOSTPATH_SNAPSHOTS:-true}

IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-phalanx}
IMAGE_TAG=${IMAGE_TAG:-dev}
RELEASE=${RELEASE:-phalanx}
NAMESPACE=${NAMESPACE:-phalanx-system}
HELM=${HELM:-helm}
# Extra arguments for `helm upgrade --install`, e.g. "--set logFormat=json".
HELM_ARGS=${HELM_ARGS:-}

say() { printf '[kind.sh] %s\n' "$*" >&2; }
KUBECTL=(kubectl --context "kind-${CLUSTER}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    say "missing tools: ${missing[*]}"
    exit 1
  fi
}

kind_config() {
  cat <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
EOF
  local zone
  for zone in $ZONES; do
    cat <<EOF
  - role: worker
    labels:
      topology.kubernetes.io/zone: ${zone}
EOF
  done
}

create_cluster() {
  if kind get clusters | grep -qx "$CLUSTER"; then
    say "cluster $CLUSTER exists, reusing it"
  else
    say "creating cluster $CLUSTER with workers in zones: $ZONES"
    local args=(create cluster --name "$CLUSTER" --config -)
    if [[ -n $KIND_NODE_IMAGE ]]; then
      args+=(--image "$KIND_NODE_IMAGE")
    fi
    kind_config | kind "${args[@]}"
  fi
  "${KUBECTL[@]}" wait --for=condition=Ready nodes --all --timeout=180s
  "${KUBECTL[@]}" get nodes -L topology.kubernetes.io/zone
}

install_snapshot_controller() {
  say "installing external-snapshotter $SNAPSHOTTER_VERSION (CRDs and snapshot controller)"
  local crd
  for crd in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
    "${KUBECTL[@]}" apply --server-side -f "${SNAPSHOT_CRDS_URL}/snapshot.storage.k8s.io_${crd}.yaml"
  done
  "${KUBECTL[@]}" wait --for=condition=Established --timeout=60s \
    crd/volumesnapshotclasses.snapshot.storage.k8s.io \
    crd/volumesnapshotcontents.snapshot.storage.k8s.io \
    crd/volumesnapshots.snapshot.storage.k8s.io
  # Both manifests put the controller into kube-system.
  "${KUBECTL[@]}" apply -f "${SNAPSHOT_CONTROLLER_URL}/rbac-snapshot-controller.yaml"
  "${KUBECTL[@]}" apply -f "${SNAPSHOT_CONTROLLER_URL}/setup-snapshot-controller.yaml"
  if [[ $HOSTPATH_SNAPSHOTS == true ]]; then
    # Distributed snapshotting: the controller labels each VolumeSnapshotContent with the node of its
    # volume, for that node's snapshotter. It needs to read nodes for that (left out of upstream RBAC).
    "${KUBECTL[@]}" apply -f - <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: snapshot-controller-node-reader
rules:
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: snapshot-controller-node-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: snapshot-controller-node-reader
subjects:
  - kind: ServiceAccount
    name: snapshot-controller
    namespace: kube-system
EOF
    local args
    args=$("${KUBECTL[@]}" -n kube-system get deployment snapshot-controller \
      -o jsonpath='{.spec.template.spec.containers[0].args}')
    if [[ $args != *--enable-distributed-snapshotting* ]]; then
      "${KUBECTL[@]}" -n kube-system patch deployment snapshot-controller --type=json -p \
        '[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--enable-distributed-snapshotting=true"}]'
    fi
  fi
  "${KUBECTL[@]}" -n kube-system rollout status deployment/snapshot-controller --timeout=180s
}

install_hostpath_driver() {
  say "installing the CSI hostpath driver $HOSTPATH_VERSION ($HOSTPATH_DEPLOYMENT)"
  local src="$WORK/csi-driver-host-path"
  mkdir -p "$src"
  curl -fsSL "$HOSTPATH_ARCHIVE_URL" | tar -xz -C "$src" --strip-components=1
  local deploy="$src/deploy/$HOSTPATH_DEPLOYMENT"
  if [[ ! -x $deploy/deploy.sh ]]; then
    say "no deploy/$HOSTPATH_DEPLOYMENT/deploy.sh in $HOSTPATH_ARCHIVE_URL"
    exit 1
  fi
  # The upstream script uses plain `kubectl`: point it at this cluster.
  local kubeconfig="$WORK/kubeconfig"
  kind get kubeconfig --name "$CLUSTER" >"$kubeconfig"
  KUBECONFIG=$kubeconfig "$deploy/deploy.sh"

  if [[ $HOSTPATH_DEPLOYMENT == kubernetes-distributed && $HOSTPATH_SNAPSHOTS == true ]]; then
    add_node_snapshotters
  fi
  # A StorageClass for every deployment flavour (the distributed one ships its own `fast`/`slow`).
  if ! "${KUBECTL[@]}" get storageclass csi-hostpath-fast >/dev/null 2>&1; then
    "${KUBECTL[@]}" apply -f - <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: csi-hostpath-fast
provisioner: hostpath.csi.k8s.io
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
  fi
  if [[ $HOSTPATH_SNAPSHOTS == true ]]; then
    "${KUBECTL[@]}" apply -f - <<'EOF'
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
EOF
  fi
}

# A csi-snapshotter sidecar in each node's hostpath plugin pod, handling the snapshots of that node's
# volumes only (--node-deployment), with the upstream snapshotter RBAC bound to the pod's account.
add_node_snapshotters() {
  local ds=csi-hostpathplugin ns image account
  ns=$("${KUBECTL[@]}" get daemonset -A -l app.kubernetes.io/name=csi-hostpathplugin \
    -o jsonpath='{.items[0].metadata.namespace}')
  if "${KUBECTL[@]}" -n "$ns" get daemonset "$ds" \
    -o jsonpath='{.spec.template.spec.containers[*].name}' | grep -qw csi-snapshotter; then
    say "the hostpath plugin already runs a snapshotter"
    return
  fi
  image=$CSI_SNAPSHOTTER_IMAGE
  if [[ -z $image ]]; then
    image=$("${KUBECTL[@]}" -n kube-system get deployment snapshot-controller \
      -o jsonpath='{.spec.template.spec.containers[0].image}')
    image=${image/\/snapshot-controller:/\/csi-snapshotter:}
  fi
  account=$("${KUBECTL[@]}" -n "$ns" get daemonset "$ds" -o jsonpath='{.spec.template.spec.serviceAccountName}')
  say "adding per-node snapshotters ($image) to daemonset $ns/$ds"
  "${KUBECTL[@]}" apply -f "$CSI_SNAPSHOTTER_RBAC_URL"
  "${KUBECTL[@]}" apply -f - <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: csi-hostpathplugin-node-snapshotter
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: external-snapshotter-runner
subjects:
  - kind: ServiceAccount
    name: ${account}
    namespace: ${ns}
EOF
  local patch
  patch=$(
    cat <<EOF
[{"op": "add", "path": "/spec/template/spec/containers/-", "value": {
  "name": "csi-snapshotter",
  "image": "${image}",
  "args": ["--v=5", "--csi-address=/csi/csi.sock", "--node-deployment=true", "--leader-election=false"],
  "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
  "securityContext": {"privileged": true},
  "volumeMounts": [{"name": "socket-dir", "mountPath": "/csi"}]
}}]
EOF
  )
  "${KUBECTL[@]}" -n "$ns" patch daemonset "$ds" --type=json -p "$patch"
  "${KUBECTL[@]}" -n "$ns" rollout status daemonset/"$ds" --timeout=300s
}

build_and_load_image() {
  local image="${IMAGE_REPOSITORY}:${IMAGE_TAG}"
  say "building $image and loading it into the nodes"
  docker build -t "$image" "$REPO"
  kind load docker-image "$image" --name "$CLUSTER"
}

install_phalanx() {
  say "installing the chart as release $RELEASE in $NAMESPACE"
  # Helm installs the CRD from the chart's crds/ only when it is absent: apply it, so a rerun after a
  # change of the API updates it too.
  "${KUBECTL[@]}" apply --server-side --force-conflicts -f "$REPO/charts/phalanx/crds/"
  # shellcheck disable=SC2086  # HELM_ARGS is a list of words on purpose
  "$HELM" upgrade --install "$RELEASE" "$REPO/charts/phalanx" \
    --kube-context "kind-${CLUSTER}" --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY" --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
    --wait --timeout 5m $HELM_ARGS
  "${KUBECTL[@]}" -n "$NAMESPACE" get pods -o wide
  cat >&2 <<EOF

Phalanx runs on kind cluster "$CLUSTER". Try a store on the hostpath storage:

  kubectl config use-context kind-${CLUSTER}
  kubectl create namespace demo
  # in the store's spec: storage.storageClassName: csi-hostpath-fast,
  #                      snapshots.volumeSnapshotClassName: csi-hostpath-snapclass
  kubectl -n demo apply -f examples/minimal.yaml
  kubectl get rstore,pods -n demo -o wide

Delete the cluster with: hack/kind.sh down
EOF
}

main() {
  case "${1:-up}" in
    up)
      need docker kind kubectl "$HELM" curl tar
      create_cluster
      install_snapshot_controller
      install_hostpath_driver
      build_and_load_image
      install_phalanx
      ;;
    down)
      need kind
      kind delete cluster --name "$CLUSTER"
      ;;
    *)
      say "usage: $0 [up|down]"
      exit 2
      ;;
  esac
}

main "$@"
