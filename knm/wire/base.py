"""What every wire struct shares: fields beyond the declared ones, and the one page type.

An executor (or a cluster provider) adds fields of its own to an answer, at the top level
(``command``, ``playbook_name``; Ansible's per-node ``ok``/``changed``). In Python they live
in the struct's ``extra``; on the wire they sit beside the declared fields. ``to_wire`` and
``from_wire`` convert, so a newer server's fields reach an older client instead of vanishing.
"""

from __future__ import annotations

import functools
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)


class Open(msgspec.Struct, kw_only=True):
    """A struct whose undeclared wire fields are kept in ``extra``."""

    extra: dict[str, Any] = {}

    def extend(self, fields: dict[str, Any]) -> None:
        """Set ``fields``: declared ones as attributes, the rest into ``extra``."""
        known = encode_names(type(self))
        for key, value in fields.items():
            if key in known and key != "extra":
                setattr(self, key, value)
            else:
                if not self.extra:
                    self.extra = {}
                self.extra[key] = value


@functools.cache
def encode_names(type_: Any) -> frozenset[str]:
    # msgspec.structs.fields resolves annotations on every call; this runs per decoded item.
    return frozenset(f.encode_name for f in msgspec.structs.fields(type_))


def flatten(data: dict[str, Any]) -> dict[str, Any]:
    """A built ``Open`` struct (``msgspec.to_builtins``) as sent: ``extra`` beside the rest."""
    extra = data.pop("extra", None)
    if extra:
        for key, value in extra.items():
            data.setdefault(key, value)
    return data


def split_extra(data: dict[str, Any], type_: type[S]) -> S:
    """``data`` as ``type_``, the keys it does not declare gathered into its ``extra``."""
    known = encode_names(type_)
    own = {k: v for k, v in data.items() if k in known and k != "extra"}
    own["extra"] = {k: v for k, v in data.items() if k not in known}
    return msgspec.convert(own, type_)


class Page(msgspec.Struct, Generic[T]):
    """One page of a list: ``total`` across every page, and this page's ``items``. On the wire
    ``items`` is named by the list's plural noun (``executions``, ``users``): ``page_of``."""

    total: int
    items: list[T]


@functools.cache
def page_of(noun: str, item_type: Any) -> type[Page[Any]]:
    """The ``Page`` of ``item_type`` whose items are sent as ``noun``."""
    return msgspec.defstruct(
        f"{noun.title()}Page",
        [("items", list[item_type])],
        bases=(Page,),
        rename={"items": noun},
    )
