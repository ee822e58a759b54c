"""``kubectl phalanx plan``: the operator's dry run (``phalanx.dryrun``) for a store named on the
command line: on its live spec, or on a manifest's (``-f``).

Nothing of the dry run is redone here: the same manifest checks, the same parse (an invalid spec gets
the operator's own Stalled message), the same ``preview`` (the operator's pass on what the cluster
holds) and the same report. What this adds is a client held to both refusals: the dry run's (GETs
only) and the plugin's (no Secret).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from phalanx import dryrun
from phalanx.cli.client import API, EXIT_USAGE, CliError, PluginKube, get_store
from phalanx.kube import Kube, Obj
from phalanx.models import KIND
from phalanx.reconcile import parse


class PreviewKube(dryrun.ReadOnlyKube, PluginKube):
    """GETs only (``ReadOnlyKube``), never of a Secret (``PluginKube``)."""


def reader(kube: Kube) -> Kube:
    """A client on the same connection that can only read."""
    return PreviewKube(kube.api_client)


def live_manifest(store: Obj) -> Obj:
    """The store as a manifest of itself: its spec and annotations, so that the dry run previews
    what Phalanx would do now, with nothing applied."""
    meta = store["metadata"]
    metadata = {"name": meta["name"], "namespace": meta.get("namespace"), "annotations": meta.get("annotations") or {}}
    return {"apiVersion": API, "kind": KIND, "metadata": metadata, "spec": store.get("spec") or {}}


def from_file(name: str, filename: str, flag: str | None, default: str) -> tuple[Obj, str]:
    """The manifest of ``-f`` (``-`` for stdin) and the namespace to plan it in: ``-n``, else the
    manifest's, else the context's. Usage errors (exit 2): not one store, another store than the one
    named, another namespace than ``-n``."""
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
        manifest = dryrun.load_manifest(text)
    except (OSError, dryrun.ManifestError) as error:
        raise CliError(f"{filename}: {error}", EXIT_USAGE) from error
    if manifest["metadata"]["name"] != name:
        raise CliError(f"{filename} is the store {manifest['metadata']['name']!r}, not {name!r}", EXIT_USAGE)
    declared = manifest["metadata"].get("namespace")
    if flag and declared and flag != declared:
        raise CliError(f"{filename} is in namespace {declared}, not {flag} (-n)", EXIT_USAGE)
    return manifest, str(flag or declared or default)


@dataclass(frozen=True)
class Outcome:
    """The dry run's report (``dryrun.report``), or the message of an invalid spec."""

    report: dict[str, Any] | None
    invalid: str | None = None


def run(kube: Kube, manifest: Obj, namespace: str, now: datetime) -> Outcome:
    """The dry run of ``manifest`` in ``namespace``, read through a read-only client."""
    _, invalid = parse(manifest, manifest["metadata"]["name"])  # the pass's own parse: the same message
    if invalid is not None:
        return Outcome(None, invalid)
    return Outcome(dryrun.report(dryrun.preview(manifest, reader(kube), namespace, now)))


def live(kube: Kube, name: str, namespace: str, now: datetime) -> Outcome:
    """The dry run of the store as it is: what Phalanx would do now."""
    return run(kube, live_manifest(get_store(kube, name, namespace)), namespace, now)


def text(outcome: Outcome) -> str:
    """The report as the dry run prints it, or the invalid spec's message."""
    if outcome.report is None:
        return f"invalid spec: Phalanx would report Stalled=True (InvalidSpec) and do nothing else: {outcome.invalid}"
    return dryrun.render_text(outcome.report)
