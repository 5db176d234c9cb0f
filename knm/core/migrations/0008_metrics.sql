-- Cluster-wide histograms for /metrics: what every process finished, kept as monotonic counts
-- that survive restarts and retention pruning (knm/core/metric_store.py owns these tables).
--
-- Observations are appended by statement-level triggers, one row per label set and statement, so
-- a finish never waits on a lock shared with other tasks; a scrape folds them into
-- metric_histograms (DELETE … RETURNING in the same statement, so nothing is counted twice).

CREATE TABLE metric_observations (
    metric text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    counts bigint[] NOT NULL,  -- per bucket (not cumulative); the last is +Inf
    sum double precision NOT NULL
);

CREATE TABLE metric_histograms (
    metric text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    counts bigint[] NOT NULL,
    sum double precision NOT NULL,
    PRIMARY KEY (metric, kind, status, reason)
);

-- Upper bounds (Prometheus `le`) per metric; changing one needs a new metric name.
CREATE FUNCTION knm_metric_bounds(metric text) RETURNS double precision[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE metric
        WHEN 'task_duration' THEN
            '{0.1,0.5,1,2.5,5,10,30,60,120,300,600,1800,3600,7200,21600}'::double precision[]
        WHEN 'queue_wait' THEN
            '{0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300,1800}'::double precision[]
        ELSE  -- node_duration
            '{0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300,1800,7200}'::double precision[]
    END
$$;

-- Counts per bucket of a batch of values: bucket i holds bounds[i-1] < v <= bounds[i].
CREATE FUNCTION knm_bucket_counts(vals double precision[], bounds double precision[])
RETURNS bigint[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(coalesce(c.n, 0) ORDER BY i.i)
    FROM generate_series(1, cardinality(bounds) + 1) AS i(i)
    LEFT JOIN (
        SELECT (SELECT count(*) FROM unnest(bounds) b WHERE b < v) + 1 AS i, count(*) AS n
        FROM unnest(vals) AS v GROUP BY 1
    ) c ON c.i = i.i
$$;

CREATE FUNCTION knm_observe_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_observations (metric, kind, status, counts, sum)
    SELECT 'task_duration', n.kind, n.status,
           knm_bucket_counts(array_agg(d), knm_metric_bounds('task_duration')), sum(d)
    FROM new_rows n JOIN old_rows o ON o.id = n.id,
         LATERAL (SELECT greatest(extract(epoch FROM n.end_time - n.start_time), 0)::float8) AS x(d)
    WHERE n.status IN ('completed', 'failed', 'cancelled')
      AND o.status NOT IN ('completed', 'failed', 'cancelled')
    GROUP BY n.kind, n.status;
    INSERT INTO metric_observations (metric, kind, counts, sum)
    SELECT 'queue_wait', n.kind,
           knm_bucket_counts(array_agg(d), knm_metric_bounds('queue_wait')), sum(d)
    FROM new_rows n JOIN old_rows o ON o.id = n.id,
         LATERAL (SELECT greatest(extract(epoch FROM n.start_time - n.created_at), 0)::float8) AS x(d)
    WHERE o.status = 'pending' AND n.status = 'running'
    GROUP BY n.kind;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_observe AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knm_observe_tasks();

CREATE FUNCTION knm_observe_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_observations (metric, kind, status, reason, counts, sum)
    SELECT 'node_duration', t.kind, n.status, coalesce(n.reason, ''),
           knm_bucket_counts(array_agg(d), knm_metric_bounds('node_duration')), sum(d)
    FROM new_rows n
    JOIN old_rows o ON o.task_id = n.task_id AND o.node = n.node
    JOIN tasks t ON t.task_id = n.task_id,
    LATERAL (SELECT coalesce(greatest(
        extract(epoch FROM n.end_time - coalesce(n.start_time, n.end_time)), 0), 0)::float8) AS x(d)
    WHERE n.status IN ('success', 'failed') AND o.status NOT IN ('success', 'failed')
    GROUP BY t.kind, n.status, coalesce(n.reason, '');
    RETURN NULL;
END $$;

CREATE TRIGGER task_nodes_observe AFTER UPDATE ON task_nodes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knm_observe_nodes();
