"""Connecting as kubectl does, reading stores, and API errors turned into sentences.

The plugin runs wherever kubectl runs, so it takes its cluster the way kubectl does: ``--kubeconfig``,
else ``$KUBECONFIG`` (read now, a list of files as kubectl merges them), else ``~/.kube/config``, else
the pod's service account; ``--context`` picks a context; the namespace is ``-n``, else the context's,
else ``default``.

Its client (``PluginKube``) is the operator's raw-JSON ``Kube`` with two refusals made before anything
leaves the process: no Secret is ever read, and the only write is a JSON merge patch of the store's
own annotations that Phalanx answers. So whatever a command does, it cannot change anything else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import kubernetes.client
import kubernetes.config
import urllib3
import yaml

from phalanx import kube as k
from phalanx import names
from phalanx.kube import ApiError, Kube, Obj
from phalanx.models import GROUP, KIND, VERSION

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
FIELD_MANAGER: Final = "kubectl-phalanx"
"""The field manager of every patch the plugin sends (``managedFields`` name it)."""
ANNOTATIONS: Final = frozenset({names.SNAPSHOT_REQUEST, names.ROLLOUT_PAUSED_ANNOTATION, names.REPLACE_ANNOTATION})
"""The only fields the plugin writes: the store annotations that Phalanx answers."""
API: Final = f"{GROUP}/{VERSION}"

_IN_CLUSTER_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_FORBIDDEN: Final = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]*)"|(?P<cluster> at the cluster scope))?'
)
"""The API server's RBAC refusal: who may not do which verb on which resource, and where."""


class CliError(Exception):
    """A failure to tell a person in one message, and the exit status it ends the command with."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RefusedRequestError(RuntimeError):
    """The plugin asked for a request it must never send (a Secret, or a write other than its
    annotations): a bug, stopped before it was sent."""


class RequestError(ApiError):
    """An API error with the request that drew it, for messages that must name what was asked."""

    def __init__(self, status: int, body: str, method: str, path: str) -> None:
        super().__init__(status, body)
        self.method = method
        self.path = path


def refusal(method: str, path: str, body: Any, content_type: str) -> str | None:
    """Why the plugin must not send this request (None: it may). Reads anything but Secrets; writes
    only a merge patch of a store's ``metadata.annotations``, and of Phalanx's three annotations."""
    resource = k.resource_of(path)
    if resource.split("/")[0] == "secrets":
        return f"{method} {path}: kubectl phalanx never reads Secrets"
    if method.upper() == "GET":
        return None
    annotations = ((body or {}).get("metadata") or {}).get("annotations") if isinstance(body, Mapping) else None
    if (
        method.upper() == "PATCH"
        and resource == k.STORES.plural
        and path.startswith(f"/apis/{API}/")
        and content_type == "application/merge-patch+json"
        and isinstance(annotations, Mapping)
        and set(body) == {"metadata"}
        and set(body["metadata"]) == {"annotations"}
        and annotations
        and set(annotations) <= ANNOTATIONS
    ):
        return None
    return f"{method} {path}: kubectl phalanx writes only the store annotations {sorted(ANNOTATIONS)}"


class PluginKube(Kube):
    """The operator's client, held to what the plugin may do (``refusal``), its API errors carrying
    the request that drew them. It gives up sooner than the operator (a person is waiting): a few
    quick tries on a busy or restarting API server, then the error."""

    def __init__(self, api_client: kubernetes.client.ApiClient, field_manager: str | None = FIELD_MANAGER) -> None:
        super().__init__(api_client, field_manager=field_manager)
        self.retry = k.RETRY.new(total=3, connect=2, read=1, status=2, backoff_max=2)

    def request(self, method: str, path: str, **options: Any) -> Any:
        refused = refusal(method, path, options.get("body"), options.get("content_type", "application/json"))
        if refused is not None:
            raise RefusedRequestError(refused)
        try:
            return super().request(method, path, **options)
        except RequestError:
            raise
        except ApiError as error:
            raise RequestError(error.status, error.body, method, path) from error


@dataclass(frozen=True)
class Connection:
    """A client for the chosen cluster, and where commands look when no namespace is named."""

    kube: Kube
    namespace: str
    """``-n``, else the context's namespace, else ``default``."""
    server: str
    """The API server's address, for messages."""


def kubeconfig_path(flag: str | None) -> str | None:
    """The kubeconfig kubectl would read: ``--kubeconfig``, else ``$KUBECONFIG`` (read now: the
    official client reads it once, when it is imported), else ``~/.kube/config`` when it exists or
    there is no pod's service account to fall back on. None: in a pod, its service account."""
    if flag:
        return flag
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    home = Path.home() / ".kube" / "config"
    if home.exists() or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return str(home)
    return None


