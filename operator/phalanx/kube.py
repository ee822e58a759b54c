"""A small raw-JSON access layer over the official client: the operator's writer and the sandbox share it.

Phalanx writes a handful of kinds (pods, PVCs, Services, PodDisruptionBudgets in policy/v1 or v1beta1,
VolumeSnapshots, its own status) and the sandbox plays kubelets and storage for any kind, core or
custom. Plain dicts and one generic code path serve both better than the client's generated models,
which also lack policy/v1beta1. The official client still does the transport: configuration, TLS,
authentication and connection pooling.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import kubernetes.client
import kubernetes.config
import urllib3

Obj = dict[str, Any]
log = logging.getLogger("phalanx.kube")


class ApiError(Exception):
    """A non-2xx answer of the API server, with its status code and reason."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        try:
            parsed = json.loads(body)
            self.reason = str(parsed.get("reason", ""))
            self.message = str(parsed.get("message", body))
        except ValueError:
            self.reason, self.message = "", body
        super().__init__(f"{status} {self.reason}: {self.message}")


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST tree."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


NODES = Resource("", "v1", "nodes", namespaced=False)
PODS = Resource("", "v1", "pods")
PVCS = Resource("", "v1", "persistentvolumeclaims")
PVS = Resource("", "v1", "persistentvolumes", namespaced=False)
EVENTS = Resource("", "v1", "events")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", namespaced=False)
CSIDRIVERS = Resource("storage.k8s.io", "v1", "csidrivers", namespaced=False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots")
SNAPSHOT_CONTENTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", namespaced=False)
SNAPSHOT_CLASSES = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", namespaced=False)
SERVICES = Resource("", "v1", "services")
PDB_V1 = Resource("policy", "v1", "poddisruptionbudgets")
PDB_V1BETA1 = Resource("policy", "v1beta1", "poddisruptionbudgets")
STORES = Resource("phalanx.dev", "v1alpha1", "replicatedstores")

WriteObserver = Callable[[str, str, int], None]
"""Called after every write with (verb, REST path, HTTP status): the operator counts them."""

WriteGuard = Callable[[], bool]
"""Asked before every write: False refuses it (the operator no longer holds its lease)."""


class NotLeadingError(Exception):
    """A write refused because this process may not act (see ``phalanx.leader``)."""


_TRANSIENT = frozenset({429, 500, 502, 503, 504})

RETRY: Final = urllib3.Retry(
    total=6,
    connect=6,
    read=3,
    status=5,
    other=0,
    redirect=0,
    allowed_methods=frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
    status_forcelist=_TRANSIENT,
    backoff_factor=0.25,
    backoff_max=8,
    backoff_jitter=0.25,
    respect_retry_after_header=True,
    retry_after_max=30,
    raise_on_status=False,
)
"""How a request that met a busy or restarting API server is tried again: urllib3's Retry, with
capped exponential backoff and jitter, honouring Retry-After (at most 30 s), on connection errors,
429 and 5xx. Reads, replaces, patches (merge patches that set values) and deletes (uid-guarded) are
safe to repeat."""

RETRY_CREATE: Final = RETRY.new(read=0, status_forcelist=frozenset({429}), allowed_methods=frozenset({"POST"}))
"""A create is repeated only when it surely did not happen: the connection failed, or the server
answered 429 (it refused to process it). A create that timed out or met a 5xx may have been made:
repeating it would meet 409, which act already treats as "look at what holds the name"."""


def load_api_client(kubeconfig: str) -> kubernetes.client.ApiClient:
    """An ApiClient for exactly this kubeconfig: never whatever $KUBECONFIG points at."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(configuration)


def load_default_client(connections: int = 32) -> kubernetes.client.ApiClient:
    """In a pod: the service account. Elsewhere: the kubeconfig that $KUBECONFIG names, read now.
    ``connections``: how many it keeps open (one per thread that sends at once).

    Reading $KUBECONFIG at call time matters: the client captures it when it is imported.
    """
    configuration = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration
        )
    configuration.connection_pool_maxsize = connections
    return kubernetes.client.ApiClient(configuration)


class Kube:
    """get/list/create/patch/delete/watch on dicts, for any Resource."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        on_write: WriteObserver | None = None,
        field_manager: str | None = None,
        write_guard: WriteGuard | None = None,
    ) -> None:
        self.api_client = api_client
        self.on_write = on_write
        self.write_guard = write_guard
        self.retry, self.retry_create = RETRY, RETRY_CREATE
        """How requests are tried again (tests shorten the backoff, never the rules)."""
        self.field_manager = field_manager
        """Sent with every create, update and patch, so managedFields name the writer."""

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str) -> Kube:
        return cls(load_api_client(kubeconfig))

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | urllib3.Timeout | None = 30,
        stream: bool = False,
    ) -> Any:
        if method != "GET" and self.write_guard is not None and not self.write_guard():
            raise NotLeadingError(f"{method} {path}: this operator does not hold the lease")
        url = self.api_client.configuration.host + path
        if self.field_manager and method in ("POST", "PUT", "PATCH"):
            query = {**(query or {}), "fieldManager": self.field_manager}
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        for setting in self.api_client.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        data = json.dumps(body) if body is not None else None
        response = self.api_client.rest_client.pool_manager.request(
            method,
            url,
            body=data,
            headers=headers,
            preload_content=not stream,
            timeout=timeout,
            retries=self.retry_create if method == "POST" else self.retry,
        )
        if self.on_write is not None and method != "GET":
            self.on_write(method.lower(), path, int(response.status))
        if response.status >= 300:
            text = response.data.decode(errors="replace") if not stream else response.read().decode()
            raise ApiError(response.status, text)
        if stream:
            return response
        return json.loads(response.data) if response.data else None

    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        result: Obj = self.request("GET", res.path(namespace, name))
        return result

    def find(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.get(res, name, namespace)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def listing(
        self, res: Resource, namespace: str | None = None, selector: str | None = None, page: int | None = None
    ) -> Obj:
        """One LIST; with ``page``, every page of it (``limit``/``continue``), so that a list of
        thousands of objects never has to come back as one answer."""
        query = {"labelSelector": selector} if selector else {}
        if page is None:
            result: Obj = self.request("GET", res.path(namespace), query=query or None)
            return result
        items: list[Obj] = []
        token = ""
        while True:
            answer = self.request(
                "GET",
                res.path(namespace),
                query={**query, "limit": str(page), **({"continue": token} if token else {})},
            )
            items += answer.get("items") or []
            token = (answer.get("metadata") or {}).get("continue") or ""
            if not token:
                answer["items"] = items
                return dict(answer)

    def items(self, res: Resource, namespace: str | None = None, selector: str | None = None) -> list[Obj]:
        items: list[Obj] = self.listing(res, namespace, selector).get("items", [])
        return items

    def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or body.get("metadata", {}).get("namespace")
        result: Obj = self.request("POST", res.path(ns), body=body)
        return result

    def ensure(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj | None:
        """Create unless it already exists (idempotent setup)."""
        try:
            return self.create(res, body, namespace)
        except ApiError as error:
            if error.status == 409:
                return None
            raise

    def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        sub: str | None = None,
        kind: str = "merge",
    ) -> Obj:
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[kind]
        result: Obj = self.request("PATCH", res.path(namespace, name, sub), body=patch, content_type=content_type)
        return result

    def replace(self, res: Resource, body: Obj, *, sub: str | None = None) -> Obj:
        meta = body["metadata"]
        result: Obj = self.request("PUT", res.path(meta.get("namespace"), meta["name"], sub), body=body)
        return result

    def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        grace_seconds: int | None = None,
        propagation: str | None = None,
    ) -> bool:
        """Delete; False when it was already gone. A uid precondition never deletes a successor."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if propagation:
            options["propagationPolicy"] = propagation
        try:
            self.request("DELETE", res.path(namespace, name), body=options)
        except ApiError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    def watch(
        self,
        res: Resource,
        resource_version: str,
        timeout_seconds: int = 60,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        """Events after resource_version until the server closes the stream."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            **({"labelSelector": selector} if selector else {}),
        }
        response = self.request(
            "GET",
            res.path(namespace),
            query=query,
            timeout=urllib3.Timeout(connect=5, read=timeout_seconds + 10),
            stream=True,
        )
        try:
            buffer = b""
            for chunk in response.stream(None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]
        finally:
            response.release_conn()


