-- Exact history totals without counting rows (knm/core/tasks/counts.py owns this table).
--
-- A count over a million tasks scanned every matching row on every history page. Here each
-- statement that inserts, deletes or re-labels tasks appends its net change per (day, kind,
-- cluster, status, child or not) to task_count_changes; a fold (one process at a time, every
-- few seconds) moves them into task_counts, one row per group. A total is the sum of the
-- matching rows of both, which are few. Writers only append, so no writer waits for another
-- and no lock order can deadlock.

CREATE TABLE task_counts (
    day date NOT NULL,
    kind text NOT NULL,
    cluster_name text NOT NULL,
    status text NOT NULL,
    is_child boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (day, kind, cluster_name, status, is_child)
);
-- A cluster's days (the usual filter beside dates) without reading every cluster's.
CREATE INDEX task_counts_cluster_idx ON task_counts (cluster_name, day);

-- The same without the day, for filters without dates: a few hundred rows at most.
CREATE TABLE task_totals (
    kind text NOT NULL,
    cluster_name text NOT NULL,
    status text NOT NULL,
    is_child boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (kind, cluster_name, status, is_child)
);

CREATE TABLE task_count_changes (
    day date NOT NULL,
    kind text NOT NULL,
    cluster_name text NOT NULL,
    status text NOT NULL,
    is_child boolean NOT NULL,
    n bigint NOT NULL
);

CREATE FUNCTION knm_count_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_count_changes
        SELECT (created_at AT TIME ZONE 'UTC')::date, kind, cluster_name, status,
               parent_task_id IS NOT NULL, count(*)
        FROM new_rows GROUP BY 1, 2, 3, 4, 5;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO task_count_changes
        SELECT (created_at AT TIME ZONE 'UTC')::date, kind, cluster_name, status,
               parent_task_id IS NOT NULL, -count(*)
        FROM old_rows GROUP BY 1, 2, 3, 4, 5;
    ELSE
        INSERT INTO task_count_changes
        SELECT day, kind, cluster_name, status, is_child, sum(n)
        FROM (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, kind, cluster_name, status,
                   parent_task_id IS NOT NULL AS is_child, -1 AS n
            FROM old_rows
            UNION ALL
            SELECT (created_at AT TIME ZONE 'UTC')::date, kind, cluster_name, status,
                   parent_task_id IS NOT NULL, 1
            FROM new_rows
        ) change
        GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION knm_count_tasks();
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION knm_count_tasks();
CREATE TRIGGER tasks_count_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knm_count_tasks();

-- What an existing install already has; the triggers above (created first, in this same
-- transaction, which keeps writers out until it commits) count everything after.
INSERT INTO task_counts
SELECT (created_at AT TIME ZONE 'UTC')::date, kind, cluster_name, status,
       parent_task_id IS NOT NULL, count(*)
FROM tasks GROUP BY 1, 2, 3, 4, 5;
INSERT INTO task_totals
SELECT kind, cluster_name, status, is_child, sum(n) FROM task_counts GROUP BY 1, 2, 3, 4;
