"""Maintenance windows as the API shows them: a window (cron in a time zone, each opening
``duration`` seconds long, the clusters that require it), its openings, and the automatic
resumes of rolls stopped at a window's end."""

from __future__ import annotations

from datetime import datetime

import msgspec

from knm.wire.base import page_of


class Opening(msgspec.Struct, frozen=True):
    """One opening of a window: ``start`` (a fire time) and ``end``, both UTC."""

    start: datetime
    end: datetime


class Window(msgspec.Struct, kw_only=True):
    id: int
    name: str
    #: Five fields, read in ``timezone``.
    cron: str
    timezone: str
    #: Seconds each opening lasts.
    duration: int
    enabled: bool
    description: str
    #: Names of the clusters that require this window.
    clusters: list[str] = msgspec.field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WindowDetail(Window, kw_only=True):
    """A window with what it will do: whether it is open now, the opening it is in, and its
    next openings (RFC 3339 UTC; none while it is disabled)."""

    open_now: bool
    current: Opening | None
    next_openings: list[Opening]


class Resume(msgspec.Struct, kw_only=True):
    """A stopped roll's automatic resume: ``pending`` until ``due_at``, then ``started`` (its
    task: ``resume_task_id``), or ``cancelled`` by an operator, or ``failed`` (``error``)."""

    task_id: str
    windows: list[str]
    due_at: datetime
    state: str
    resume_task_id: str | None
    error: str | None
    cancelled_by: str | None
    created_at: datetime
    updated_at: datetime


WindowList = page_of("windows", Window)
ResumeList = page_of("resumes", Resume)
