"""The operator image carries the operator only: the sandbox (local control plane, simulator) is a
package of its own that the image never copies, and that the operator never imports (make layers)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_image_copies_the_operator_package_and_not_the_sandbox() -> None:
    copies = [line.split()[1:] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY")]
    sources = [source for line in copies for source in line[:-1]]
    assert "operator/phalanx" in sources
    assert not any(source in ("operator", "operator/", ".") or "sandbox" in source for source in sources), sources


def test_the_sandbox_lives_beside_the_operator_package_not_inside_it() -> None:
    assert (REPO / "operator" / "phalanx_sandbox" / "simulator.py").exists()
    assert not (REPO / "operator" / "phalanx" / "sandbox").exists()
