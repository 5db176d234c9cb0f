"""The ``maintenance_windows`` and ``cluster_windows`` tables."""

from __future__ import annotations

from typing import Any

import asyncpg

from knm.core.errors import Conflict, Invalid, NotFound
from knm.core.windows.cron import Schedule
from knm.wire import windows as wire

_COLUMNS = "id, name, cron, timezone, duration, enabled, description, created_at, updated_at"


class Window(wire.Window, kw_only=True):
    """A stored window, with its timing for the checks."""

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.cron, self.timezone, self.duration)


def not_found(ref: int | str) -> NotFound:
    if isinstance(ref, int):
        return NotFound(f"Maintenance window ID {ref} not found")
    return NotFound(f"Maintenance window {ref!r} not found")


async def _clusters_of(conn: Any, ids: list[int]) -> dict[int, list[str]]:
    rows = await conn.fetch(
        """SELECT cw.window_id, c.name FROM cluster_windows cw JOIN clusters c ON c.id = cw.cluster_id
           WHERE cw.window_id = ANY($1::bigint[]) ORDER BY c.name""",
        ids,
    )
    found: dict[int, list[str]] = {}
    for row in rows:
        found.setdefault(row["window_id"], []).append(row["name"])
    return found


async def _windows(conn: Any, records: list[asyncpg.Record]) -> list[Window]:
    clusters = await _clusters_of(conn, [r["id"] for r in records])
    return [Window(**dict(r), clusters=clusters.get(r["id"], [])) for r in records]


async def list_windows(conn: Any, limit: int, offset: int) -> tuple[int, list[Window]]:
    total = await conn.fetchval("SELECT count(*) FROM maintenance_windows")
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM maintenance_windows ORDER BY id LIMIT $1 OFFSET $2", limit, offset
    )
    return total, await _windows(conn, rows)


async def get(conn: Any, window_id: int, *, lock: bool = False) -> Window:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM maintenance_windows WHERE id = $1"
        + (" FOR UPDATE" if lock else ""),
        window_id,
    )
    if row is None:
        raise not_found(window_id)
    return (await _windows(conn, [row]))[0]


async def by_names(conn: Any, names: list[str]) -> list[Window]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM maintenance_windows WHERE name = ANY($1::text[]) ORDER BY name",
        names,
    )
    return [Window(**dict(r)) for r in rows]


async def of_cluster(conn: Any, cluster_name: str) -> Window | None:
    """The window the cluster requires, if any."""
    row = await conn.fetchrow(
        f"""SELECT {", ".join("w." + c.strip() for c in _COLUMNS.split(","))}
            FROM clusters c JOIN cluster_windows cw ON cw.cluster_id = c.id
            JOIN maintenance_windows w ON w.id = cw.window_id WHERE c.name = $1""",
        cluster_name,
    )
    return None if row is None else Window(**dict(row))


async def name_taken(conn: Any, name: str, but: int | None = None) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM maintenance_windows WHERE name = $1 AND id IS DISTINCT FROM $2",
            name,
            but,
        )
    )


async def insert(conn: Any, window: Window) -> int:
    try:
        return await conn.fetchval(
            """INSERT INTO maintenance_windows (name, cron, timezone, duration, enabled, description)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            window.name,
            window.cron,
            window.timezone,
            window.duration,
            window.enabled,
            window.description,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"maintenance window {window.name!r} already exists") from None


async def update(conn: Any, window: Window) -> None:
    try:
        await conn.execute(
            """UPDATE maintenance_windows SET name = $2, cron = $3, timezone = $4, duration = $5,
                      enabled = $6, description = $7, updated_at = now()
               WHERE id = $1""",
            window.id,
            window.name,
            window.cron,
            window.timezone,
            window.duration,
            window.enabled,
            window.description,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"maintenance window {window.name!r} already exists") from None


async def set_clusters(conn: Any, window_id: int, names: list[str]) -> None:
    """The clusters that require this window become exactly ``names``: each must exist (422
    naming the unknown ones) and require no other window (409 naming it)."""
    rows = await conn.fetch(
        """SELECT c.id, c.name, cw.window_id, w.name AS window_name
           FROM clusters c LEFT JOIN cluster_windows cw ON cw.cluster_id = c.id
           LEFT JOIN maintenance_windows w ON w.id = cw.window_id
           WHERE c.name = ANY($1::text[])""",
        names,
    )
    found = {r["name"]: r for r in rows}
    if missing := [n for n in names if n not in found]:
        raise Invalid(f"clusters: no cluster named {', '.join(sorted(set(missing)))}")
    for name in names:
        other = found[name]["window_id"]
        if other is not None and other != window_id:
            raise Conflict(
                f"cluster {name} already requires maintenance window "
                f"{found[name]['window_name']!r}; remove it there first"
            )
    await conn.execute("DELETE FROM cluster_windows WHERE window_id = $1", window_id)
    await conn.executemany(
        "INSERT INTO cluster_windows (cluster_id, window_id) VALUES ($1, $2)",
        [(found[name]["id"], window_id) for name in dict.fromkeys(names)],
    )


async def delete(conn: Any, window_id: int) -> str:
    """Removes the window; 409 while a cluster requires it."""
    window = await get(conn, window_id, lock=True)
    if window.clusters:
        raise Conflict(
            f"maintenance window {window.name!r} is required by clusters "
            f"{', '.join(window.clusters)}; remove them from it first"
        )
    await conn.execute("DELETE FROM maintenance_windows WHERE id = $1", window_id)
    return window.name
