"""The maintenance windows' endpoints (``/windows``): a mixin of both clients."""

from __future__ import annotations

from typing import Any

from knm.client import models as m
from knm.client.calls import Call, Doer, body, nothing, one, paged, query


class WindowCalls(Doer):
    def windows(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.Window]:
        params = query(page=page, page_size=page_size)
        return self._do(Call("GET", "/windows", paged(m.Window, "windows"), params=params))

    def window(self, window_id: int) -> m.WindowDetail:
        """One window: open now or not, the opening it is in, and its next five openings."""
        return self._do(Call("GET", f"/windows/{window_id}", one(m.WindowDetail)))

    def create_window(
        self,
        name: str,
        cron: str,
        duration: int,
        *,
        timezone: str = "UTC",
        enabled: bool | None = None,
        description: str | None = None,
        clusters: list[str] | None = None,
    ) -> m.WindowDetail:
        """A window (admin) opening at each ``cron`` time (five fields, read in ``timezone``)
        for ``duration`` seconds, required by ``clusters``."""
        payload = body(
            name=name,
            cron=cron,
            timezone=timezone,
            duration=duration,
            enabled=enabled,
            description=description,
            clusters=clusters,
        )
        return self._do(Call("POST", "/windows", one(m.WindowDetail), json=payload))

    def update_window(self, window_id: int, **fields: Any) -> m.WindowDetail:
        """Change what is given (admin); ``clusters`` replaces the list."""
        return self._do(Call("PUT", f"/windows/{window_id}", one(m.WindowDetail), json=fields))

    def delete_window(self, window_id: int) -> None:
        """Remove a window (admin); ``Conflict`` while a cluster requires it."""
        return self._do(Call("DELETE", f"/windows/{window_id}", nothing))

    def window_resumes(
        self, *, state: str | None = None, page: int = 1, page_size: int = 20
    ) -> m.Page[m.WindowResume]:
        """Rolls stopped at a window's end and their automatic resumes (``state``: pending,
        started, cancelled or failed)."""
        params = query(state=state, page=page, page_size=page_size)
        return self._do(
            Call("GET", "/windows/resumes", paged(m.WindowResume, "resumes"), params=params)
        )

    def cancel_window_resume(self, task_id: str) -> m.WindowResume:
        """The stopped roll ``task_id`` will not be resumed automatically (operator)."""
        path = f"/windows/resumes/{task_id}/cancel"
        return self._do(Call("POST", path, one(m.WindowResume)))
