"""``python -m phalanx``: run the operator with settings from the environment (see ``settings``)."""

from __future__ import annotations

from phalanx import handlers


def main() -> None:
    handlers.run()


if __name__ == "__main__":
    main()
