"""``kubectl phalanx report``: a support bundle of one store, as a .tar.gz to attach to an issue.

What someone helping needs, read once: the store, its children (pods, claims, their volumes,
snapshots, Services, budget: everything labelled ``phalanx.dev/store=<store>``), the Events about
them, the operator's logs when its pods can be read, the status as ``kubectl phalanx status`` shows
it, and the dry run of what Phalanx would do now. Each part that cannot be read (a 403, a kubelet out
of reach) is skipped with a note in the bundle's README, so that a namespace user still gets what
they may read.

What must not leave the cluster does not: Secrets are never read (the client refuses to), and values
that may hold one are redacted before anything is written: the value of every environment variable
whose name looks like a password, token, secret or key, wherever it is: in the store's template, in
pod specs, and inside the copies of the spec that kubectl and Kopf keep as JSON text
(``kubectl.kubernetes.io/last-applied-configuration``, ``status.kopf``).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import re
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import urllib3
import yaml

from phalanx import kube as k
from phalanx import names
from phalanx.cli import preview
from phalanx.cli.client import explain, get_store
from phalanx.cli.status import render
from phalanx.kube import ApiError, Kube, Obj

OPERATOR_SELECTOR: Final = "app.kubernetes.io/name=phalanx"
"""The operator's pods, as the chart labels them."""
LOG_LINES: Final = 5000
LOG_BYTES: Final = 8 * 1024 * 1024
"""At most this much of each operator container's log (the newest lines)."""
REDACTED: Final = "<redacted by kubectl-phalanx>"
SENSITIVE: Final = re.compile(r"PASS|TOKEN|SECRET|KEY|CREDENTIAL|PRIVATE|AUTH|CERT", re.IGNORECASE)
"""Environment variable names whose values are redacted: better one harmless value too many."""
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
_KINDS: Final = {
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "volumesnapshots": "VolumeSnapshot",
    "services": "Service",
    "poddisruptionbudgets": "PodDisruptionBudget",
}
"""The kind of each child collection's objects, as Events name them."""

Failure = (ApiError, urllib3.exceptions.HTTPError, OSError)
"""What reading one part can fail with without the bundle failing."""


def redact(value: Any) -> Any:
    """A copy with the value of every sensitive environment variable replaced, at any depth, and
    inside JSON text too: kubectl's last-applied-configuration and Kopf's ``status.kopf`` keep whole
    copies of the spec as JSON strings. A last-applied annotation that is not JSON is replaced whole."""
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _redact_json(value)
    if not isinstance(value, dict):
        return value
    found = {key: redact(item) for key, item in value.items()}
    env = found.get("env")
    if isinstance(env, list):
        found["env"] = [
            {**variable, "value": REDACTED}
            if isinstance(variable, dict) and "value" in variable and SENSITIVE.search(str(variable.get("name", "")))
            else variable
            for variable in env
        ]
    annotations = found.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations and _json(annotations[LAST_APPLIED]) is None:
        found["annotations"] = {**annotations, LAST_APPLIED: REDACTED}
    return found


def _json(text: Any) -> Any:
    """The document a string holds when it is a JSON object or array, else None."""
    if not isinstance(text, str) or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _redact_json(text: str) -> str:
    """JSON text redacted inside (written back compact only when something was redacted)."""
    document = _json(text)
    if document is None:
        return text
    redacted = redact(document)
    return text if redacted == document else json.dumps(redacted, separators=(",", ":"))


def dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)


def listing(items: Sequence[Obj]) -> str:
    return dump({"apiVersion": "v1", "kind": "List", "items": [redact(item) for item in items]})


@dataclass
class Bundle:
    """The files of a bundle (path in the archive -> text) and the notes on what was left out."""

    root: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, path: str, text: str) -> None:
        self.files[path] = text

    def skip(self, what: str, error: BaseException) -> None:
        self.notes.append(f"{what}: skipped: {explain(error).message}")


