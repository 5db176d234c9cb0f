"""The cluster-wide histograms behind ``/metrics`` (tables ``metric_observations`` and
``metric_histograms``, migration ``0008_metrics.sql``).

Triggers on ``tasks`` and ``task_nodes`` append what each statement finished; :func:`read` folds
the appended rows into the running totals and returns them. Every process of a deployment reads
the same totals, so the series are identical on every replica: a scrape config takes them from
one, or aggregates with ``max without (instance)``.
"""

from __future__ import annotations

import asyncpg
import msgspec

#: A key of ``pg_try_advisory_xact_lock``: one folder at a time, the others just read.
FOLD_LOCK_KEY = 0x6B6E6D_6D6574  # "knm" "met"


class Series(msgspec.Struct, frozen=True):
    metric: str
    kind: str
    status: str
    reason: str
    bounds: list[float]
    #: Per bucket, not cumulative; the last one is +Inf.
    counts: list[int]
    sum: float


async def read(conn: asyncpg.Connection) -> list[Series]:
    """Every series' totals, folding pending observations first when no one else is."""
    async with conn.transaction():
        if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", FOLD_LOCK_KEY):
            await conn.execute(_FOLD)
    # One statement, one snapshot: rows being folded by someone else are counted exactly once.
    rows = await conn.fetch(_READ)
    return [
        Series(
            metric=r["metric"],
            kind=r["kind"],
            status=r["status"],
            reason=r["reason"],
            bounds=list(r["bounds"]),
            counts=list(r["counts"]),
            sum=r["sum"],
        )
        for r in rows
    ]


_FOLD = """
WITH moved AS (DELETE FROM metric_observations RETURNING *),
per_bucket AS (
    SELECT metric, kind, status, reason, i, sum(c)::bigint AS c
    FROM moved, unnest(counts) WITH ORDINALITY AS u(c, i)
    GROUP BY metric, kind, status, reason, i
),
batch AS (
    SELECT p.metric, p.kind, p.status, p.reason, array_agg(p.c ORDER BY p.i) AS counts, s.sum
    FROM per_bucket p
    JOIN (SELECT metric, kind, status, reason, sum(sum) AS sum FROM moved
          GROUP BY metric, kind, status, reason) s
      USING (metric, kind, status, reason)
    GROUP BY p.metric, p.kind, p.status, p.reason, s.sum
)
INSERT INTO metric_histograms AS h (metric, kind, status, reason, counts, sum)
SELECT metric, kind, status, reason, counts, sum FROM batch
ORDER BY metric, kind, status, reason
ON CONFLICT (metric, kind, status, reason) DO UPDATE
SET counts = (SELECT array_agg(a + b ORDER BY i)
              FROM unnest(h.counts, excluded.counts) WITH ORDINALITY AS u(a, b, i)),
    sum = h.sum + excluded.sum
"""

_READ = """
WITH everything AS (
    SELECT metric, kind, status, reason, counts, sum FROM metric_histograms
    UNION ALL
    SELECT metric, kind, status, reason, counts, sum FROM metric_observations
),
per_bucket AS (
    SELECT metric, kind, status, reason, i, sum(c)::bigint AS c
    FROM everything, unnest(counts) WITH ORDINALITY AS u(c, i)
    GROUP BY metric, kind, status, reason, i
),
sums AS (
    SELECT metric, kind, status, reason, sum(sum) AS sum FROM everything
    GROUP BY metric, kind, status, reason
)
SELECT p.metric, p.kind, p.status, p.reason, knm_metric_bounds(p.metric) AS bounds,
       array_agg(p.c ORDER BY p.i) AS counts, s.sum
FROM per_bucket p JOIN sums s USING (metric, kind, status, reason)
GROUP BY p.metric, p.kind, p.status, p.reason, s.sum
ORDER BY p.metric, p.kind, p.status, p.reason
"""
