"""``python -m phalanx plan -f store.yaml``: what applying a ReplicatedStore manifest would make
Phalanx do now, against the live cluster, writing nothing.

Beside observe → plan → act, not in it: the dry run reads the store's world once, exactly as the
operator's watch cache selects and slims it (``WatchCache.load``: one LIST per kind, no watch), and
decides with the operator's own pass (``reconcile.decide``: parse, observe, plan), with the manifest's
spec and annotations in place of the stored ones and the stored status as the planner's memory. So the
preview cannot drift from what a pass would decide. It prints the plan: the actions in the order act
would take them, each with its reason, the notes, and the status a pass would write.

Read-only by construction, not by care: no ``Actor`` is made, and the client it reads through
(``ReadOnlyKube``) refuses every request but GET before it leaves the process.

What only a running operator knows is not in the preview: writes the API server refused in its last
passes (``Stalled``, reason ``Refused``), a refused volume expansion, and its own status writes the
watch has not brought back yet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import kubernetes.config
import urllib3
import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from phalanx import kube as k
from phalanx.cache import WatchCache
from phalanx.kube import ApiError, Kube, Obj
from phalanx.models import GROUP, KIND, VERSION, ConditionType, ReplicatedStoreSpec, ReplicatedStoreStatus
from phalanx.names import StoreRef
from phalanx.plan import Action, Plan
from phalanx.reconcile import Memory, decide, parse

HEADLINE: Final = "dry run: nothing was written"
PLACEHOLDER_UID: Final = "00000000-0000-0000-0000-000000000000"
"""The uid a store that does not exist yet is planned under (the API server gives it its own on
create): no pod is controlled by it and no snapshot carries it, as for any new store."""
EXIT_INVALID: Final = 2
"""An invalid spec, or a manifest that is not one ReplicatedStore (argparse's usage errors exit 2 too)."""
EXIT_UNREADABLE: Final = 1
"""The cluster could not be read."""
DELETING: Final = "the store is being deleted: its finalizer applies deletionPolicy, and a pass does nothing"

_IN_CLUSTER_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_AT_REST: Final = {
    ConditionType.READY.value: "True",
    ConditionType.RECONCILING.value: "False",
    ConditionType.STALLED.value: "False",
    ConditionType.DEGRADED.value: "False",
    ConditionType.FOREIGN_OBJECTS.value: "False",
}
"""A condition's status on a store at rest (any other type: True). The preview lists those that
differ: what a person should look at."""
_STATUS_FIELDS: Final[tuple[str, ...]] = ("phase", "readyDisplay", "zonesDisplay", "lastSerial", "observedGeneration")


class ReadOnlyError(RuntimeError):
    """The dry run asked for something other than a read: a bug, stopped before it was sent."""


class ReadOnlyKube(Kube):
    """A client that sends GETs only. Every ``Kube`` method (list, get, watch, create, patch, delete)
    goes through ``request``, so refusing there, before anything is sent, keeps the dry run read-only
    whatever the code above it calls."""

    def request(self, method: str, path: str, **options: Any) -> Any:
        if method.upper() != "GET":
            raise ReadOnlyError(f"{method} {path}: a dry run writes nothing")
        return super().request(method, path, **options)


class ManifestError(ValueError):
    """The manifest is not one ReplicatedStore, or it names a namespace other than ``--namespace``."""


@dataclass(frozen=True)
class Preview:
    """What the dry run read of a store, and what a pass would decide about it."""

    store: StoreRef
    exists: bool
    """False: the store does not exist yet, and ``store.uid`` is ``PLACEHOLDER_UID``."""
    generation: int
    """The store's generation once the manifest is applied (the API server adds one for a new spec)."""
    plan: Plan | None
    """None while the store is being deleted: its finalizer has it, and a pass does nothing."""


# ------------------------------------------------------------------------------------------------
# Reading


def load_manifest(text: str) -> Obj:
    """The one ReplicatedStore of a YAML manifest (empty documents ignored)."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError(f"not YAML: {error}") from error
    if len(documents) != 1:
        raise ManifestError(f"expected one ReplicatedStore, found {len(documents)} documents")
    manifest = documents[0]
    api_version = f"{GROUP}/{VERSION}"
    if not isinstance(manifest, dict) or (manifest.get("apiVersion"), manifest.get("kind")) != (api_version, KIND):
        raise ManifestError(f"expected apiVersion {api_version} and kind {KIND}")
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name") or not isinstance(metadata["name"], str):
        raise ManifestError("metadata.name is missing")
    if not isinstance(manifest.get("spec") or {}, dict):
        raise ManifestError("spec is not a mapping")
    return manifest


def namespace_for(manifest: Obj, flag: str | None, kubeconfig: str | None) -> str:
    """The namespace ``kubectl apply`` would use: ``--namespace``, else the manifest's, else the
    client's context's, else ``default``. A manifest naming another one than ``--namespace`` is
    refused, as kubectl refuses it."""
    declared = manifest["metadata"].get("namespace")
    if flag and declared and flag != declared:
        raise ManifestError(f"the manifest's namespace ({declared}) does not match --namespace ({flag})")
    return str(flag or declared or context_namespace(kubeconfig) or "default")


def context_namespace(kubeconfig: str | None) -> str | None:
    """The namespace of the client's context: the pod's own in a cluster (as ``load_default_client``
    connects there), else the current context's of the kubeconfig; None when it names none."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return _IN_CLUSTER_NAMESPACE.read_text().strip() or None
        except OSError:
            return None
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        _, active = kubernetes.config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except Exception:  # no readable kubeconfig: connecting will say what is wrong with it
        return None
    namespace = ((active or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def connect(kubeconfig: str | None) -> Kube:
    """A read-only client configured as the operator's: ``--kubeconfig`` when given, else the pod's
    service account in a cluster, else ``$KUBECONFIG`` or ``~/.kube/config`` (``load_default_client``)."""
    return ReadOnlyKube(k.load_api_client(kubeconfig) if kubeconfig else k.load_default_client(connections=1))


def read_world(kube: Kube, namespace: str, store: str) -> WatchCache:
    """The store's pods, claims, snapshots, Services and budget (``phalanx.dev/store=<store>`` in its
    namespace) and every node and PersistentVolume, listed once and slimmed as the operator's watch
    cache keeps them, with the PodDisruptionBudget version the cluster serves."""
    cache = WatchCache(kube, k.disruption_budgets(kube), namespaces=(namespace,), store=store)
    cache.load()
    return cache


def same_spec(stored: Mapping[str, Any], applied: Mapping[str, Any]) -> bool:
    """Whether applying leaves the spec as it is (and the generation with it). Compared as parsed:
    the API server stores the schema's defaults, which a manifest leaves out."""
    try:
        return ReplicatedStoreSpec.model_validate(stored) == ReplicatedStoreSpec.model_validate(applied)
    except ValidationError:
        return dict(stored) == dict(applied)


def applied(manifest: Obj, live: Obj | None, namespace: str) -> Obj:
    """The store as a pass would see it once the manifest is applied: the manifest's spec, its
    annotations over the stored ones (as ``kubectl apply`` merges them), and the stored uid,
    generation and status (the planner's memory: ``owned``, ``lastSerial``, zones, conditions). A
    store that does not exist yet: the placeholder uid, generation 1, an empty status."""
    spec = dict(manifest.get("spec") or {})
    annotations = dict(manifest["metadata"].get("annotations") or {})
    if live is None:
        metadata = {
            "name": manifest["metadata"]["name"],
            "namespace": namespace,
            "uid": PLACEHOLDER_UID,
            "generation": 1,
            "annotations": annotations,
        }
        return {"metadata": metadata, "spec": spec, "status": {}}
    metadata = dict(live.get("metadata") or {})
    generation = int(metadata.get("generation") or 1)
    metadata["generation"] = generation if same_spec(live.get("spec") or {}, spec) else generation + 1
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    return {"metadata": metadata, "spec": spec, "status": dict(live.get("status") or {})}


def preview(manifest: Obj, kube: Kube, namespace: str, now: datetime) -> Preview:
    """Read the store's world through ``kube`` and decide as a pass would, on the manifest's spec."""
    name = manifest["metadata"]["name"]
    live = kube.find(k.STORES, name, namespace)
    body = applied(manifest, live, namespace)
    ref = StoreRef(name, namespace, str(body["metadata"]["uid"]))
    generation = int(body["metadata"]["generation"])
    if body["metadata"].get("deletionTimestamp"):  # as Pass.run: the finalizer's, nothing planned
        return Preview(ref, True, generation, None)
    world = read_world(kube, namespace, name)
    return Preview(ref, live is not None, generation, decide(ref, body, world, now, Memory()).plan)


# ------------------------------------------------------------------------------------------------
# Reporting


def action_report(action: Action) -> dict[str, Any]:
    """One action: its kind, what it acts on (its member, else the object it names), its zone and
    why; then every field it has (camelCase, as the API writes fields), so a new one shows too."""
    fields = dataclasses.asdict(action)
    return {
        "kind": type(action).__name__,
        "target": fields.get("member") or fields.get("name"),
        "zone": fields.get("zone"),
        "why": fields.get("why"),
        "fields": {to_camel(key): value for key, value in fields.items()},
    }


def status_report(status: ReplicatedStoreStatus) -> dict[str, Any]:
    """The status fields a person reads first: phase, ready and zones, the last serial, the
    conditions that are not as on a store at rest, and the rollout (whatever fields it has)."""
    wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    found: dict[str, Any] = {key: wire[key] for key in _STATUS_FIELDS if key in wire}
    found["conditions"] = [
        {key: c.get(key) for key in ("type", "status", "reason", "message")}
        for c in wire.get("conditions") or []
        if c.get("status") != _AT_REST.get(str(c.get("type")), "True")
    ]
    if wire.get("rollout"):
        found["rollout"] = wire["rollout"]
    return found


def report(found: Preview) -> dict[str, Any]:
    """The preview as plain data: what ``--output json`` prints, and what the text is written from."""
    ref = found.store
    data: dict[str, Any] = {
        "dryRun": True,
        "written": False,
        "headline": HEADLINE,
        "store": {
            "namespace": ref.namespace,
            "name": ref.name,
            "exists": found.exists,
            "uid": ref.uid,
            "placeholderUid": not found.exists,
            "generation": found.generation,
            "deleting": found.plan is None,
        },
    }
    if found.plan is None:
        return {**data, "actions": [], "notes": [DELETING], "status": None, "requeueAfter": None}
    return {
        **data,
        "actions": [action_report(a) for a in found.plan.actions],
        "notes": list(found.plan.notes),
        "status": status_report(found.plan.status),
        "requeueAfter": round(found.plan.requeue_after, 1),
    }


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def render_text(data: Mapping[str, Any]) -> str:
    """The report for a person: the headline first, then the store, the actions in order, the notes
    and the status a pass would write, a blank line apart."""
    store = data["store"]
    where = f"{store['namespace']}/{store['name']}"
    if store["exists"]:
        found = f"store {where}: exists (uid {store['uid']}, generation {store['generation']} once applied)"
    else:
        found = (
            f"store {where}: does not exist yet, planned as a new store (empty status, placeholder uid {store['uid']})"
        )
    sections = [[HEADLINE], [found], _actions_text(data["actions"])]
    if data["notes"]:
        sections.append(["notes:", *(f"  - {note}" for note in data["notes"])])
    if data.get("status") is not None:
        sections.append(_status_text(data["status"]))
        sections.append([f"a pass would look again in {data['requeueAfter']}s"])
    return "\n\n".join("\n".join(lines) for lines in sections)


def _actions_text(actions: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per action: number, kind, target, zone, its other fields that are set, and why."""
    if not actions:
        return ["actions: none"]
    lines = [f"actions, in the order Phalanx would take them ({len(actions)}):"]
    for number, action in enumerate(actions, start=1):
        shown = {"zone", "why", "reason", "member" if action["fields"].get("member") else "name"}
        extras = [
            f"{key}={_value(v)}"
            for key, v in action["fields"].items()
            if key not in shown and v not in (None, False, "", [], ())
        ]
        zone = f" in {action['zone']}" if action.get("zone") else ""
        more = f" [{', '.join(extras)}]" if extras else ""
        lines.append(f"  {number}. {action['kind']} {action['target']}{zone}{more}: {action['why']}")
    return lines


def _status_text(status: Mapping[str, Any]) -> list[str]:
    """The status fields a person reads first, the conditions not at rest, and the rollout's fields
    that are set (whatever fields its model has)."""
    lines = ["status a pass would write:"]
    lines += [f"  {key}: {_value(status[key])}" for key in _STATUS_FIELDS if key in status]
    lines += [f"  condition {c['type']}={c['status']} ({c['reason']}): {c['message']}" for c in status["conditions"]]
    rollout = status.get("rollout")
    if rollout:
        fields = rollout.items() if isinstance(rollout, Mapping) else [("value", rollout)]
        lines.append("  rollout: " + " ".join(f"{key}={_value(v)}" for key, v in fields if v not in (None, "", [], {})))
    return lines


# ------------------------------------------------------------------------------------------------
# The command


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m phalanx plan",
        description=f"What applying a {KIND} manifest would make Phalanx do now, against the live cluster: "
        "it reads, and writes nothing.",
    )
    command.add_argument("-f", "--filename", required=True, help="the manifest (YAML, one store; - for stdin)")
    command.add_argument("-n", "--namespace", help="default: the manifest's, else the context's, else default")
    command.add_argument("--kubeconfig", help="default: in a pod its service account, else $KUBECONFIG")
    command.add_argument("-o", "--output", choices=("text", "json"), default="text")
    return command


def invalid_spec(message: str, output: str) -> int:
    """An invalid spec: the message the operator would put in Stalled (InvalidSpec), and exit 2. The
    cluster is not even read: the operator would do nothing else."""
    if output == "json":
        stalled = {"type": ConditionType.STALLED.value, "status": "True", "reason": "InvalidSpec", "message": message}
        print(json.dumps({"dryRun": True, "written": False, "headline": HEADLINE, "invalid": stalled}, indent=2))
    print(
        f"invalid spec: Phalanx would report Stalled=True (InvalidSpec) and do nothing else: {message}", file=sys.stderr
    )
    return EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dry run; the exit status: 0 previewed, 1 the cluster could not be read, 2 invalid."""
    args = parser().parse_args(argv)
    try:
        manifest = load_manifest(sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text())
    except (OSError, ManifestError) as error:
        print(f"phalanx plan: {error}", file=sys.stderr)
        return EXIT_INVALID
    _, invalid = parse(manifest, manifest["metadata"]["name"])  # the pass's own parse: the same message
    if invalid is not None:
        return invalid_spec(invalid, args.output)
    try:
        namespace = namespace_for(manifest, args.namespace, args.kubeconfig)
    except ManifestError as error:
        print(f"phalanx plan: {error}", file=sys.stderr)
        return EXIT_INVALID
    try:
        found = preview(manifest, connect(args.kubeconfig), namespace, datetime.now(UTC))
    except (ApiError, urllib3.exceptions.HTTPError, kubernetes.config.ConfigException, OSError) as error:
        print(f"phalanx plan: cannot read the cluster: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    data = report(found)
    print(json.dumps(data, indent=2, default=str) if args.output == "json" else render_text(data))
    return 0
