"""``kubectl phalanx`` without a cluster: the command line run whole (``main``) on a fake wire under
its real client, so that what would reach the API server is recorded request by request.

Status is rendered against golden files (tests/data/kubectl_status_*.txt: a fixed clock, no colour;
``PHALANX_UPDATE_GOLDEN=1`` rewrites them), its JSON checked against the CRD's own status schema; the
errors must name what a person needs (the store and namespace, the verb and resource refused, a
missing CRD); each verb must send exactly one merge patch of its annotation and nothing else.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema  # type: ignore[import-untyped]
import pytest
import urllib3
import yaml

from phalanx import kube as k
from phalanx import names
from phalanx.cli import ask, bundle, client, main
from phalanx.cli import status as show
from phalanx.cli.client import FIELD_MANAGER, Connection, PluginKube
from phalanx.models import ReplicatedStoreSpec, ReplicatedStoreStatus
from tests.openapi import merge_patch, root_schema
from tests.unit.test_dryrun import FakeApiServer, cluster_of_three, manifest, selected

Obj = dict[str, Any]
DATA = Path(__file__).resolve().parents[1] / "data"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
STORE_PATH = k.STORES.path("data", "orders")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def stored() -> Obj:
    """The golden store (tests/data/kubectl_store.yaml), a fresh copy."""
    return dict(yaml.safe_load((DATA / "kubectl_store.yaml").read_text()))


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------
# The wire


class Reply:
    """An answer on the wire: status and bytes, readable as a stream too (logs, errors)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.data = body.encode() if isinstance(body, str) else json.dumps(body).encode()

    def read(self) -> bytes:
        return self.data

    def release_conn(self) -> None:
        return None


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str


class Wire(FakeApiServer):
    """The dry run tests' fake API server, and more: every request recorded with its body and content
    type; stores patched (merge patch); lists across namespaces; ``/version``; logs as text;
    answers forced per (method, path) in ``failures``; ``hooks`` run before each request to move the
    world (the operator's answer to a patch)."""

    def __init__(self, served: frozenset[str] = frozenset({"phalanx.dev/v1alpha1", "policy/v1"})) -> None:
        super().__init__(served)
        self.collections |= {"events", "replicatedstores", "poddisruptionbudgets"}
        self.sent: list[Sent] = []
        self.failures: dict[tuple[str, str], tuple[int, Any]] = {}
        self.logs: dict[str, str] = {}
        self.hooks: list[Callable[[Wire, Sent], None]] = []

    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.method != "GET"]

    def store(self, name: str = "orders", namespace: str = "data") -> Obj:
        found = [o for o in self.objects.get(k.STORES.path(namespace), []) if o["metadata"]["name"] == name]
        return found[0]

    def request(self, method: str, url: str, **options: Any) -> Any:
        parts = urlsplit(url)
        path, query = parts.path, dict(parse_qsl(parts.query))
        body = json.loads(options["body"]) if options.get("body") else None
        sent = Sent(method, path, query, body, str((options.get("headers") or {}).get("Content-Type")))
        self.sent.append(sent)
        for hook in list(self.hooks):
            hook(self, sent)
        if (method, path) in self.failures:
            return Reply(*self.failures[method, path])
        if path == "/version":
            return Reply(200, {"gitVersion": "v1.20.2"})
        if path in self.logs:
            return Reply(200, self.logs[path])
        if method == "PATCH":
            parent, _, name = path.rpartition("/")
            for index, obj in enumerate(self.objects.get(parent, [])):
                if obj["metadata"]["name"] == name:
                    self.objects[parent][index] = merge_patch(obj, body)
                    return Reply(200, self.objects[parent][index])
            return Reply(404, {"reason": "NotFound", "message": name})
        if method == "GET" and "/namespaces/" not in path and path.rsplit("/", 1)[-1] in self.collections:
            prefix, _, plural = path.rpartition("/")  # a namespaced kind listed across namespaces
            items = [
                o
                for key, objects in self.objects.items()
                if key.startswith(f"{prefix}/namespaces/") and key.endswith(f"/{plural}")
                for o in objects
                if selected(o, query.get("labelSelector"))
            ]
            if items or not any(key == path for key in self.objects):
                return Reply(200, {"kind": "List", "metadata": {"resourceVersion": "7"}, "items": items})
        answer = super().request(method, url, **options)
        return Reply(answer.status, json.loads(answer.data))