def _segments(path: str) -> list[str]:
    """A REST path without its API prefix: ``[namespaces, ns, pods, name, status]`` or ``[nodes, n]``."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    return parts[2:] if parts[:1] == ["api"] else parts[3:]


def resource_of(path: str) -> str:
    """The resource of a REST path (``/api/v1/namespaces/x/pods/y/status`` -> ``pods/status``)."""
    core = _segments(path)
    if core[:1] == ["namespaces"] and len(core) > 2:
        core = core[2:]
    return "/".join([core[0], *core[2:3]]) if core else ""


def namespace_of(path: str) -> str:
    """The namespace of a REST path, or "" for a cluster-scoped one."""
    core = _segments(path)
    return core[1] if core[:1] == ["namespaces"] and len(core) > 2 else ""


def served(kube: Kube, group_version: str) -> bool:
    """Whether the API server serves a group version (``policy/v1`` is not served by v1.20)."""
    try:
        kube.request("GET", f"/apis/{group_version}")
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


def disruption_budgets(kube: Kube) -> Resource:
    """The PodDisruptionBudget version the cluster serves: ``policy/v1``, else ``policy/v1beta1``."""
    return PDB_V1 if served(kube, "policy/v1") else PDB_V1BETA1


def key_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


class Informer:
    """List, then watch, one resource; keep a cache of dicts; call back with each changed key.

    Level-triggered: the callback gets a key, never the event, and reads the cache. A watch that
    expires (410 Gone) or breaks is followed by a fresh list, which also reports every key again.
    ``namespace`` and ``selector`` narrow what is watched; ``transform`` keeps only what the reader
    needs of each object (memory grows with the cluster, so the operator keeps a few fields);
    ``delay`` holds every watch event back that many seconds (tests: a lagging watch).
    """

    PAGE = 500
    """Objects per LIST page when (re)listing."""

    def __init__(
        self,
        kube: Kube,
        res: Resource,
        on_change: Callable[[str, str], None],
        name: str = "",
        *,
        namespace: str | None = None,
        selector: str | None = None,
        transform: Callable[[Obj], Obj] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.kube = kube
        self.res = res
        self.on_change = on_change
        self.name = name or res.plural
        self.namespace = namespace
        self.selector = selector
        self.transform = transform or (lambda obj: obj)
        self.delay = delay
        self.cache: dict[str, Obj] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def get(self, key: str) -> Obj | None:
        with self.lock:
            return self.cache.get(key)

    def values(self) -> list[Obj]:
        with self.lock:
            return list(self.cache.values())

    def load(self) -> None:
        """One LIST into the cache and no watch: for a reader that looks once and leaves (the dry run),
        with the same selection and ``transform`` as a running informer."""
        self._relist()

    def _relist(self) -> str:
        listing = self.kube.listing(self.res, self.namespace, self.selector, page=self.PAGE)
        fresh = {key_of(item): self.transform(item) for item in listing.get("items", [])}
        with self.lock:
            gone = set(self.cache) - set(fresh)
            self.cache = fresh
        for key in [*fresh, *gone]:
            self.on_change(self.name, key)
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    def _delayed(self, events: Iterator[tuple[str, Obj]]) -> Iterator[tuple[str, Obj]]:
        """Each event handed on ``delay`` seconds after it arrived (tests: a watch that lags)."""
        arrived: queue.Queue[tuple[float, tuple[str, Obj]] | None] = queue.Queue()

        def pump() -> None:
            try:
                for event in events:
                    arrived.put((time.monotonic(), event))
            except Exception:  # the stream broke: what arrived is still handed on, then a new watch
                log.debug("watch of %s ended", self.name, exc_info=True)
            finally:
                arrived.put(None)

        threading.Thread(target=pump, name=f"informer-{self.name}-pump", daemon=True).start()
        while (item := arrived.get()) is not None:
            moment, event = item
            time.sleep(max(0.0, moment + self.delay - time.monotonic()))
            yield event

    def _run(self) -> None:
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    version = self._relist()
                events = self.kube.watch(self.res, version, namespace=self.namespace, selector=self.selector)
                for kind, obj in self._delayed(events) if self.delay else events:
                    if kind == "ERROR":
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if kind == "BOOKMARK":
                        continue
                    key = key_of(obj)
                    with self.lock:
                        if kind == "DELETED":
                            self.cache.pop(key, None)
                        else:
                            self.cache[key] = self.transform(obj)
                    self.on_change(self.name, key)
                    if self.stopping.is_set():
                        return
            except ApiError as error:
                if error.status == 410:
                    version = ""
                else:
                    time.sleep(0.5)
            except Exception:  # a broken stream: the next loop relists or resumes
                if self.stopping.is_set():
                    return
                log.warning("watch of %s broke; resuming", self.name, exc_info=True)
                time.sleep(0.5)
