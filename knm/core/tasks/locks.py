"""Per-node locks of disruptive work, and the ``max_unavailable`` bound, in PostgreSQL.

Any disruptive action or step takes them: the k8s plugin's cordon and drain, and every step of a
step type declaring ``disruptive = True`` (the workflow engine takes them for its batch). The
table keeps the name its first migration gave it (``k8s_node_locks``).

A lock is keyed by (cluster, node) and held by a root task id (a workflow's id for its steps,
else the task's own). Taking one runs under a per-cluster advisory lock, so the count of nodes
knm has out of service (locked now, or left cordoned by knm) cannot be raced by another worker.
Locks whose holder is no longer pending or running are deleted whenever locks are taken: a
worker that died leaves no lock behind once the engine has reaped its task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

_ACTIVE = "('pending', 'running')"
_REAP = (
    "DELETE FROM k8s_node_locks l WHERE NOT EXISTS "
    f"(SELECT 1 FROM tasks t WHERE t.task_id = l.holder AND t.status IN {_ACTIVE})"
)


class Refusal(msgspec.Struct, kw_only=True):
    """Why a lock was not given: ``reason`` is ``locked`` or ``max_unavailable``."""

    reason: str
    message: str


async def _cluster_lock(conn: Any, cluster: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('knm.k8s.locks'), hashtext($1))", cluster
    )


async def acquire(
    pool: Any,
    *,
    cluster: str,
    node: str,
    holder: str,
    task_id: str,
    max_unavailable: int | None,
    cordoned_by_knm: Callable[[], Awaitable[set[str]]] | None = None,
) -> Refusal | None:
    """Take the node's lock for ``holder`` (again, if it has it already); None when taken.

    ``max_unavailable`` None: the cluster sets no budget, only one holder per node.
    ``cordoned_by_knm`` lists the cluster's nodes knm keeps cordoned; it is read under the
    cluster's advisory lock, so a cordon that just finished elsewhere is seen."""
    async with pool.acquire() as conn, conn.transaction():
        await _cluster_lock(conn, cluster)
        await conn.execute(_REAP)
        rows = await conn.fetch(
            "SELECT node, holder FROM k8s_node_locks WHERE cluster_name = $1", cluster
        )
        held = {row["node"]: row["holder"] for row in rows}
        if held.get(node) == holder:
            return None
        refusal = await _refusal(cluster, node, held, max_unavailable, cordoned_by_knm)
        if refusal is not None:
            return refusal
        await conn.execute(
            "INSERT INTO k8s_node_locks (cluster_name, node, holder, task_id) "
            "VALUES ($1, $2, $3, $4)",
            cluster,
            node,
            holder,
            task_id,
        )
        return None


async def _refusal(
    cluster: str,
    node: str,
    held: dict[str, str],
    max_unavailable: int | None,
    cordoned_by_knm: Callable[[], Awaitable[set[str]]] | None,
) -> Refusal | None:
    """Why ``node``'s lock cannot be given now, with ``held`` the cluster's locks (node → holder)
    other than the asker's own."""
    current = held.get(node)
    if current is not None:
        return Refusal(reason="locked", message=f"node {node} is locked by task {current}")
    cordoned = await cordoned_by_knm() if cordoned_by_knm is not None else set()
    busy = (set(held) | cordoned) - {node}
    if max_unavailable is not None and len(busy) >= max_unavailable:
        return Refusal(
            reason="max_unavailable",
            message=(
                f"cluster {cluster} allows {max_unavailable} node(s) out of service at "
                f"once (max_unavailable) and knm already has: {', '.join(sorted(busy))}"
            ),
        )
    return None