def read_text(kube: Kube, path: str, query: dict[str, str]) -> str:
    """A GET whose answer is text, not JSON (a container's log)."""
    response = kube.request("GET", path, query=query, stream=True, timeout=30)
    try:
        return bytes(response.read()).decode(errors="replace")
    finally:
        response.release_conn()


def children(kube: Kube, bundle: Bundle, name: str, namespace: str) -> dict[str, list[Obj]]:
    """The store's children by kind (``phalanx.dev/store=<store>``), each kind in a file of its own."""
    found: dict[str, list[Obj]] = {}
    try:
        budgets = k.disruption_budgets(kube)
    except Failure as error:
        bundle.skip("which PodDisruptionBudget version the cluster serves", error)
        budgets = k.PDB_V1
    selector = f"{names.STORE_LABEL}={name}"
    for res in (k.PODS, k.PVCS, k.SNAPSHOTS, k.SERVICES, budgets):
        try:
            found[res.plural] = kube.items(res, namespace, selector)
        except Failure as error:
            bundle.skip(f"{res.plural} ({selector})", error)
            continue
        bundle.add(f"{res.plural}.yaml", listing(found[res.plural]))
    return found


def volumes(kube: Kube, bundle: Bundle, claims: Iterable[Obj]) -> None:
    """The PersistentVolumes bound to the claims (cluster-scoped: a namespace user may not read them)."""
    found = []
    for claim in claims:
        volume = (claim.get("spec") or {}).get("volumeName")
        if not volume:
            continue
        try:
            found.append(kube.get(k.PVS, volume))
        except Failure as error:
            bundle.skip(f"persistentvolumes (first refused: {volume})", error)
            return
    bundle.add("persistentvolumes.yaml", listing(found))


def events(kube: Kube, bundle: Bundle, store: Obj, found: dict[str, list[Obj]]) -> None:
    """The namespace's Events about the store or one of its children, oldest first."""
    meta = store["metadata"]
    name = meta["name"]
    about = {("ReplicatedStore", name)}
    for plural, objects in found.items():
        about |= {(_KINDS[plural], o["metadata"]["name"]) for o in objects}
    snapshot = re.compile(rf"^{re.escape(name)}-[0-9]{{8}}-[0-9]{{6}}$")

    def concerns(event: Obj) -> bool:
        """About the store or a child, or about a member or snapshot of it that is gone since."""
        involved = event.get("involvedObject") or {}
        kind, subject = involved.get("kind"), str(involved.get("name") or "")
        if (kind, subject) in about:
            return True
        if kind in ("Pod", "PersistentVolumeClaim"):
            return names.serial_of(name, subject) is not None
        return kind == "VolumeSnapshot" and snapshot.match(subject) is not None

    try:
        every = kube.items(k.EVENTS, meta.get("namespace"))
    except Failure as error:
        bundle.skip("events", error)
        return
    chosen = [e for e in every if concerns(e)]

    def when(event: Obj) -> str:
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("firstTimestamp")
            or event["metadata"].get("creationTimestamp")
            or ""
        )

    bundle.add("events.yaml", listing(sorted(chosen, key=when)))


def operator_logs(kube: Kube, bundle: Bundle) -> None:
    """The logs of the operator's pods (``app.kubernetes.io/name=phalanx`` in any namespace), the
    previous container's too after a restart; skipped with a note when they cannot be read."""
    try:
        pods = kube.items(k.PODS, None, OPERATOR_SELECTOR)
    except Failure as error:
        bundle.skip(f"the operator's logs (pods labelled {OPERATOR_SELECTOR} across the cluster)", error)
        return
    if not pods:
        bundle.notes.append(
            f"the operator's logs: no pod labelled {OPERATOR_SELECTOR} found (it may run outside the cluster)"
        )
        return
    bundle.add("operator/pods.yaml", listing(pods))
    for pod in pods:
        meta = pod["metadata"]
        restarts = {
            s.get("name"): s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or []
        }
        for container in (pod.get("spec") or {}).get("containers") or []:
            label = f"{meta['namespace']}.{meta['name']}.{container['name']}"
            path = k.PODS.path(meta["namespace"], meta["name"], "log")
            query = {"container": container["name"], "tailLines": str(LOG_LINES), "limitBytes": str(LOG_BYTES)}
            for previous in (False, True) if restarts.get(container["name"]) else (False,):
                suffix = ".previous" if previous else ""
                try:
                    text = read_text(kube, path, {**query, **({"previous": "true"} if previous else {})})
                except Failure as error:
                    bundle.skip(f"log of {label}{suffix}", error)
                    continue
                bundle.add(f"operator/{label}{suffix}.log", text)


