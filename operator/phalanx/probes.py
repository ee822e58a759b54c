"""The operator's own probe endpoints, served in every role (leader and standby), on one port:

- ``/healthz``: alive (a leader whose event loop stopped answering for 30 s is not);
- ``/readyz``: ready, in either role, with the role in the body (a standby is healthy and ready to
  take over: marking it unready would make the chart's PodDisruptionBudget block every node drain);
- ``/leader``: 200 only on the process that holds the lease (503 on a standby), for a person or a
  script asking which pod leads.

Kopf's own liveness endpoint runs only where Kopf runs (the leader), so it cannot serve a standby.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, role: Callable[[], str], alive: Callable[[], bool]) -> ThreadingHTTPServer:
    """Serve the probes on ``port`` in a daemon thread; ``role`` says "leader" or "standby"."""

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            now = role()
            if self.path.startswith("/healthz"):
                code, text = (200, "ok") if alive() else (503, "the operator's loop stopped answering")
            elif self.path.startswith("/readyz"):
                code, text = 200, now
            elif self.path.startswith("/leader"):
                code, text = (200, "leader") if now == "leader" else (503, now)
            else:
                code, text = 404, "not found"
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: not news
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Probes)
    threading.Thread(target=server.serve_forever, name="phalanx-probes", daemon=True).start()
    return server
