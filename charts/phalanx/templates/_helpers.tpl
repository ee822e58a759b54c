{{/*
Names, labels and the operator's RBAC rules, shared by every template.
*/}}

{{- define "phalanx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object of the release; the release name alone when it already contains the
chart name (release "phalanx" gives "phalanx", not "phalanx-phalanx").
*/}}
{{- define "phalanx.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "phalanx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "phalanx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "phalanx.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "phalanx.labels" -}}
helm.sh/chart: {{ include "phalanx.chart" . | quote }}
{{ include "phalanx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: phalanx
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end }}

{{- define "phalanx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "phalanx.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "phalanx.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
RBAC, least privilege: exactly what the operator reads and writes, nothing more. No secrets, no
configmaps, no deletes of anything it does not own (stores, services and budgets are only patched;
pods, claims and snapshots are deleted with uid preconditions by the operator's `act` module).
Leases only in the release namespace, for leader election (phalanx.rbac.leaderElectionRules); Kopf
itself runs standalone, without peering.

Namespaced rules: bound cluster-wide by a ClusterRole, or per watched namespace by a Role.
*/}}
{{- define "phalanx.rbac.namespacedRules" -}}
- apiGroups: ["phalanx.dev"]
  resources: ["replicatedstores", "replicatedstores/status", "replicatedstores/finalizers"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: [""]
  resources: ["pods", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots"]
  verbs: ["get", "list", "watch", "create", "delete"]
{{- end }}

{{/*
Cluster-scoped reads, always through a ClusterRole: nodes (zones, readiness), persistent volumes
(where a member's data lives), volume snapshot classes, and the namespaces and CRDs that Kopf scans.
Persistent volumes may also be patched: deletionPolicy Retain sets their reclaim policy to Retain,
so that deleting the namespace cannot take the data with it.
*/}}
{{- define "phalanx.rbac.clusterRules" -}}
- apiGroups: [""]
  resources: ["nodes", "namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotclasses"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
The Lease the replicas elect a leader on: in the release namespace (the pods' own, POD_NAMESPACE),
named after the release, so that two releases never share one.
*/}}
{{- define "phalanx.leaseName" -}}
{{- include "phalanx.fullname" . }}
{{- end }}

{{/*
Leader election's rights, in the release namespace only: get and update of the release's Lease (by
name), and create, which RBAC cannot restrict by name (the name of an object being created is not
known to the authorizer). Never delete, list or watch: the official client's election only reads,
creates and replaces its Lease (a leader giving the Lease back replaces it too).

The leader also posts a LeaderElected Event on the Lease. Events in the release namespace are already
granted cluster-wide (watchNamespaces empty) or by the Role of a watched namespace that is the release
namespace; otherwise this Role grants them.
*/}}
{{- define "phalanx.rbac.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "phalanx.leaseName" . | quote }}]
  verbs: ["get", "update"]
{{- $namespaces := .Values.watchNamespaces | default list }}
{{- if and $namespaces (not (has .Release.Namespace $namespaces)) }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
{{- end }}

{{/*
policy/v1 PodDisruptionBudgets from Kubernetes 1.21 (policy/v1beta1 is gone from 1.25). On a cluster,
Helm knows the API versions it serves; `helm template` assumes every version its client knows, so the
Kubernetes version (--kube-version) decides there.
*/}}
{{- define "phalanx.pdb.apiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end }}
{{- end }}

{{/*
What values.schema.json cannot compare: a leader must stop acting (renewDeadline) before its Lease
may be taken (leaseDuration), after several tries (1.2 x retryPeriod); the operator refuses to start
otherwise, so the chart refuses to render.
*/}}
{{- define "phalanx.validate" -}}
{{- $le := .Values.leaderElection }}
{{- if $le.enabled }}
{{- $lease := float64 $le.leaseDuration }}
{{- $renew := float64 $le.renewDeadline }}
{{- $retry := float64 $le.retryPeriod }}
{{- if ge $renew $lease }}
{{- fail (printf "leaderElection.renewDeadline (%v) must be less than leaderElection.leaseDuration (%v): the leader must stop acting before another pod may take its Lease" $le.renewDeadline $le.leaseDuration) }}
{{- end }}
{{- if le $renew (mulf 1.2 $retry) }}
{{- fail (printf "leaderElection.renewDeadline (%v) must be more than 1.2 x leaderElection.retryPeriod (%v)" $le.renewDeadline $le.retryPeriod) }}
{{- end }}
{{- end }}
{{- end }}