async def check(
    pool: Any,
    *,
    cluster: str,
    node: str,
    holder: str,
    max_unavailable: int | None,
    cordoned_by_knm: Callable[[], Awaitable[set[str]]] | None = None,
) -> Refusal | None:
    """What :func:`acquire` would answer now, taking nothing (a dry run asks it)."""
    rows = await pool.fetch(
        "SELECT l.node, l.holder FROM k8s_node_locks l JOIN tasks t ON t.task_id = l.holder "
        f"WHERE l.cluster_name = $1 AND t.status IN {_ACTIVE}",
        cluster,
    )
    held = {row["node"]: row["holder"] for row in rows}
    if held.get(node) == holder:
        return None
    return await _refusal(cluster, node, held, max_unavailable, cordoned_by_knm)


class HeldLock(msgspec.Struct, kw_only=True):
    """A lock as ``GET /locks`` shows it: the node, the task holding it (the root task: a
    workflow for its steps) with its kind and user, and the task that took it."""

    cluster_name: str
    node: str
    holder: str
    task_id: str
    kind: str
    username: str | None
    acquired_at: datetime


async def held(
    pool: Any, cluster: str | None, limit: int, offset: int
) -> tuple[int, list[HeldLock]]:
    """Locks of active holders, by cluster and node; their number and one page of them."""
    where = f"t.status IN {_ACTIVE} AND ($1::text IS NULL OR l.cluster_name = $1)"
    join = "FROM k8s_node_locks l JOIN tasks t ON t.task_id = l.holder"
    total = await pool.fetchval(f"SELECT count(*) {join} WHERE {where}", cluster)
    rows = await pool.fetch(
        "SELECT l.cluster_name, l.node, l.holder, l.task_id, l.acquired_at, t.kind, t.username "
        f"{join} WHERE {where} ORDER BY l.cluster_name, l.node LIMIT $2 OFFSET $3",
        cluster,
        limit,
        offset,
    )
    return total, [HeldLock(**dict(row)) for row in rows]


async def holder_of(pool: Any, cluster: str, node: str) -> str | None:
    """The active task holding the node's lock, if any."""
    return await pool.fetchval(
        "SELECT l.holder FROM k8s_node_locks l JOIN tasks t ON t.task_id = l.holder "
        f"WHERE l.cluster_name = $1 AND l.node = $2 AND t.status IN {_ACTIVE}",
        cluster,
        node,
    )


async def release(pool: Any, cluster: str, node: str, holder: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _cluster_lock(conn, cluster)
        await conn.execute(
            "DELETE FROM k8s_node_locks WHERE cluster_name = $1 AND node = $2 AND holder = $3",
            cluster,
            node,
            holder,
        )


async def release_all(pool: Any, holder: str) -> None:
    """Every lock ``holder`` has (called when the holder task ends)."""
    clusters = await pool.fetch(
        "SELECT DISTINCT cluster_name FROM k8s_node_locks WHERE holder = $1", holder
    )
    for row in clusters:
        async with pool.acquire() as conn, conn.transaction():
            await _cluster_lock(conn, row["cluster_name"])
            await conn.execute(
                "DELETE FROM k8s_node_locks WHERE cluster_name = $1 AND holder = $2",
                row["cluster_name"],
                holder,
            )


async def reap(pool: Any) -> int:
    """Delete locks whose holder task is finished; how many."""
    status = await pool.execute(_REAP)
    return int(status.split()[-1])


async def acquire_nodes(
    pool: Any,
    *,
    cluster: str,
    nodes: list[str],
    holder: str,
    task_id: str,
    max_unavailable: int | None,
) -> Refusal | None:
    """Take every node's lock for ``holder``, in order; the first refusal, or None. Locks
    taken before a refusal stay with ``holder`` until it releases them."""
    for node in nodes:
        refusal = await acquire(
            pool, cluster=cluster, node=node, holder=holder, task_id=task_id,
            max_unavailable=max_unavailable,
        )  # fmt: skip
        if refusal is not None:
            return refusal
    return None


def budget_of(cluster: Any) -> int | None:
    """The cluster's ``max_unavailable``, when its kind has one (kubernetes clusters do)."""
    value = getattr(getattr(cluster, "config", None), "max_unavailable", None)
    return value if isinstance(value, int) else None
