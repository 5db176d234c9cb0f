"""Validation of client-supplied documents, with the API server's error shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from knm.testing.k8s import errors
from knm.testing.k8s.objects import CONTROLLER_TAINTS, TAINT_EFFECTS, Pod, Taint

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def check_preconditions(pod: Pod, preconditions: Mapping[str, Any] | None) -> None:
    if not preconditions:
        return
    uid = preconditions.get("uid")
    if uid is not None and uid != pod.uid:
        raise errors.ApiError(
            errors.status_failure(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {pod.uid}",
                {"name": pod.name, "kind": "pods"},
            )
        )
    rv = preconditions.get("resourceVersion")
    if rv is not None and str(rv) != str(pod.resource_version):
        raise errors.ApiError(
            errors.status_failure(
                409,
                "Conflict",
                f"Precondition failed: ResourceVersion in precondition: {rv}, "
                f"ResourceVersion in object meta: {pod.resource_version}",
                {"name": pod.name, "kind": "pods"},
            )
        )


def string_map(value: Any, field: str, name: str, *, validate: bool) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise errors.bad_request(
            f'Node in version "v1" cannot be handled as a Node: json: cannot unmarshal '
            f"into Go struct field ObjectMeta.metadata.{field} of type string"
        )
    if validate:
        causes = []
        for key, val in value.items():
            prefix, _, short = key.rpartition("/")
            if not _LABEL_NAME.match(short) or len(short) > 63 or len(prefix) > 253:
                causes.append(
                    {
                        "field": f"metadata.{field}",
                        "message": f'Invalid value: "{key}": name part must consist of '
                        "alphanumeric characters, '-', '_' or '.'",
                    }
                )
            if len(val) > 63 or not _LABEL_VALUE.match(val):
                causes.append(
                    {
                        "field": f"metadata.{field}",
                        "message": f'Invalid value: "{val}": a valid label must be an empty '
                        "string or consist of alphanumeric characters, '-', '_' or '.'",
                    }
                )
        if causes:
            raise errors.invalid("Node", name, causes)
    return dict(value)


def parse_taints(value: Any, name: str, now: str) -> list[Taint]:
    if value is None:
        return []
    try:
        taints = msgspec.convert(value, list[Taint])
    except msgspec.ValidationError as exc:
        raise errors.bad_request(
            f'Node in version "v1" cannot be handled as a Node: spec.taints: {exc}'
        ) from None
    causes = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        if taint.effect not in TAINT_EFFECTS:
            causes.append(
                {
                    "field": f"spec.taints[{i}].effect",
                    "message": f'Unsupported value: "{taint.effect}": supported values: '
                    '"NoSchedule", "PreferNoSchedule", "NoExecute"',
                    "reason": "FieldValueNotSupported",
                }
            )
        if (taint.key, taint.effect) in seen:
            causes.append(
                {
                    "field": f"spec.taints[{i}]",
                    "message": "Duplicate value: taints must be unique by key and effect pair",
                    "reason": "FieldValueDuplicate",
                }
            )
        seen.add((taint.key, taint.effect))
        if taint.effect == "NoExecute" and taint.time_added is None:
            taint.time_added = now
    if causes:
        raise errors.invalid("Node", name, causes)
    return [t for t in taints if t.key not in CONTROLLER_TAINTS]
