"""The client layer against a real HTTP server that misbehaves as a busy or restarting API server
does: 429 with Retry-After, 503, 500, a dropped connection. Reads and idempotent writes are tried
again with backoff; a create only when it surely did not happen (429, or no connection at all)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kubernetes.client
import pytest
import urllib3

from phalanx import kube as k
from phalanx.kube import ApiError, Kube, NotLeadingError


class Script:
    """What the server answers, request by request (then 200), and what it saw."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.seen: list[tuple[str, float]] = []


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            script.seen.append((self.command, time.monotonic()))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            code, headers = script.answers.pop(0) if script.answers else (200, {})
            body = json.dumps({"kind": "Status", "code": code, "metadata": {"name": "x"}}).encode()
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield script, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def client(host: str, quick: bool = False) -> Kube:
    """A client of ``host``; ``quick``: the same rules with a backoff a hundred times shorter."""
    configuration = kubernetes.client.Configuration()
    configuration.host = host
    made = Kube(kubernetes.client.ApiClient(configuration))
    if quick:
        made.retry = made.retry.new(backoff_factor=0.0025, backoff_jitter=0.0)
        made.retry_create = made.retry_create.new(backoff_factor=0.0025, backoff_jitter=0.0)
    return made


def test_a_read_that_meets_429_waits_as_long_as_retry_after_says_then_succeeds(server: tuple[Script, str]) -> None:
    script, host = server
    script.answers = [(429, {"Retry-After": "1"}), (503, {})]
    started = time.monotonic()
    assert client(host).get(k.PODS, "x", "ns")["code"] == 200
    assert [verb for verb, _ in script.seen] == ["GET", "GET", "GET"]
    assert script.seen[1][1] - started >= 1.0, "Retry-After honoured"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_idempotent_writes_are_tried_again_on_a_5xx(server: tuple[Script, str], status: int) -> None:
    script, host = server
    script.answers = [(status, {}), (status, {})]
    client(host).patch(k.PODS, "x", {"metadata": {"labels": {"a": "b"}}}, "ns")
    assert [verb for verb, _ in script.seen] == ["PATCH"] * 3


def test_a_create_is_tried_again_on_429_but_never_on_a_5xx_that_may_have_made_it(server: tuple[Script, str]) -> None:
    script, host = server
    script.answers = [(429, {"Retry-After": "0"})]
    client(host).create(k.PODS, {"metadata": {"name": "x"}}, "ns")
    assert [verb for verb, _ in script.seen] == ["POST", "POST"]
    script.seen.clear()
    script.answers = [(500, {})]
    with pytest.raises(ApiError) as refused:
        client(host).create(k.PODS, {"metadata": {"name": "y"}}, "ns")
    assert refused.value.status == 500 and [verb for verb, _ in script.seen] == ["POST"]


def test_retries_are_bounded_and_the_last_answer_is_reported(server: tuple[Script, str]) -> None:
    script, host = server
    script.answers = [(503, {})] * 20
    with pytest.raises(ApiError) as failed:
        client(host, quick=True).get(k.PODS, "x", "ns")
    assert failed.value.status == 503
    assert len(script.seen) == 6, "one try and five more: a server away for long fails the pass, not the process"


def test_no_server_at_all_is_tried_again_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once it closes
    tries: list[str] = []

    class Counting(urllib3.Retry):
        def increment(self, *args: Any, **kwargs: Any) -> urllib3.Retry:  # type: ignore[override]
            tries.append(type(kwargs.get("error")).__name__)
            return super().increment(*args, **kwargs)

    refused = client(f"http://127.0.0.1:{port}")
    refused.retry = Counting(**{**vars_of(refused.retry), "backoff_factor": 0.0025, "backoff_jitter": 0.0})
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        refused.get(k.PODS, "x", "ns")
    assert len(tries) == 7 and set(tries) == {"NewConnectionError"}, tries


def vars_of(retry: urllib3.Retry) -> dict[str, Any]:
    """A Retry's settings, to build another of them (urllib3's own ``new`` keeps the class)."""
    names = (
        *("total", "connect", "read", "status", "other", "redirect", "allowed_methods", "status_forcelist"),
        *("backoff_factor", "backoff_max", "respect_retry_after_header", "backoff_jitter", "raise_on_status"),
    )
    return {name: getattr(retry, name) for name in names}


def test_a_write_is_refused_before_it_is_sent_when_the_guard_says_no(server: tuple[Script, str]) -> None:
    script, host = server
    guarded = client(host)
    guarded.write_guard = lambda: False
    assert guarded.get(k.PODS, "x", "ns")["code"] == 200, "reads are never fenced"
    with pytest.raises(NotLeadingError):
        guarded.patch(k.PODS, "x", {}, "ns")
    assert [verb for verb, _ in script.seen] == ["GET"]