def plan(kube: Kube, bundle: Bundle, store: Obj, now: datetime) -> None:
    """The dry run on the live spec: what Phalanx would do now."""
    meta = store["metadata"]
    try:
        outcome = preview.run(kube, preview.live_manifest(store), str(meta.get("namespace")), now)
    except Failure as error:
        bundle.skip("the dry run (plan)", error)
        return
    bundle.add("plan.txt", preview.text(outcome) + "\n")
    if outcome.report is not None:
        bundle.add("plan.json", json.dumps(outcome.report, indent=2, default=str) + "\n")


def plugin_version() -> str:
    try:
        return importlib.metadata.version("phalanx")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def gather(kube: Kube, name: str, namespace: str, now: datetime, server: str) -> Bundle:
    """Read everything of the bundle. Only the store itself is required: without it there is
    nothing to report (and the error says why)."""
    store = get_store(kube, name, namespace)
    bundle = Bundle(root=f"phalanx-report-{namespace}-{name}-{now:%Y%m%d-%H%M%S}")
    bundle.add("store.yaml", dump(redact(store)))
    bundle.add("status.txt", render(store, now) + "\n")
    found = children(kube, bundle, name, namespace)
    volumes(kube, bundle, found.get(k.PVCS.plural, []))
    events(kube, bundle, store, found)
    operator_logs(kube, bundle)
    plan(kube, bundle, store, now)
    try:
        version = str(kube.request("GET", "/version").get("gitVersion", "?"))
    except Failure as error:
        bundle.skip("the cluster's version", error)
        version = "?"
    bundle.add("README.txt", readme(bundle, store, now, server, version))
    return bundle


def readme(bundle: Bundle, store: Obj, now: datetime, server: str, version: str) -> str:
    meta = store["metadata"]
    lines = [
        f"Phalanx support bundle: ReplicatedStore {meta.get('namespace')}/{meta['name']} (uid {meta.get('uid')})",
        f"made by kubectl-phalanx {plugin_version()} at {now:%Y-%m-%dT%H:%M:%SZ}",
        f"from the API server {server} (Kubernetes {version})",
        "",
        "files:",
        *(f"  {path}" for path in sorted([*bundle.files, "README.txt"])),
        "",
        "left out on purpose:",
        "  - Secrets: never read.",
        f"  - values of environment variables named like a password, token, secret or key: {REDACTED}",
        "    (also inside the copies of the spec kept as JSON text: kubectl's last-applied-configuration",
        "    annotation and Kopf's status.kopf)",
    ]
    if bundle.notes:
        lines += ["", "notes (what is missing, and why):", *(f"  - {note}" for note in bundle.notes)]
    return "\n".join(lines) + "\n"


def write(bundle: Bundle, path: Path, now: datetime) -> Path:
    """The bundle as a .tar.gz under one directory (``bundle.root``), written whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        for name in sorted(bundle.files):
            data = bundle.files[name].encode()
            info = tarfile.TarInfo(f"{bundle.root}/{name}")
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o644
            archive.addfile(info, io.BytesIO(data))
    partial.replace(path)
    return path


def default_path(bundle: Bundle) -> Path:
    return Path(f"{bundle.root}.tar.gz")
