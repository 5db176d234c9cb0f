"""The three PATCH flavours the API server accepts for built-in types.

Strategic merge needs per-field knowledge (the ``patchStrategy``/``patchMergeKey``
struct tags in k8s.io/api); only the lists that matter for nodes and pods are
described here, every other list is replaced wholesale -- which is also what the
real server does for untagged lists such as ``spec.taints``.
"""

from __future__ import annotations

import copy
from typing import Any

JSON = Any


class PatchError(ValueError):
    """The patch cannot be applied; the API answers 422."""


# Path (object keys only, list positions dropped) -> merge key, or "" for a list of
# scalars merged as a set.
_MERGE_LISTS: dict[tuple[str, ...], str] = {
    ("metadata", "ownerReferences"): "uid",
    ("metadata", "finalizers"): "",
    ("spec", "podCIDRs"): "",
    ("status", "conditions"): "type",
    ("status", "addresses"): "type",
    ("spec", "containers"): "name",
    ("spec", "initContainers"): "name",
    ("spec", "volumes"): "name",
    ("spec", "containers", "env"): "name",
    ("spec", "containers", "ports"): "containerPort",
    ("spec", "containers", "volumeMounts"): "mountPath",
    ("status", "podIPs"): "ip",
}


def merge_patch(original: JSON, patch: JSON) -> JSON:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: JSON, patch: JSON) -> JSON:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _smp_map(original, patch, ())


def _smp_map(original: JSON, patch: dict[str, Any], path: tuple[str, ...]) -> JSON:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive is not None:
        raise PatchError(f"unknown patch type: {directive}")
    result: dict[str, Any] = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$retainKeys",) or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key), value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, (*path, key))
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(original: JSON, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    merge_key = _MERGE_LISTS.get(path)
    replace = any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch)
    items = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if merge_key is None or replace or not isinstance(original, list):
        return [i for i in copy.deepcopy(items) if not _is_delete(i)]
    if merge_key == "":
        result = list(original)
        for item in items:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    result = copy.deepcopy(original)
    for item in items:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"map at {'.'.join(path)} is missing merge key {merge_key!r}")
        index = next(
            (
                n
                for n, o in enumerate(result)
                if isinstance(o, dict) and o.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if _is_delete(item):
            if index is not None:
                del result[index]
        elif index is None:
            result.append(copy.deepcopy(item))
        else:
            result[index] = _smp_map(result[index], item, path)
    return result


def _is_delete(item: Any) -> bool:
    return isinstance(item, dict) and item.get("$patch") == "delete"


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: JSON, tokens: list[str], path: str) -> JSON:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise PatchError(f"path {path!r} not found")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, path, allow_end=False)]
        else:
            raise PatchError(f"path {path!r} not found")
    return doc


def _index(doc: list[Any], token: str, path: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(doc)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r} in {path!r}")
    index = int(token)
    if index > len(doc) or (index == len(doc) and not allow_end):
        raise PatchError(f"array index {index} out of bounds in {path!r}")
    return index


def _add(doc: JSON, path: str, value: JSON) -> JSON:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f"path {path!r} not found")
    return doc


def _remove(doc: JSON, path: str) -> JSON:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"path {path!r} not found")


def json_patch(original: JSON, operations: JSON) -> JSON:
    """RFC 6902 applied to a copy; any failing operation aborts the whole patch."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = copy.deepcopy(original)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid json patch operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {kind!r} requires a value")
        match kind:
            case "add":
                doc = _add(doc, path, copy.deepcopy(op["value"]))
            case "remove":
                _remove(doc, path)
            case "replace":
                if not _pointer(path):
                    doc = copy.deepcopy(op["value"])
                else:
                    _remove(doc, path)
                    doc = _add(doc, path, copy.deepcopy(op["value"]))
            case "move":
                value = _remove(doc, op["from"])
                doc = _add(doc, path, value)
            case "copy":
                doc = _add(doc, path, copy.deepcopy(_walk(doc, _pointer(op["from"]), op["from"])))
            case "test":
                if _walk(doc, _pointer(path), path) != op["value"]:
                    raise PatchError(f"testing value {path} failed: test failed")
            case _:
                raise PatchError(f"unexpected json patch operation {kind!r}")
    return doc