def current_context(path: str) -> str | None:
    """The current context as kubectl reads a list of kubeconfigs: the first file that names one
    wins (the official client would take the last)."""
    for entry in path.split(os.pathsep):
        file = Path(entry).expanduser()
        if entry and file.is_file():
            config = yaml.safe_load(file.read_text()) or {}
            if isinstance(config, dict) and config.get("current-context"):
                return str(config["current-context"])
    return None


def context_namespace(path: str, context: str | None) -> str | None:
    """The namespace the kubeconfig's context names (``--context``, else the current one), if any."""
    contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Connection:
    """A ``PluginKube`` for the cluster kubectl would talk to, with the same flags."""
    configuration = kubernetes.client.Configuration()
    path = kubeconfig_path(kubeconfig)
    try:
        if path is None:
            if context:
                raise CliError(f"--context {context}: no kubeconfig to find it in (running with a pod's account)")
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            default = _IN_CLUSTER_NAMESPACE.read_text().strip() if _IN_CLUSTER_NAMESPACE.exists() else None
        else:
            context = context or current_context(path)
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
            default = context_namespace(path, context)
    except (kubernetes.config.ConfigException, OSError, ValueError, KeyError, yaml.YAMLError) as error:
        where = f"the kubeconfig {path}" if path else "the pod's service account"
        raise CliError(f"cannot use {where}{f' (context {context})' if context else ''}: {error}") from error
    configuration.connection_pool_maxsize = 4
    client = kubernetes.client.ApiClient(configuration)
    kube = PluginKube(client, field_manager=FIELD_MANAGER)
    return Connection(kube, namespace or default or "default", str(configuration.host))


# ------------------------------------------------------------------------------------------------
# Errors a person understands


def crd_missing() -> CliError:
    return CliError(
        f"this cluster does not serve {KIND}s ({API}): the Phalanx CRD is not installed here "
        "(install the chart, or `kubectl apply -f crds/`), or the cluster is older than the CRD needs"
    )


def no_such_store(name: str, namespace: str) -> CliError:
    return CliError(
        f'no {KIND} "{name}" in namespace "{namespace}": see the stores there with '
        f"`kubectl phalanx status -n {namespace}`, or in every namespace with `kubectl phalanx status -A`"
    )


def forbidden(error: ApiError) -> CliError:
    """Which verb on which resource the API server refused, and to whom, from its 403 answer."""
    found = _FORBIDDEN.search(error.message)
    if found is None:
        method, path = (error.method, error.path) if isinstance(error, RequestError) else ("?", "?")
        return CliError(f"permission denied: {method} {path}: {error.message}")
    group = found["group"] or ""
    resource = f"{found['resource']}.{group}" if group else found["resource"]
    where = f' in namespace "{found["namespace"]}"' if found["namespace"] else ""
    where = " across the cluster" if found["cluster"] else where
    return CliError(
        f'permission denied: user "{found["user"]}" may not {found["verb"]} {resource}{where} '
        f'(RBAC: verb "{found["verb"]}" on resource "{found["resource"]}" in API group "{group}"). '
        "Ask for a Role or ClusterRole that grants it."
    )


def explain(error: BaseException, server: str = "") -> CliError:
    """An error of the client or of the API server, said for a person (with the API server's own
    words where they help)."""
    if isinstance(error, CliError):
        return error
    if isinstance(error, ApiError):
        if error.status == 403:
            return forbidden(error)
        if error.status == 401:
            return CliError(f"the API server {server} refused the credentials (401 Unauthorized): {error.message}")
        what = f"{error.method} {error.path}: " if isinstance(error, RequestError) else ""
        return CliError(f"the API server answered {error.status} {error.reason}: {what}{error.message}")
    if isinstance(error, urllib3.exceptions.HTTPError):
        reason = getattr(error, "reason", None) or error
        return CliError(f"cannot reach the API server {server}: {reason}")
    if isinstance(error, kubernetes.config.ConfigException):
        return CliError(f"kubeconfig: {error}")
    return CliError(f"{type(error).__name__}: {error}")


# ------------------------------------------------------------------------------------------------
# Reading stores


def get_store(kube: Kube, name: str, namespace: str) -> Obj:
    """The store, or an error that names it and its namespace, or says the CRD is not installed (a
    404 answers both: discovery tells them apart)."""
    try:
        return kube.get(k.STORES, name, namespace)
    except ApiError as error:
        if error.status != 404:
            raise
        if not k.served(kube, API):
            raise crd_missing() from error
        raise no_such_store(name, namespace) from error


def list_stores(kube: Kube, namespace: str | None) -> list[Obj]:
    """Every store of a namespace (None: of every namespace), by namespace and name."""
    try:
        found = kube.items(k.STORES, namespace)
    except ApiError as error:
        if error.status == 404:  # a collection is missing only when its API is not served
            raise crd_missing() from error
        raise
    return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
