"""The ``snapshot.storage.k8s.io/v1`` CustomResourceDefinitions, for clusters without a CSI snapshotter.

Written from the fields of the upstream external-snapshotter v1 API (VolumeSnapshot,
VolumeSnapshotContent, VolumeSnapshotClass): the same group, kinds, scopes, short names, status
subresources and the fields a controller or a user reads. The simulator installs them; on a real
cluster the CSI snapshotter's own CRDs are already there.
"""

from __future__ import annotations

from typing import Any

GROUP = "snapshot.storage.k8s.io"
Schema = dict[str, Any]


def _s(description: str = "") -> Schema:
    return {"type": "string", **({"description": description} if description else {})}


def _obj(properties: dict[str, Schema], required: list[str] | None = None, description: str = "") -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


_ERROR = _obj({"message": _s("why the last operation failed"), "time": {"type": "string", "format": "date-time"}})
_DELETION_POLICY = {"type": "string", "enum": ["Delete", "Retain"]}
_REF = _obj({k: _s() for k in ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")})


def _crd(kind: str, plural: str, short: list[str], scope: str, schema: Schema, columns: list[Schema]) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        # The group is protected (*.k8s.io); upstream's CRDs carry their API review as approval.
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "annotations": {
                "api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/419"
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
            },
            "scope": scope,
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}} if "status" in schema["properties"] else {},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _col(name: str, path: str, kind: str = "string") -> Schema:
    return {"name": name, "jsonPath": path, "type": kind}


def _top(spec: Schema | None, status: Schema | None, extra: dict[str, Schema] | None = None) -> Schema:
    props: dict[str, Schema] = {"apiVersion": _s(), "kind": _s(), "metadata": {"type": "object"}}
    if spec is not None:
        props["spec"] = spec
    if status is not None:
        props["status"] = status
    props.update(extra or {})
    return _obj(props, required=["spec"] if spec is not None else None)


def snapshot_crds() -> list[Schema]:
    """The three CRDs, ready to create."""
    snapshot = _top(
        _obj(
            {
                "source": _obj(
                    {
                        "persistentVolumeClaimName": _s("the PVC to snapshot (dynamic provisioning)"),
                        "volumeSnapshotContentName": _s("a pre-existing content (static binding)"),
                    }
                ),
                "volumeSnapshotClassName": _s(),
            },
            required=["source"],
        ),
        _obj(
            {
                "boundVolumeSnapshotContentName": _s(),
                "creationTime": {"type": "string", "format": "date-time"},
                "readyToUse": {"type": "boolean"},
                "restoreSize": {"x-kubernetes-int-or-string": True},
                "error": _ERROR,
            }
        ),
    )
    content = _top(
        _obj(
            {
                "deletionPolicy": _DELETION_POLICY,
                "driver": _s(),
                "source": _obj({"volumeHandle": _s(), "snapshotHandle": _s()}),
                "sourceVolumeMode": _s(),
                "volumeSnapshotClassName": _s(),
                "volumeSnapshotRef": _REF,
            },
            required=["deletionPolicy", "driver", "source", "volumeSnapshotRef"],
        ),
        _obj(
            {
                "creationTime": {"type": "integer", "format": "int64"},
                "readyToUse": {"type": "boolean"},
                "restoreSize": {"type": "integer", "format": "int64"},
                "snapshotHandle": _s(),
                "error": _ERROR,
            }
        ),
    )
    snapshot_class = _top(
        None,
        None,
        {
            "driver": _s(),
            "deletionPolicy": _DELETION_POLICY,
            "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    )
    snapshot_class["required"] = ["driver", "deletionPolicy"]
    return [
        _crd(
            "VolumeSnapshotClass",
            "volumesnapshotclasses",
            ["vsclass", "vsclasses"],
            "Cluster",
            snapshot_class,
            [_col("Driver", ".driver"), _col("DeletionPolicy", ".deletionPolicy")],
        ),
        _crd(
            "VolumeSnapshotContent",
            "volumesnapshotcontents",
            ["vsc", "vscs"],
            "Cluster",
            content,
            [
                _col("ReadyToUse", ".status.readyToUse", "boolean"),
                _col("DeletionPolicy", ".spec.deletionPolicy"),
                _col("VolumeSnapshot", ".spec.volumeSnapshotRef.name"),
            ],
        ),
        _crd(
            "VolumeSnapshot",
            "volumesnapshots",
            ["vs"],
            "Namespaced",
            snapshot,
            [
                _col("ReadyToUse", ".status.readyToUse", "boolean"),
                _col("SourcePVC", ".spec.source.persistentVolumeClaimName"),
                _col("SnapshotContent", ".status.boundVolumeSnapshotContentName"),
                _col("CreationTime", ".status.creationTime", "date"),
            ],
        ),
    ]
