"""``python -m phalanx``: run the operator with settings from the environment (see ``settings``).

``python -m phalanx plan -f store.yaml``: preview what the operator would do with a manifest, writing
nothing (see ``dryrun``). Each imports only what it needs: the preview loads neither Kopf nor the
operator's handlers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["plan"]:
        from phalanx import dryrun

        sys.exit(dryrun.main(args[1:]))
    from phalanx import handlers

    handlers.run()


if __name__ == "__main__":
    main()
