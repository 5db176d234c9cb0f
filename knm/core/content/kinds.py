"""What a content kind is, and the shapes content takes inside knm (not on the wire)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from knm.wire.errors import ErrorDetail

#: Fields every kind has; a kind's body field and extras must not reuse these names.
BASE_FIELDS = frozenset(
    [
        "id",
        "kind",
        "name",
        "description",
        "category",
        "is_builtin",
        "is_active",
        "version",
        "tags",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
    ]
)


class ContentDraft(msgspec.Struct, kw_only=True):
    """The values about to be saved: what a kind's ``validate`` callable judges.

    ``id`` is None while creating. ``extras`` is an instance of the kind's extras struct (None
    for kinds without extras); ``body`` is of the kind's ``body_type``.
    """

    kind: str
    id: int | None
    name: str
    description: str
    body: Any
    category: str
    tags: list[str]
    is_active: bool
    extras: Any


class ContentItem(msgspec.Struct, kw_only=True):
    """A stored item, as executors and routes use it. ``body`` is None when a list left it out."""

    id: int
    kind: str
    name: str
    description: str
    body: Any
    category: str
    is_builtin: bool
    is_active: bool
    version: int
    tags: list[str]
    extras: Any
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    updated_by: str | None = None


#: A validator's findings: sentences, or ``ErrorDetail``s that also say where (the field, and
#: the line and column inside its text) so an editor can show them at their place.
Problems = list["str | ErrorDetail"]
Validator = Callable[[Any, ContentDraft], "Problems | Awaitable[Problems]"]


@functools.cache
def _field_names(struct_type: type[msgspec.Struct]) -> tuple[str, ...]:
    # msgspec.structs.fields resolves annotations on every call (~100 µs); asked per request.
    return tuple(f.name for f in msgspec.structs.fields(struct_type))


class ContentKind(msgspec.Struct, frozen=True, kw_only=True):
    """A kind of stored, versioned content, declared by a plugin through ``knm_content_kinds``.

    - ``kind``: the stored name (``playbook``); ``plural``: the list key (``playbooks``);
      ``route``: where the routes go (``/automation/ansible/playbooks``); ``label``: the word in
      messages ("Playbook ID 999 not found") and in the OpenAPI struct names.
    - ``body_field`` / ``body_type``: the versioned body's wire name and type (``content: str``,
      or ``definition: SomeStruct``).
    - ``list_includes_body``: False to leave the body out of lists (scripts).
    - ``extras``: a Struct of the kind's own fields, each with a default (a script's
      ``language`` and ``parameters``); ``versioned`` names those whose change makes a new
      version like the body does; ``filters`` names those usable as list query filters (their
      type must be a ``str`` or a ``Literal`` of strings).
    - ``summary_type`` / ``summary``: fields computed for list items (``step_count``): a Struct,
      and a callable building it from the ``ContentItem`` (body included).
    - ``validate``: ``(knm, draft) -> list[str | ErrorDetail]`` (or a coroutine), the value
      rules; every problem is reported together in one 422, each also in ``details`` (a plain
      sentence is placed in the field it starts with, else in the body field).
    - ``max_body_bytes``: a larger body (UTF-8 or JSON-encoded) is refused with 413.
    - ``feature``: a feature switch kind (``ansible``); while it is off the routes answer 403.
    """

    kind: str
    plural: str
    route: str
    label: str
    body_field: str = "content"
    body_type: Any = str
    list_includes_body: bool = True
    extras: type[msgspec.Struct] | None = None
    versioned: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    summary_type: type[msgspec.Struct] | None = None
    summary: Callable[[ContentItem], msgspec.Struct] | None = None
    validate: Validator | None = None
    max_body_bytes: int | None = None
    feature: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.kind):
            raise ValueError(f"content kind {self.kind!r}: use lowercase letters, digits and _")
        if not self.route.startswith("/") or self.route.endswith("/"):
            raise ValueError(f"content kind {self.kind}: route must start and not end with /")
        own = [self.body_field, *self.extra_fields, *self.summary_fields]
        clashes = sorted({name for name in own if name in BASE_FIELDS or own.count(name) > 1})
        if clashes:
            raise ValueError(f"content kind {self.kind}: field names clash: {', '.join(clashes)}")
        for name in (*self.versioned, *self.filters):
            if name not in self.extra_fields:
                raise ValueError(f"content kind {self.kind}: {name!r} is not an extras field")
        if (self.summary is None) != (self.summary_type is None):
            raise ValueError(f"content kind {self.kind}: give both summary and summary_type")

    @property
    def extra_fields(self) -> tuple[str, ...]:
        if self.extras is None:
            return ()
        return _field_names(self.extras)

    @property
    def summary_fields(self) -> tuple[str, ...]:
        if self.summary_type is None:
            return ()
        return _field_names(self.summary_type)

    @property
    def type_prefix(self) -> str:
        """The label as an identifier, for the names of the kind's wire structs."""
        return re.sub(r"\W", "", self.label.title()) or self.kind.title()

    def not_found(self, item_id: int) -> str:
        return f"{self.label} ID {item_id} not found"

    def body_size(self, body: Any) -> int:
        if isinstance(body, str):
            return len(body.encode("utf-8", "surrogatepass"))
        return len(msgspec.json.encode(body))

    def decode_extras(self, stored: dict[str, Any] | None) -> Any:
        if self.extras is None:
            return None
        # Keys of fields since removed from the struct are dropped rather than failing the read.
        known = set(self.extra_fields)
        values = {k: v for k, v in (stored or {}).items() if k in known}
        return msgspec.convert(values, self.extras)


class BuiltinContent(msgspec.Struct, kw_only=True):
    """An item a plugin ships (``knm_builtin_content``), upserted by ``(kind, name)`` at startup.

    ``body`` is the kind's body (a string, or a Struct or dict of its ``body_type``); ``extras``
    an instance (or dict) of the kind's extras struct.
    """

    kind: str
    name: str
    body: Any
    description: str = ""
    category: str = "general"
    tags: list[str] = msgspec.field(default_factory=list)
    extras: Any = None
    is_active: bool = True
