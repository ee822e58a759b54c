"""What an API server does with a CRD schema, redone in Python for tests that run without one.

`apply_defaults` follows the structural-schema defaulting of kube-apiserver (a missing field with a
`default` gets it, then defaulting goes on inside), and `cel_violations` evaluates the schema's
`x-kubernetes-validations` with cel-python, as a server with CEL (1.25+) would: the test control
plane is 1.20 and ignores them. `invalid_specs()` loads the corpus of specs that must be refused.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CRD_FILE = REPO / "crds" / "replicatedstores.phalanx.dev.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CORPUS_FILE = Path(__file__).resolve().parent / "data" / "invalid_specs.yaml"


@functools.cache
def crd() -> dict[str, Any]:
    """The committed CRD, parsed once: treat it as read-only."""
    return dict(yaml.safe_load(CRD_FILE.read_text()))


def root_schema() -> dict[str, Any]:
    return dict(crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` with the schema's defaults filled in, the way the API server fills them."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(sub, value[name])
        if isinstance(schema.get("additionalProperties"), Mapping):
            for item in value.values():
                _default(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default(schema["items"], item)


def cel_violations(schema: Mapping[str, Any], value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, message) of every CEL rule that `value` breaks; the value should be defaulted first."""
    import celpy  # only the tests that evaluate CEL need it
    from celpy.adapter import json_to_cel

    found = []
    for node, node_value, node_path in _walk(schema, value, path):
        for rule in node.get("x-kubernetes-validations", []):
            result = _cel_program(rule["rule"]).evaluate({"self": json_to_cel(node_value)})
            if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                found.append((node_path, rule["message"]))
    return found


@functools.cache
def _cel_program(rule: str) -> Any:
    import celpy

    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _walk(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[Mapping[str, Any], Any, str]]:
    yield schema, value, path
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _walk(sub, value[name], f"{path}.{name}".lstrip("."))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _walk(schema["items"], item, f"{path}[{index}]")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


@dataclass(frozen=True)
class InvalidSpec:
    """One entry of tests/data/invalid_specs.yaml."""

    name: str
    spec: dict[str, Any]
    expect: str
    """`schema`: the API server refuses it; `semantic`: only the operator can judge it."""
    field: str
    message: str | None
    store_name: str | None
    cel: bool
    """A CEL rule of the CRD refuses it too, on servers that run CEL."""

    @property
    def id(self) -> str:
        return self.name.replace(" ", "-")


def invalid_specs(expect: str | None = None) -> list[InvalidSpec]:
    corpus = yaml.safe_load(CORPUS_FILE.read_text())
    entries = [
        InvalidSpec(
            name=entry["name"],
            spec=merge_patch(corpus["base"], entry.get("patch", {})),
            expect=entry["expect"],
            field=entry["field"],
            message=entry.get("message"),
            store_name=entry.get("storeName"),
            cel=entry.get("cel", False),
        )
        for entry in corpus["entries"]
    ]
    return [entry for entry in entries if expect is None or entry.expect == expect]