def connector(wire: Wire, default: str = "data") -> main.Connector:
    """What ``main`` connects with: the plugin's own client on the fake wire."""

    def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Connection:
        return Connection(PluginKube(wire, field_manager=FIELD_MANAGER), namespace or default, wire.host)  # type: ignore[arg-type]

    return connect


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the command line on a wire at NOW: (exit status, stdout, stderr)."""

    def invoke(wire: Wire, *argv: str) -> tuple[int, str, str]:
        code = main.main(list(argv), connector=connector(wire), clock=lambda: NOW)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits poll the fake wire without pausing between looks."""
    monkeypatch.setattr(ask, "POLL", 0.0)


def with_store(obj: Obj | None = None) -> Wire:
    wire = Wire()
    wire.add(k.STORES, obj if obj is not None else stored())
    return wire


# ------------------------------------------------------------------------------------------------
# Status: golden text, colour, JSON against the CRD's schema


def golden(name: str, text: str) -> None:
    path = DATA / name
    if os.environ.get("PHALANX_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (PHALANX_UPDATE_GOLDEN=1 rewrites it)"


def test_the_status_of_a_store_as_a_tree_and_as_plain_text_matches_the_golden_files(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    golden("kubectl_status_tree.txt", show.render(stored(), NOW, show.Style(tree=True)) + "\n")
    code, out, err = run(with_store(), "status", "orders")  # piped: plain
    assert (code, err) == (0, "")
    golden("kubectl_status_plain.txt", out)
    for needle in ("zone-a", "zone-b", "zone-c", "orders-9", "Restoring", "seeded from orders-20250101-110000"):
        assert needle in out
    assert "orders-4 (NodeLost: node node-a-1 NotReady for 30s), replaced by orders-7" in out
    assert "2 failed in a row (last orders-20250101-114000)" in out and "2 kept (20Gi), next deletion in 3h" in out


def test_colour_paints_the_tree_and_changes_nothing_else() -> None:
    coloured = show.render(stored(), NOW, show.TERMINAL)
    assert ANSI.sub("", coloured) == show.render(stored(), NOW, show.Style(tree=True))
    assert "\x1b[33mUpdating\x1b[0m" in coloured  # the phase, under way
    assert "\x1b[33mRestoring\x1b[0m" in coloured and "\x1b[32mReady\x1b[0m" in coloured
    assert "\x1b[31mFalse\x1b[0m" in coloured  # SnapshotsFresh False: something is wrong


def test_the_rollout_shows_its_remaining_steps_and_whether_it_is_paused_or_halted() -> None:
    store = stored()
    store["status"]["rollout"].update(
        paused=True, halted="orders-9 did not pass the gate within 10m", steps=["zone-c: orders-3", "zone-c: orders-6"]
    )
    text = show.render(store, NOW)
    assert "\n  halted: orders-9 did not pass the gate within 10m\n" in text
    assert "\n  paused: the next step waits" in text
    assert "\n  steps to come\n    zone-c: orders-3\n    zone-c: orders-6\n" in text


def test_the_listing_has_a_line_per_store_with_its_health(run: Callable[..., tuple[int, str, str]]) -> None:
    wire = with_store()
    silent = {
        "metadata": {"name": "fresh", "generation": 1, "creationTimestamp": stamp(NOW - timedelta(minutes=5))},
        "spec": {"replicas": 3},
    }
    paused = stored()
    paused["metadata"]["name"] = "cache"
    paused["status"]["rollout"]["paused"] = True
    paused["status"]["conditions"][2] = {**paused["status"]["conditions"][2], "status": "True", "reason": "Refused"}
    wire.add(k.STORES, silent)
    wire.add(k.STORES, paused, namespace="web")
    code, out, _ = run(wire, "status", "-A")
    assert code == 0
    golden("kubectl_status_list.txt", out)
    code, out, _ = run(wire, "status")  # the namespace's only
    assert code == 0 and "cache" not in out and "NAMESPACE" not in out and "fresh" in out


def strict(schema: Any) -> Any:
    """The CRD's schema as the API server prunes with it: an object's fields are those it lists
    (unless it keeps unknown fields), so a field the API would drop fails validation here."""
    if isinstance(schema, dict):
        found = {key: strict(value) for key, value in schema.items()}
        if "properties" in found and not found.get("x-kubernetes-preserve-unknown-fields"):
            found.setdefault("additionalProperties", False)
        return found
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def status_errors(status: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(strict(root_schema()["properties"]["status"]))
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(status))


def test_json_and_yaml_carry_the_status_as_the_api_has_it_valid_against_the_crd_schema(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, _ = run(with_store(), "status", "orders", "-o", "json")
    data = json.loads(out)
    assert code == 0 and set(data) == {"name", "namespace", "status"}
    assert (data["name"], data["namespace"]) == ("orders", "data")
    assert data["status"] == stored()["status"]
    assert status_errors(data["status"]) == []
    assert [m["name"] for m in data["status"]["members"]][:2] == ["orders-1", "orders-7"]
    _, out, _ = run(with_store(), "status", "orders", "-o", "yaml")
    assert yaml.safe_load(out) == data
    _, out, _ = run(with_store(), "status", "-o", "json")
    assert [item["name"] for item in json.loads(out)["items"]] == ["orders"]
    # The check has teeth: a field the schema does not know, or a wrong type, fails.
    assert status_errors({**data["status"], "membrs": []}) and status_errors({**data["status"], "replicas": "6"})


def test_the_golden_store_is_one_the_operator_could_have_written() -> None:
    ReplicatedStoreSpec.model_validate(stored()["spec"])
    ReplicatedStoreStatus.model_validate(stored()["status"])


# ------------------------------------------------------------------------------------------------
# The operator not answering


def aged(created: timedelta, observed: int | None, generation: int = 3, spec_written: timedelta | None = None) -> Obj:
    meta: Obj = {"name": "orders", "generation": generation, "creationTimestamp": stamp(NOW - created)}
    if spec_written is not None:
        meta["managedFields"] = [
            {"manager": "kubectl", "time": stamp(NOW - spec_written), "fieldsV1": {"f:spec": {}}},
            {"manager": "phalanx", "time": stamp(NOW), "subresource": "status", "fieldsV1": {"f:spec": {}}},
        ]
    return {"metadata": meta, "status": {} if observed is None else {"observedGeneration": observed}}


@pytest.mark.parametrize(
    ("store", "warned"),
    [
        (aged(timedelta(seconds=30), None), False),  # new: the operator has had no time
        (aged(timedelta(minutes=3), None), True),  # no status at all for 3 minutes
        (aged(timedelta(days=1), 2, spec_written=timedelta(seconds=20)), False),  # a spec change just made
        (aged(timedelta(days=1), 2, spec_written=timedelta(minutes=2)), True),  # not seen for 2 minutes
        (aged(timedelta(days=1), 3, spec_written=timedelta(minutes=2)), False),  # seen
        (aged(timedelta(days=1), 2), True),  # no record of the spec write: since creation
    ],
)
def test_an_operator_that_does_not_answer_is_reported(store: Obj, warned: bool) -> None:
    warning = show.operator_silence(store, NOW)
    assert (warning is not None) == warned, warning
    if warned:
        assert warning is not None and "is the Phalanx operator running?" in warning
        assert "warning: " in show.render(store, NOW) and "operator not answering" in show.health(store, NOW)["note"]


def test_the_json_status_warns_on_stderr_and_keeps_stdout_for_scripts(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = run(with_store(aged(timedelta(minutes=3), None)), "status", "orders", "-o", "json")
    assert code == 0 and json.loads(out)["status"] == {} and err.startswith("warning: no status from Phalanx 3m")


# ------------------------------------------------------------------------------------------------
# Errors a person understands


def forbidden(verb: str, resource: str, group: str, namespace: str | None) -> tuple[int, Obj]:
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = (
        f'{resource}.{group} "orders" is forbidden: User "jane" cannot {verb} resource "{resource}" '
        f'in API group "{group}"{where}'
    )
    return 403, {"kind": "Status", "status": "Failure", "message": message, "reason": "Forbidden", "code": 403}


def test_a_store_that_does_not_exist_is_named_with_its_namespace_and_how_to_list(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = run(with_store(), "status", "nope", "-n", "web")
    assert (code, out) == (1, "")
    assert 'no ReplicatedStore "nope" in namespace "web"' in err and "`kubectl phalanx status -n web`" in err


def test_a_cluster_without_the_crd_is_told_so(run: Callable[..., tuple[int, str, str]]) -> None:
    wire = Wire(served=frozenset())
    wire.failures["GET", STORE_PATH] = (404, "404 page not found\n")
    wire.failures["GET", k.STORES.path("data")] = (404, "404 page not found\n")
    for argv in (["status", "orders"], ["status"], ["pause", "orders"]):
        code, _, err = run(wire, *argv)
        assert code == 1 and "the Phalanx CRD is not installed" in err, err
    assert wire.writes() == []


def test_a_403_names_the_verb_and_the_resource_refused(run: Callable[..., tuple[int, str, str]]) -> None:
    wire = with_store()
    wire.failures["GET", STORE_PATH] = forbidden("get", "replicatedstores", "phalanx.dev", "data")
    code, _, err = run(wire, "status", "orders")
    assert code == 1
    assert 'user "jane" may not get replicatedstores.phalanx.dev in namespace "data"' in err
    assert 'verb "get" on resource "replicatedstores" in API group "phalanx.dev"' in err
    wire = with_store()
    wire.failures["PATCH", STORE_PATH] = forbidden("patch", "replicatedstores", "phalanx.dev", "data")
    code, _, err = run(wire, "pause", "orders")
    assert code == 1 and "may not patch replicatedstores.phalanx.dev" in err
    wire = with_store()
    wire.failures["GET", k.STORES.path()] = forbidden("list", "replicatedstores", "phalanx.dev", None)
    code, _, err = run(wire, "status", "-A")
    assert code == 1 and "may not list replicatedstores.phalanx.dev across the cluster" in err


def test_refused_credentials_and_an_unreachable_server_are_said_plainly(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    wire = with_store()
    wire.failures["GET", STORE_PATH] = (401, {"kind": "Status", "message": "Unauthorized", "reason": "Unauthorized"})
    code, _, err = run(wire, "status", "orders")
    assert code == 1 and "refused the credentials (401 Unauthorized)" in err

    def unreachable(wire: Wire, sent: Sent) -> None:
        raise urllib3.exceptions.MaxRetryError(None, sent.path, reason=ConnectionRefusedError("Connection refused"))  # type: ignore[arg-type]

    wire.hooks.append(unreachable)
    code, _, err = run(wire, "status", "orders")
    assert code == 1 and f"cannot reach the API server {wire.host}: Connection refused" in err


def test_a_kubeconfig_that_cannot_be_read_fails_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main.main(["--kubeconfig", str(missing), "status"]) == 1
    assert f"cannot use the kubeconfig {missing}" in capsys.readouterr().err


def test_usage_errors_exit_2(run: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    wire = with_store()
    assert run(wire, "replace", "orders")[0] == 2
    assert run(wire, "replace", "orders", "orders-1", "--zone", "zone-a")[0] == 2
    assert run(wire, "status", "orders", "-A")[0] == 2
    with pytest.raises(SystemExit) as exited:
        main.main(["frobnicate"])
    assert exited.value.code == 2
    assert wire.writes() == []


# ------------------------------------------------------------------------------------------------
# Connecting as kubectl does


def kubeconfig(path: Path, server: str, contexts: dict[str, str | None], current: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": name, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
            for name, ns in contexts.items()
        ],
        "current-context": current,
    }
    path.write_text(json.dumps(config))
    return path


def test_the_kubeconfig_and_namespace_are_found_as_kubectl_finds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "one", "https://one.invalid", {"a": "alpha", "b": None}, "a")
    second = kubeconfig(tmp_path / "two", "https://two.invalid", {"z": "zulu"}, "z")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")  # a list, merged: the first file's current context
    found = client.connect(None, None, None)
    assert (found.server, found.namespace) == ("https://one.invalid", "alpha")
    assert client.connect(None, "b", None).namespace == "default"  # a context without one
    assert client.connect(None, "z", None).namespace == "zulu"
    assert client.connect(None, "z", "mine").namespace == "mine"  # -n wins
    flagged = client.connect(str(second), None, None)  # --kubeconfig wins over $KUBECONFIG
    assert (flagged.server, flagged.namespace) == ("https://two.invalid", "zulu")
    with pytest.raises(client.CliError, match="context nope"):
        client.connect(None, "nope", None)


# ------------------------------------------------------------------------------------------------
# What each verb sends


def only_patch(wire: Wire) -> dict[str, Any]:
    """The one write the command sent: a merge patch of the store's annotations, by kubectl-phalanx."""
    writes = wire.writes()
    assert len(writes) == 1, writes
    sent = writes[0]
    assert (sent.method, sent.path, sent.content_type) == ("PATCH", STORE_PATH, "application/merge-patch+json")
    assert sent.query == {"fieldManager": "kubectl-phalanx"}
    assert set(sent.body) == {"metadata"} and set(sent.body["metadata"]) == {"annotations"}
    return dict(sent.body["metadata"]["annotations"])


def test_pause_and_resume_set_and_remove_the_rollout_paused_annotation(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    wire = with_store()
    code, out, _ = run(wire, "pause", "orders")
    assert code == 0 and only_patch(wire) == {names.ROLLOUT_PAUSED_ANNOTATION: "true"}
    said = "no next step starts; a step in flight completes"
    assert out == f"data/orders: rollouts paused ({names.ROLLOUT_PAUSED_ANNOTATION}=true): {said}\n"
    assert wire.store()["metadata"]["annotations"][names.ROLLOUT_PAUSED_ANNOTATION] == "true"
    wire.sent.clear()
    code, out, _ = run(wire, "resume", "orders")
    assert code == 0 and only_patch(wire) == {names.ROLLOUT_PAUSED_ANNOTATION: None}
    assert "rollouts resumed" in out and names.ROLLOUT_PAUSED_ANNOTATION not in wire.store()["metadata"]["annotations"]


def test_each_snapshot_request_carries_a_new_token(run: Callable[..., tuple[int, str, str]]) -> None:
    wire = with_store()
    tokens = []
    for _ in range(2):
        wire.sent.clear()
        code, out, _ = run(wire, "snapshot", "orders")
        token = only_patch(wire)[names.SNAPSHOT_REQUEST]
        assert code == 0 and token.startswith("20250101-120000-") and f"{names.SNAPSHOT_REQUEST}={token}" in out
        tokens.append(token)
    assert tokens[0] != tokens[1]


@pytest.mark.parametrize(
    ("argv", "target", "members"),
    [
        (["orders-7"], "member/orders-7", "orders-7"),
        (["--zone", "zone-b"], "zone/zone-b", "orders-8, orders-9, orders-5"),
        (["--all"], "all", "orders-1, orders-7, orders-8, orders-9, orders-5, orders-3, orders-6"),
    ],
)
def test_replace_asks_for_its_target_under_a_fresh_token(
    run: Callable[..., tuple[int, str, str]], argv: list[str], target: str, members: str
) -> None:
    wire = with_store()
    code, out, _ = run(wire, "replace", "orders", *argv)
    value = only_patch(wire)[names.REPLACE_ANNOTATION]
    assert code == 0 and value.startswith(f"{target}#20250101-120000-")
    assert out == f"data/orders: replacement of {members} requested ({names.REPLACE_ANNOTATION}={value})\n"


def test_nothing_is_asked_that_phalanx_would_not_answer(run: Callable[..., tuple[int, str, str]]) -> None:
    wire = with_store()
    code, _, err = run(wire, "replace", "orders", "orders-42")
    assert code == 1 and "member/orders-42 names no member (members: orders-1, orders-7" in err
    code, _, err = run(wire, "replace", "orders", "--zone", "zone-x")
    assert code == 1 and "zones: zone-a, zone-b, zone-c" in err
    no_snapshots = stored()
    del no_snapshots["spec"]["snapshots"]
    code, _, err = run(with_store(no_snapshots), "snapshot", "orders")
    assert code == 1 and "has no spec.snapshots" in err
    paused = stored()
    paused["spec"]["paused"] = True
    code, _, err = run(with_store(paused), "snapshot", "orders")
    assert code == 1 and "spec.paused is true" in err
    assert wire.writes() == []


def test_the_client_refuses_secrets_and_every_other_write_before_sending() -> None:
    wire = with_store()
    plugin = PluginKube(wire, field_manager=FIELD_MANAGER)  # type: ignore[arg-type]
    attempts: list[Callable[[], Any]] = [
        lambda: plugin.items(k.Resource("", "v1", "secrets"), "data"),
        lambda: plugin.get(k.Resource("", "v1", "secrets"), "token", "data"),
        lambda: plugin.patch(k.STORES, "orders", {"spec": {"replicas": 1}}, "data"),
        lambda: plugin.patch(k.STORES, "orders", {"metadata": {"annotations": {"other": "x"}}}, "data"),
        lambda: plugin.patch(k.STORES, "orders", {"metadata": {"labels": {"a": "b"}}}, "data"),
        lambda: plugin.patch(k.STORES, "orders", {"status": {}}, "data", sub="status"),
        lambda: plugin.patch(
            k.STORES, "orders", {"metadata": {"annotations": {names.REPLACE_ANNOTATION: "all"}}}, "data", kind="json"
        ),
        lambda: plugin.patch(
            k.PODS, "orders-1", {"metadata": {"annotations": {names.REPLACE_ANNOTATION: "all"}}}, "data"
        ),
        lambda: plugin.delete(k.STORES, "orders", "data"),
        lambda: plugin.create(k.STORES, stored(), "data"),
    ]
    for attempt in attempts:
        with pytest.raises(client.RefusedRequestError):
            attempt()
    assert wire.sent == []
    plugin.patch(k.STORES, "orders", {"metadata": {"annotations": {names.SNAPSHOT_REQUEST: "x"}}}, "data")
    assert len(wire.writes()) == 1


# ------------------------------------------------------------------------------------------------
# Following what was asked


def answer(after: Callable[[Wire, Sent], bool], change: Callable[[Wire], None]) -> Callable[[Wire, Sent], None]:
    """A hook: once ``after`` holds for a request, ``change`` the world (once)."""
    done: list[bool] = []

    def hook(wire: Wire, sent: Sent) -> None:
        if not done and after(wire, sent):
            done.append(True)
            change(wire)

    return hook


def patched(wire: Wire, sent: Sent) -> bool:
    return any(s.method == "PATCH" for s in wire.sent[:-1])


def after_patch(requests: int) -> Callable[[Wire, Sent], bool]:
    """Once this many requests followed the patch: the operator answers while the wait looks."""

    def since(wire: Wire, sent: Sent) -> bool:
        methods = [s.method for s in wire.sent]
        return "PATCH" in methods and len(methods) - methods.index("PATCH") > requests

    return since


def snapshot_with(value: str, status: Obj, name: str = "orders-20250101-120001") -> Obj:
    meta = {"name": name, "labels": {names.STORE_LABEL: "orders"}, "annotations": {names.SNAPSHOT_REQUEST: value}}
    return {"metadata": meta, "status": status}


def requested(wire: Wire) -> str:
    return str(wire.store()["metadata"]["annotations"][names.SNAPSHOT_REQUEST])


def test_snapshot_wait_follows_the_snapshot_carrying_its_token_until_ready(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    wire = with_store()
    wire.add(k.SNAPSHOTS, snapshot_with("someone-elses", {"readyToUse": True}, name="orders-20250101-110000"))

    def taken(wire: Wire) -> None:
        wire.add(k.SNAPSHOTS, snapshot_with(requested(wire), {"readyToUse": False}))

    def ready(wire: Wire) -> None:
        wire.objects[k.SNAPSHOTS.path("data")][-1]["status"] = {"readyToUse": True, "restoreSize": "10Gi"}

    wire.hooks += [answer(after_patch(2), taken), answer(after_patch(6), ready)]
    code, out, err = run(wire, "snapshot", "orders", "--wait")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == "snapshot orders-20250101-120001 is ready to use (taken ?, 10Gi)"
    assert "  snapshot orders-20250101-120001 taken, not ready to use yet" in lines


def test_snapshot_wait_fails_with_the_snapshots_error(run: Callable[..., tuple[int, str, str]]) -> None:
    wire = with_store()
    failed = {"readyToUse": False, "error": {"message": "no space left on device"}}
    wire.hooks.append(answer(patched, lambda w: w.add(k.SNAPSHOTS, snapshot_with(requested(w), failed))))
    code, _, err = run(wire, "snapshot", "orders", "--wait")
    assert code == 1 and "snapshot orders-20250101-120001 failed: no space left on device" in err


def settle_after_replacing(wire: Wire, gone: set[str]) -> None:
    store = wire.store()
    status = store["status"]
    status["members"] = [m for m in status["members"] if m["name"] not in gone]
    status["replaceRequest"]["members"] = []
    status.update(readyReplicas=6, replicas=6, updatedReplicas=6, readyDisplay="6/6")
    del status["rollout"]
    store["status"]["conditions"][0]["status"] = "True"


def test_replace_wait_follows_until_the_members_are_gone_and_the_store_ready(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    wire = with_store()

    def answered(wire: Wire) -> None:
        value = wire.store()["metadata"]["annotations"][names.REPLACE_ANNOTATION]
        wire.store()["status"]["replaceRequest"] = {"request": value, "members": ["orders-8", "orders-9", "orders-5"]}

    wire.hooks += [
        answer(after_patch(2), answered),
        answer(after_patch(5), lambda w: settle_after_replacing(w, {"orders-8", "orders-9", "orders-5"})),
    ]
    code, out, err = run(wire, "replace", "orders", "--zone", "zone-b", "--wait")
    assert code == 0, err
    assert "  waiting for Phalanx to answer the request" in out.splitlines()
    assert out.splitlines()[-1] == "3/3 replaced; 6/6 ready, phase Updating"


def test_a_wait_ends_when_the_store_is_stuck_or_the_deadline_passes(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    wire = with_store()

    def stall(wire: Wire) -> None:
        stalled = {"type": "Stalled", "status": "True", "reason": "RolloutHalted", "message": "orders-9 never served"}
        wire.store()["status"]["conditions"][2] = stalled

    wire.hooks.append(answer(patched, stall))
    code, _, err = run(wire, "replace", "orders", "orders-5", "--wait")
    assert code == 1 and "is stuck: Stalled=True (RolloutHalted): orders-9 never served" in err
    held = stored()
    held["spec"]["updates"]["paused"] = True
    code, _, err = run(with_store(held), "resume", "orders", "--wait")
    assert code == 1 and "spec.updates.paused is true" in err
    clock = iter(range(100))
    with pytest.raises(client.CliError, match=r"gave up after 5s: still"):
        ask.follow(lambda: (False, "still"), 5, lambda _: None, clock=lambda: float(next(clock)), sleep=lambda _: None)


def test_resume_wait_ends_at_once_when_nothing_is_left_to_roll_out(run: Callable[..., tuple[int, str, str]]) -> None:
    store = stored()
    settled = copy.deepcopy(store)
    wire = with_store(settled)
    settle_after_replacing(wire, set())
    code, out, _ = run(wire, "resume", "orders", "--wait")
    assert code == 0 and out.splitlines()[-1] == "6/6 ready, phase Updating"


# ------------------------------------------------------------------------------------------------
# The dry run


def test_plan_previews_the_live_spec_or_a_manifest_and_writes_nothing(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    wire = Wire(served=frozenset({"phalanx.dev/v1alpha1"}))
    wire.objects = cluster_of_three().objects
    code, out, _ = run(wire, "plan", "orders")  # the live spec: the same generation, no member to add
    assert code == 0 and out.startswith("dry run: nothing was written\n")
    assert "store data/orders: exists (uid 5d1c0a57-0000-4000-8000-00000000cafe, generation 4 once applied)" in out
    assert "CreateMember" not in out
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(manifest(5)))
    code, out, _ = run(wire, "plan", "orders", "-f", str(path), "-o", "json")
    assert code == 0
    creates = [a["target"] for a in json.loads(out)["actions"] if a["kind"] == "CreateMember"]
    assert creates == ["orders-4", "orders-5"]
    assert {s.method for s in wire.sent} == {"GET"}
    code, _, err = run(wire, "plan", "other", "-f", str(path))
    assert code == 2 and "is the store 'orders', not 'other'" in err
    path.write_text(yaml.safe_dump(manifest(3, snapshots={"interval": "1h", "maxAge": "30m"})))
    code, _, err = run(wire, "plan", "orders", "-f", str(path))
    assert code == 2 and "spec.snapshots.maxAge" in err and "Stalled=True" in err


# ------------------------------------------------------------------------------------------------
# The support bundle


def bundled(path: Path) -> dict[str, str]:
    with tarfile.open(path) as archive:
        return {
            member.name.split("/", 1)[1]: archive.extractfile(member).read().decode()  # type: ignore[union-attr]
            for member in archive.getmembers()
        }


@pytest.fixture
def reported(tmp_path: Path) -> Iterator[tuple[Wire, Path]]:
    """A store of three with a password in its template and pods, Events about it and about another
    store, a Secret in its namespace, and the operator's pod in phalanx-system."""
    wire = Wire(served=frozenset({"phalanx.dev/v1alpha1"}))
    wire.objects = cluster_of_three().objects
    store = wire.store()
    store["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": "hunter2"}]
    copy_of_spec = json.dumps({"spec": store["spec"]})
    store["metadata"]["annotations"] = {bundle.LAST_APPLIED: copy_of_spec}
    store["status"]["kopf"] = {"lastHandledConfiguration": copy_of_spec}
    env = [
        {"name": "API_TOKEN", "value": "hunter2"},
        {"name": "MODE", "value": "cluster"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    for pod in wire.objects[k.PODS.path("data")]:
        pod["spec"]["containers"] = [{"name": "store", "image": "example/store:1.0", "env": copy.deepcopy(env)}]
    wire.add(k.Resource("", "v1", "secrets"), {"metadata": {"name": "s"}, "data": {"k": "aHVudGVyMg=="}})
    for name, subject in (("e1", "orders-1"), ("e2", "orders-9"), ("e3", "other-1"), ("e4", "orders")):
        kind = "ReplicatedStore" if subject == "orders" else "Pod"
        event = {"metadata": {"name": name}, "involvedObject": {"kind": kind, "name": subject}, "reason": name}
        wire.add(k.EVENTS, {**event, "lastTimestamp": f"2025-01-01T00:00:0{name[1]}Z"})
    operator = {
        "metadata": {"name": "phalanx-abc", "labels": {"app.kubernetes.io/name": "phalanx"}},
        "spec": {"containers": [{"name": "operator", "image": "phalanx:1"}]},
        "status": {"containerStatuses": [{"name": "operator", "restartCount": 1}]},
    }
    wire.add(k.PODS, operator, namespace="phalanx-system")
    wire.logs[k.PODS.path("phalanx-system", "phalanx-abc", "log")] = "reconciled data/orders\n"
    yield wire, tmp_path / "bundle.tar.gz"


def test_the_report_bundles_the_store_children_events_logs_and_plan_and_no_secret(
    run: Callable[..., tuple[int, str, str]], reported: tuple[Wire, Path]
) -> None:
    wire, path = reported
    code, out, err = run(wire, "report", "orders", "-o", str(path))
    assert code == 0, err
    assert out.startswith(f"wrote {path} (")
    files = bundled(path)
    assert {
        "README.txt",
        "store.yaml",
        "status.txt",
        "pods.yaml",
        "persistentvolumeclaims.yaml",
        "persistentvolumes.yaml",
        "volumesnapshots.yaml",
        "services.yaml",
        "poddisruptionbudgets.yaml",
        "events.yaml",
        "plan.txt",
        "plan.json",
        "operator/pods.yaml",
        "operator/phalanx-system.phalanx-abc.operator.log",
        "operator/phalanx-system.phalanx-abc.operator.previous.log",
    } <= set(files)
    assert yaml.safe_load(files["store.yaml"])["metadata"]["name"] == "orders"
    assert not any("hunter2" in text or "aHVudGVyMg" in text for text in files.values())
    pods = yaml.safe_load(files["pods.yaml"])["items"]
    env = pods[0]["spec"]["containers"][0]["env"]
    assert [e.get("value") for e in env] == [bundle.REDACTED, "cluster", None]
    assert {e["reason"] for e in yaml.safe_load(files["events.yaml"])["items"]} == {"e1", "e2", "e4"}
    assert files["operator/phalanx-system.phalanx-abc.operator.log"] == "reconciled data/orders\n"
    assert files["plan.txt"].startswith("dry run: nothing was written")
    assert not any("/secrets" in s.path for s in wire.sent) and {s.method for s in wire.sent} == {"GET"}


def test_what_the_report_cannot_read_is_skipped_with_a_note(
    run: Callable[..., tuple[int, str, str]], reported: tuple[Wire, Path]
) -> None:
    wire, path = reported
    wire.failures["GET", k.PODS.path()] = forbidden("list", "pods", "", None)
    wire.failures["GET", k.EVENTS.path("data")] = forbidden("list", "events", "", "data")
    code, out, _ = run(wire, "report", "orders", "-o", str(path))
    assert code == 0 and "note: the operator's logs" in out
    readme = bundled(path)["README.txt"]
    assert "may not list pods. across the cluster" not in readme  # the core group has no suffix
    assert 'user "jane" may not list pods across the cluster' in readme
    assert 'events: skipped: permission denied: user "jane" may not list events in namespace "data"' in readme
    assert "events.yaml" not in bundled(path)


def test_redaction_covers_sensitive_names_at_any_depth() -> None:
    body: Obj = {
        "spec": {"initContainers": [{"env": [{"name": "aws_secret_access_key", "value": "x"}]}]},
        "containers": [{"env": [{"name": "PORT", "value": "1"}, {"name": "Password", "value": "y"}]}],
    }
    redacted = bundle.redact(body)
    assert redacted["spec"]["initContainers"][0]["env"][0]["value"] == bundle.REDACTED
    assert [e["value"] for e in redacted["containers"][0]["env"]] == ["1", bundle.REDACTED]
    assert body["containers"][0]["env"][1]["value"] == "y"  # a copy: the original untouched
    assert bundle.dump(redacted).count(bundle.REDACTED) == 2
    as_text = {"annotations": {bundle.LAST_APPLIED: json.dumps(body)}, "kopf": {"last": json.dumps(body)}}
    inside = bundle.redact(as_text)
    assert json.loads(inside["kopf"]["last"]) == redacted  # JSON text is redacted inside
    assert json.loads(inside["annotations"][bundle.LAST_APPLIED]) == redacted
    unreadable = bundle.redact({"annotations": {bundle.LAST_APPLIED: "{not json: x", "other": "{kept"}})
    assert unreadable == {"annotations": {bundle.LAST_APPLIED: bundle.REDACTED, "other": "{kept"}}
    assert bundle.redact({"kopf": '{"a": 1}'}) == {"kopf": '{"a": 1}'}  # nothing to redact: left as written
