"""``python -m phalanx``: run the operator with settings from the environment (see ``settings``)."""

from __future__ import annotations

import logging

import kopf

from phalanx import handlers  # noqa: F401 - registers the handlers with Kopf
from phalanx.settings import Settings


def main() -> None:
    config = Settings.from_env()
    kopf.configure(log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL)
    # Kopf logs every successful event handler at INFO: the wake-ups would drown Phalanx's own lines.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None,
    )


if __name__ == "__main__":
    main()
