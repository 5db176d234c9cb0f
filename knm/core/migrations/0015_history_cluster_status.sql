-- History filtered by cluster and status ("what failed on this cluster this week"): with only
-- the cluster's and the status's own indexes, PostgreSQL walks every task of the cluster in the
-- range and reads each row for its status. When the cluster had no such task — the common
-- answer for a healthy cluster — that was every task it ran that week (3,900 rows, 26 ms p50 at
-- 1,000,000 tasks; bench/README.md, #20). This index goes straight to the page.
CREATE INDEX tasks_cluster_status_created_idx
    ON tasks (cluster_name, status, created_at DESC, id DESC)
    WHERE parent_task_id IS NULL;
