"""SQL of the ``tasks`` and ``task_nodes`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
import msgspec

from knm.core.clusters.provider import Node
from knm.core.crypto import EncryptedColumn, Sealed, register_encrypted_column
from knm.core.tasks import counts
from knm.core.tasks.schemas import HistoryItem, NodeOut, NodeResult, TaskRow
from knm.wire import TERMINAL

_TASK_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(TaskRow))
SECRETS = register_encrypted_column(
    EncryptedColumn(table="tasks", purpose="task-secrets", id_column="task_id")
)


def _row(record: asyncpg.Record) -> TaskRow:
    return TaskRow(**dict(record))


_INSERT_TASK = """INSERT INTO tasks (task_id, kind, cluster_name, target_nodes, request, summary,
        credential_id, user_id, username, parent_task_id, rerun_of, idempotency_key,
        timeout, deadline_at, key_id, nonce, ciphertext)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
            CASE WHEN $14::int IS NULL THEN NULL ELSE now() + make_interval(secs => $14) END,
            $15, $16, $17)"""

_INSERT_NODES = """INSERT INTO task_nodes (task_id, node, position, address, port, data)
    SELECT $1, n.name, n.position - 1, n.address, n.port, jsonb_build_object('labels', n.labels)
    FROM unnest($2::text[], $3::text[], $4::int[], $5::jsonb[])
         WITH ORDINALITY AS n(name, address, port, labels, position)"""


class NewTask(msgspec.Struct, kw_only=True):
    """A task to insert, pending."""

    task_id: str
    kind: str
    cluster_name: str
    nodes: Sequence[Node]
    request: dict[str, Any]
    summary: dict[str, Any]
    credential_id: int | None
    user_id: int | None
    username: str | None
    parent_task_id: str | None = None
    rerun_of: str | None = None
    idempotency_key: str | None = None
    timeout: int | None = None
    deadline: int | None = None
    sealed: Sealed | None = None

    def task_args(self) -> tuple[Any, ...]:
        sealed = self.sealed
        return (
            *(self.task_id, self.kind, self.cluster_name, [node.name for node in self.nodes]),
            *(self.request, self.summary, self.credential_id, self.user_id, self.username),
            *(self.parent_task_id, self.rerun_of, self.idempotency_key, self.timeout),
            self.deadline,
            *((sealed.key_id, sealed.nonce, sealed.ciphertext) if sealed else (None,) * 3),
        )

    def node_args(self) -> tuple[Any, ...]:
        return (
            self.task_id,
            [n.name for n in self.nodes],
            [n.address for n in self.nodes],
            [n.port for n in self.nodes],
            [n.labels for n in self.nodes],
        )


async def insert_task(conn: asyncpg.Connection, **fields: Any) -> TaskRow:
    """Insert one task (``NewTask``'s fields); the row as stored."""
    task = NewTask(**fields)
    record = await conn.fetchrow(f"{_INSERT_TASK} RETURNING {_TASK_COLUMNS}", *task.task_args())
    await conn.execute(_INSERT_NODES, *task.node_args())
    return _row(record)


async def insert_tasks(conn: asyncpg.Connection, tasks: Sequence[NewTask]) -> None:
    """Insert several tasks, a pipelined round trip for their rows and one for their nodes
    (a batch of schedule fires)."""
    await conn.executemany(_INSERT_TASK, [task.task_args() for task in tasks])
    await conn.executemany(_INSERT_NODES, [task.node_args() for task in tasks])


async def get_task(conn: asyncpg.Connection | asyncpg.Pool, task_id: str) -> TaskRow | None:
    record = await conn.fetchrow(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = $1", task_id)
    return None if record is None else _row(record)


async def sealed_secrets(conn: asyncpg.Connection | asyncpg.Pool, task_id: str) -> Sealed | None:
    record = await conn.fetchrow(
        "SELECT key_id, nonce, ciphertext FROM tasks WHERE task_id = $1 AND ciphertext IS NOT NULL",
        task_id,
    )
    return None if record is None else Sealed(**dict(record))


async def by_idempotency_key(
    conn: asyncpg.Connection, user_id: int, kind: str, key: str
) -> TaskRow | None:
    record = await conn.fetchrow(
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE user_id = $1 AND kind = $2 AND idempotency_key = $3",
        user_id,
        kind,
        key,
    )
    return None if record is None else _row(record)


async def claim(
    conn: asyncpg.Connection,
    *,
    worker_id: str,
    lease: float,
    limits: dict[str, int],
    task_id: str | None = None,
    max_claims: int = 20,
    task_ids: Sequence[str] | None = None,
) -> list[TaskRow]:
    """Move pending tasks this worker may run to ``running``, oldest first, within each kind's
    ``max_tasks`` across all workers; with ``task_id`` or ``task_ids``, only those."""
    if task_id is not None:
        task_ids = [*(task_ids or ()), task_id]
    claimed: list[TaskRow] = []
    async with conn.transaction():
        # Serialises claims so two workers cannot both take the last free slot of a kind.
        await conn.execute("SELECT pg_advisory_xact_lock(7005001)")
        running = {
            r["kind"]: r["n"]
            for r in await conn.fetch(
                "SELECT kind, count(*) AS n FROM tasks WHERE status = 'running' GROUP BY kind"
            )
        }
        for kind, limit in limits.items():
            free = min(limit - running.get(kind, 0), max_claims - len(claimed))
            if free <= 0:
                continue
            records = await conn.fetch(
                f"""UPDATE tasks SET status = 'running', worker_id = $1,
                           lease_until = now() + make_interval(secs => $2),
                           start_time = coalesce(start_time, now())
                    WHERE id IN (
                        SELECT id FROM tasks
                        WHERE status = 'pending' AND kind = $3 AND NOT cancel_requested
                          AND ($5::text[] IS NULL OR task_id = ANY($5::text[]))
                        ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
                    RETURNING {_TASK_COLUMNS}""",
                worker_id,
                lease,
                kind,
                free,
                None if task_ids is None else list(task_ids),
            )
            claimed.extend(_row(r) for r in records)
    claimed.sort(key=lambda t: t.id)
    return claimed


async def renew(
    conn: asyncpg.Connection, worker_id: str, lease: float, task_ids: Sequence[str]
) -> dict[str, bool]:
    """Extend this worker's leases; returns task id → cancel requested."""
    records = await conn.fetch(
        """UPDATE tasks SET lease_until = now() + make_interval(secs => $2)
           WHERE worker_id = $1 AND status = 'running' AND task_id = ANY($3)
           RETURNING task_id, cancel_requested""",
        worker_id,
        lease,
        list(task_ids),
    )
    return {r["task_id"]: r["cancel_requested"] for r in records}


async def expired(conn: asyncpg.Connection, limit: int = 50) -> list[TaskRow]:
    records = await conn.fetch(
        f"""SELECT {_TASK_COLUMNS} FROM tasks
            WHERE status = 'running' AND lease_until < now()
            ORDER BY lease_until LIMIT $1""",
        limit,
    )
    return [_row(r) for r in records]


async def take_over(
    conn: asyncpg.Connection, task_id: str, old_worker: str | None, worker_id: str, lease: float
) -> TaskRow | None:
    """Take an expired lease; None when another worker was quicker."""
    record = await conn.fetchrow(
        f"""UPDATE tasks SET worker_id = $3, lease_until = now() + make_interval(secs => $4)
            WHERE task_id = $1 AND status = 'running' AND lease_until < now()
              AND worker_id IS NOT DISTINCT FROM $2
            RETURNING {_TASK_COLUMNS}""",
        task_id,
        old_worker,
        worker_id,
        lease,
    )
    return None if record is None else _row(record)


class NodeEnd(msgspec.Struct, frozen=True):
    """One node's end as ``write_nodes`` stores it."""

    node: str
    result: NodeResult
    #: Per stream: (bytes stored, truncated).
    output: dict[str, tuple[int, bool]]


#: Whether the task is one this batch may write to: any task without a worker to fence by,
#: else only while it runs on that worker (locked against a takeover until the batch commits).
_HELD_ANY = "SELECT 1 FROM tasks WHERE task_id = $1 AND $2::text IS NULL"
_HELD_BY_WORKER = """SELECT 1 FROM tasks WHERE task_id = $1 AND worker_id = $2 AND status = 'running'
                     FOR SHARE"""

#: Starts, output chunks and ends in one statement: one round trip instead of seven (BEGIN, the
#: fence, the starts, the COPY's three messages, the ends, COMMIT), each of which waits a turn of
#: an event loop busy with hundreds of handshakes. A node started and ended in the same batch is
#: only ended (the end sets its start time): one statement may not update a row twice.
_WRITE_NODES = """
WITH held AS ({held}),
started AS (
    UPDATE task_nodes SET status = 'running', start_time = coalesce(start_time, now())
    WHERE task_id = $1 AND node = ANY($3::text[]) AND NOT node = ANY($8::text[])
      AND status = 'pending' AND EXISTS (SELECT FROM held)
),
chunks AS (
    INSERT INTO task_output (task_id, node, stream, seq, data)
    SELECT $1, c.node, c.stream, c.seq, c.data
    FROM unnest($4::text[], $5::text[], $6::int[], $7::text[]) AS c(node, stream, seq, data)
    WHERE EXISTS (SELECT FROM held)
)
UPDATE task_nodes AS t SET status = e.status, reason = e.reason,
       message = e.message, exit_code = e.exit_code, data = e.data,
       stdout_bytes = e.stdout_bytes, stdout_truncated = e.stdout_truncated,
       stderr_bytes = e.stderr_bytes, stderr_truncated = e.stderr_truncated,
       start_time = coalesce(t.start_time, now()), end_time = now()
FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::int[],
            $13::jsonb[], $14::bigint[], $15::bool[], $16::bigint[], $17::bool[])
     AS e(node, status, reason, message, exit_code, data, stdout_bytes,
          stdout_truncated, stderr_bytes, stderr_truncated)
WHERE t.task_id = $1 AND t.node = e.node AND t.status IN ('pending', 'running')
  AND EXISTS (SELECT FROM held)
RETURNING t.node
"""
_WRITE_NODES_ANY = _WRITE_NODES.format(held=_HELD_ANY)
_WRITE_NODES_FENCED = _WRITE_NODES.format(held=_HELD_BY_WORKER)


async def write_nodes(
    conn: asyncpg.Connection,
    task_id: str,
    *,
    started: Sequence[str] = (),
    chunks: Sequence[tuple[str, str, str, int, str]] = (),
    ended: Sequence[NodeEnd] = (),
    worker_id: str | None = None,
) -> set[str]:
    """Many nodes' starts, output chunks (``(task_id, node, stream, seq, text)``, of this task)
    and ends in one statement (the task context's group commit); returns the nodes whose end
    was recorded now (not ended before).

    Only a pending node starts and a node ends once; one started and ended within the same
    batch ends with its start time set. With ``worker_id``, nothing is written unless the task
    is running on that worker (a worker that lost its lease must not write over what the new
    owner records)."""
    empty = (0, False)
    records = await conn.fetch(
        _WRITE_NODES_ANY if worker_id is None else _WRITE_NODES_FENCED,
        task_id,
        worker_id,
        list(started),
        [c[1] for c in chunks],
        [c[2] for c in chunks],
        [c[3] for c in chunks],
        [c[4] for c in chunks],
        [e.node for e in ended],
        [e.result.status for e in ended],
        [e.result.reason for e in ended],
        [e.result.message for e in ended],
        [e.result.exit_code for e in ended],
        [e.result.data for e in ended],
        [e.output.get("stdout", empty)[0] for e in ended],
        [e.output.get("stdout", empty)[1] for e in ended],
        [e.output.get("stderr", empty)[0] for e in ended],
        [e.output.get("stderr", empty)[1] for e in ended],
    )
    return {r["node"] for r in records}


async def finish(
    conn: asyncpg.Connection,
    task_id: str,
    *,
    cancelled: bool = False,
    open_reason: str = "cancelled",
    open_message: str = "",
    error: str | None = None,
    message: str = "",
    result: dict[str, Any] | None = None,
    worker_id: str | None = None,
    expired: bool = False,
) -> TaskRow | None:
    """Write the terminal state: unfinished nodes fail with ``open_reason``; the task is
    ``cancelled``, else ``completed`` when every node succeeded, else ``failed``. None when the
    task had already finished, is no longer ``worker_id``'s (another worker took it over), or,
    with ``expired``, its lease was renewed since the caller saw it run out."""
    async with conn.transaction():
        current = await conn.fetchrow(
            """SELECT status, worker_id, coalesce(lease_until < now(), true) AS expired
               FROM tasks WHERE task_id = $1 FOR UPDATE""",
            task_id,
        )
        if current is None or current["status"] in TERMINAL:
            return None
        if worker_id is not None and current["worker_id"] != worker_id:
            return None
        if expired and not current["expired"]:
            return None
        await conn.execute(
            """UPDATE task_nodes SET status = 'failed', reason = $2, message = $3,
                      end_time = now()
               WHERE task_id = $1 AND status IN ('pending', 'running')""",
            task_id,
            open_reason,
            open_message or open_reason.replace("_", " "),
        )
        # A node an executor failed as ``tolerated`` (a workflow skipping a node cordoned by
        # hand) still counts as failed, but does not by itself make the task ``failed``.
        counts = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE status = 'success') AS ok,
                      count(*) FILTER (WHERE status = 'failed') AS bad,
                      count(*) FILTER (WHERE status = 'failed'
                                       AND coalesce(data->>'tolerated', '') <> 'true') AS blocking
               FROM task_nodes WHERE task_id = $1""",
            task_id,
        )
        if cancelled:
            status = "cancelled"
        elif error is not None or counts["blocking"] > 0:
            status = "failed"
        else:
            status = "completed"
        record = await conn.fetchrow(
            f"""UPDATE tasks SET status = $2, success_count = $3, failed_count = $4,
                       error = $5, message = $6, progress = 100, end_time = now(),
                       start_time = coalesce(start_time, now()), lease_until = NULL,
                       result = CASE WHEN $7::jsonb IS NULL THEN result ELSE $7::jsonb END
                WHERE task_id = $1 RETURNING {_TASK_COLUMNS}""",
            task_id,
            status,
            counts["ok"],
            counts["bad"],
            error,
            message or status,
            result,
        )
        return _row(record)


async def request_cancel(conn: asyncpg.Connection, task_id: str, reason: str) -> TaskRow | None:
    record = await conn.fetchrow(
        f"""UPDATE tasks SET cancel_requested = true, cancel_reason = $2
            WHERE task_id = $1 AND status IN ('pending', 'running')
            RETURNING {_TASK_COLUMNS}""",
        task_id,
        reason,
    )
    return None if record is None else _row(record)


async def set_result(
    conn: asyncpg.Connection | asyncpg.Pool,
    task_id: str,
    result: dict[str, Any],
    worker_id: str | None = None,
) -> bool:
    """Whether it was written: only to an open task and, with ``worker_id``, only while that
    worker holds it (a worker past its lease must not write over the new owner's result)."""
    status = await conn.execute(
        """UPDATE tasks SET result = $2
           WHERE task_id = $1 AND status IN ('pending', 'running')
             AND ($3::text IS NULL OR (worker_id = $3 AND status = 'running'))""",
        task_id,
        result,
        worker_id,
    )
    return status != "UPDATE 0"


async def nodes_of(conn: asyncpg.Connection | asyncpg.Pool, task_id: str) -> list[tuple[Node, str]]:
    """A stored task's nodes as its executor gets them (``TaskContext.nodes``: the provider's
    ``Node``, its port decided), in the task's order, each with its status."""
    records = await conn.fetch(
        """SELECT node, address, port, COALESCE(data->'labels', '{}') AS labels, status
           FROM task_nodes WHERE task_id = $1 ORDER BY position""",
        task_id,
    )
    return [
        (
            Node(name=r["node"], address=r["address"], port=r["port"], labels=r["labels"]),
            r["status"],
        )
        for r in records
    ]


async def node_states(conn: asyncpg.Connection | asyncpg.Pool, task_id: str) -> dict[str, str]:
    """Each node's status (``pending``, ``running``, ``success``, ``failed``), in task order."""
    records = await conn.fetch(
        "SELECT node, status FROM task_nodes WHERE task_id = $1 ORDER BY position", task_id
    )
    return {r["node"]: r["status"] for r in records}


async def open_children(conn: asyncpg.Connection | asyncpg.Pool, parent_task_id: str) -> list[str]:
    """The child tasks of ``parent_task_id`` that have not ended."""
    records = await conn.fetch(
        "SELECT task_id FROM tasks WHERE parent_task_id = $1 AND status IN ('pending', 'running')",
        parent_task_id,
    )
    return [r["task_id"] for r in records]


async def node_failures(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: str
) -> dict[str, tuple[str, str]]:
    """Each failed node's (reason, message), in task order (a workflow shows a step's own)."""
    records = await conn.fetch(
        """SELECT node, reason, message FROM task_nodes
           WHERE task_id = $1 AND status = 'failed' ORDER BY position""",
        task_id,
    )
    return {r["node"]: (r["reason"] or "failed", r["message"] or "") for r in records}


#: A finished node's columns, in the order ``result_of`` reads them; ``data`` less the engine's
#: own keys (``labels``) is the executor's per-node fields.
_RESULT_COLUMNS = (
    "n.node, n.status, n.reason, n.message, n.exit_code, n.address, n.start_time, n.end_time, "
    "n.stdout_truncated, n.stderr_truncated, n.data - 'labels'"
)


def result_of(row: Sequence[Any], output: dict[tuple[str, str], str] | None) -> NodeOut:
    """A status answer's ``results`` entry straight from the node's row; ``output`` holds the
    nodes' stored text when the executor's answers carry it (None: they do not)."""
    node, status, reason, message, exit_code, address, start, end, out_cut, err_cut, own = row
    result = NodeOut(
        node=node,
        status=status,
        reason=reason,
        message=message,
        exit_code=exit_code,
        address=address,
        start_time=start,
        end_time=end,
        duration=max(0, int((end - start).total_seconds())) if start and end else None,
        stdout_truncated=out_cut,
        stderr_truncated=err_cut,
    )
    if output is not None:
        result.stdout = output.get((node, "stdout"), "")
        result.stderr = output.get((node, "stderr"), "")
    if own:
        # An executor's own per-node fields (Ansible's ok/changed counts …) sit beside the rest.
        result.extra = own
    return result


class Snapshot(msgspec.Struct):
    """A task with its finished nodes' results (and their stored output when asked for), read
    in one statement."""

    task: TaskRow
    #: The contract's node status has two values: unfinished nodes appear once finished.
    results: list[NodeOut]
    #: The :data:`Version` read with them.
    version: tuple[str, int | None] = ("", None)


async def snapshot(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: str, *, with_output: bool
) -> Snapshot | None:
    # One round trip instead of three: a status poll is the API's most frequent request, and
    # each statement costs a pool acquire and a socket write in each direction.
    record = await conn.fetchrow(
        f"""SELECT {_TASK_COLUMNS},
              ARRAY(SELECT ROW({_RESULT_COLUMNS}) FROM task_nodes n
                    WHERE n.task_id = t.task_id AND n.status IN ('success', 'failed')
                    ORDER BY n.position) AS snapshot_nodes,
              ARRAY(SELECT ROW(o.node, o.stream, string_agg(o.data, '' ORDER BY o.seq))
                    FROM task_output o WHERE $2 AND o.task_id = t.task_id
                    GROUP BY o.node, o.stream) AS snapshot_output,
              t.xmin::text AS snapshot_xmin,
              (SELECT r.rev FROM task_revisions r WHERE r.task_id = t.task_id) AS snapshot_rev
            FROM tasks t WHERE t.task_id = $1""",
        task_id,
        with_output,
    )
    if record is None:
        return None
    values = dict(record)
    rows = values.pop("snapshot_nodes")
    texts = values.pop("snapshot_output")
    version = (values.pop("snapshot_xmin"), values.pop("snapshot_rev"))
    output = {(node, stream): text for node, stream, text in texts} if with_output else None
    return Snapshot(
        task=TaskRow(**values), results=[result_of(row, output) for row in rows], version=version
    )


#: What a status answer was read from, as of one snapshot: the task row's version (its xmin:
#: every update makes a new one) and its nodes' and output's revision (``task_revisions``).
Version = tuple[str, int | None]


async def version_of(conn: asyncpg.Connection | asyncpg.Pool, task_id: str) -> Version | None:
    """The task's :data:`Version` now (None: no such task) — two primary-key lookups, to tell
    whether an answer built from an earlier :func:`snapshot` still holds."""
    record = await conn.fetchrow(
        """SELECT t.xmin::text, r.rev FROM tasks t
           LEFT JOIN task_revisions r ON r.task_id = t.task_id WHERE t.task_id = $1""",
        task_id,
    )
    return None if record is None else (record[0], record[1])


async def versions_of(
    conn: asyncpg.Connection | asyncpg.Pool, task_ids: Sequence[str]
) -> dict[str, Version]:
    """:func:`version_of` for many tasks in one statement (a task not there is left out): the
    status polls of many clients, checked in one round trip (``status_cache.VersionChecks``)."""
    records = await conn.fetch(
        """SELECT t.task_id, t.xmin::text, r.rev FROM tasks t
           LEFT JOIN task_revisions r ON r.task_id = t.task_id WHERE t.task_id = ANY($1::text[])""",
        task_ids,
    )
    return {record[0]: (record[1], record[2]) for record in records}


class HistoryFilter(msgspec.Struct, kw_only=True):
    kind: str | None = None
    cluster_name: str | None = None
    status: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    include_children: bool = False
    parent_task_id: str | None = None

    def sql(self, *, not_child: str, since: str, until: str) -> tuple[str, list[Any]]:
        """This filter as a ``WHERE`` clause and its arguments, over a table that says a task
        is not a child with ``not_child`` and bounds days with ``since``/``until`` (``?`` for
        the date): ``tasks`` itself, or the per-day counts of ``counts``."""
        conditions: list[str] = []
        args: list[Any] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            conditions.append(sql.replace("?", f"${len(args)}"))

        if self.parent_task_id is not None:
            add("parent_task_id = ?", self.parent_task_id)
        elif not self.include_children:
            conditions.append(not_child)
        if self.kind:
            add("kind = ?", self.kind)
        if self.cluster_name:
            add("cluster_name = ?", self.cluster_name)
        if self.status:
            add("status = ?", self.status)
        if self.start_date:
            add(since, self.start_date)
        if self.end_date:
            add(until, self.end_date)
        return (f"WHERE {' AND '.join(conditions)}" if conditions else ""), args


#: A history row's timestamps as msgspec sends the whole-second UTC datetimes ``knm.core.db``
#: decodes them to, written by PostgreSQL: decoding three per row into datetimes was a tenth of
#: the route's CPU. Outside years 1–9999 (infinity, or what Python cannot hold) the text is
#: NULL and the timestamp itself comes too (:data:`_ODD_TIMES`), decoded and sent as before.
_IN_RANGE = "{0} >= '0001-01-01 00:00:00Z' AND {0} < '10000-01-01 00:00:00Z'"
_AS_SENT = """CASE WHEN {range} THEN to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
              END"""
_TIMES = {
    "start_time": "coalesce(start_time, created_at)",
    "end_time": "end_time",
    "created_at": "created_at",
}
#: What each field of a history row (``TaskSummary``) is read from.
_HISTORY_FIELDS = {
    **{name: _AS_SENT.format(sql, range=_IN_RANGE.format(sql)) for name, sql in _TIMES.items()},
    "duration": """CASE WHEN start_time IS NULL THEN NULL
                        ELSE extract(epoch FROM coalesce(end_time, now()) - start_time)::int
                   END""",
}
#: The fields in ``TaskSummary``'s order, the order they are sent in.
_HISTORY_NAMES = tuple(f.name for f in msgspec.structs.fields(HistoryItem) if f.name != "extra")
_ODD_TIMES = tuple(_TIMES)
#: A row: the fields, the summary (the kind's display fields), then each timestamp of
#: :data:`_ODD_TIMES` when it could not be written as text (else NULL); the total follows.
_HISTORY_ROW = ", ".join(
    [_HISTORY_FIELDS.get(name, name) for name in _HISTORY_NAMES]
    # As text, decoded below: the same values whatever codecs the connection has.
    + ["summary::text"]
    + [f"CASE WHEN NOT ({_IN_RANGE.format(sql)}) THEN {sql} END" for sql in _TIMES.values()]
)
#: Where a history record holds the total: after the fields, the summary and the timestamps.
_TOTAL_AT = len(_HISTORY_NAMES) + 1 + len(_ODD_TIMES)
_decode = msgspec.json.Decoder().decode


async def history(
    conn: asyncpg.Connection | asyncpg.Pool, where: HistoryFilter, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """The total ``where`` matches and one page of its rows, newest first, each as sent (a
    ``TaskSummary``'s fields in order, its kind's display fields after them).

    One statement: the page, each row carrying the total (``counts.total_sql``, computed once),
    in one round trip on one pooled connection and one snapshot; only a page without rows (past
    the end, or nothing matches) asks for the total on its own. The rows become dictionaries
    straight from the records, not through ``TaskSummary`` (``to_wire`` gives the same keys and
    values at several times the cost)."""
    # Day arithmetic in SQL: PostgreSQL's dates reach far past Python's (9999-12-31 + 1 day).
    sql_where, args = where.sql(
        not_child="parent_task_id IS NULL",
        since="created_at >= ?::date",
        until="created_at < ?::date + 1",
    )
    total_sql = counts.total_sql(where, sql_where)
    records = await conn.fetch(
        f"""SELECT {_HISTORY_ROW}, ({total_sql})::bigint FROM tasks {sql_where}
            ORDER BY created_at DESC, id DESC LIMIT {int(limit)} OFFSET {int(offset)}""",
        *args,
    )
    if not records:
        return int(await conn.fetchval(total_sql, *args)), []
    fields = len(_HISTORY_NAMES)
    rows = []
    for values in records:
        row = dict(zip(_HISTORY_NAMES, values, strict=False))
        for at, name in enumerate(_ODD_TIMES, fields + 1):
            if values[at] is not None:
                row[name] = values[at]
        # The contract puts the kind's display fields at the top level of each row; a
        # declared field keeps its own value (``knm.wire.base.flatten``).
        summary = values[fields]
        if summary != "{}":
            for key, value in _decode(summary).items():
                row.setdefault(key, value)
        rows.append(row)
    return records[0][_TOTAL_AT], rows
