-- Per-node locks of disruptive work belong to the core (knm/core/tasks/locks.py). The table was
-- first created by the k8s plugin's 0001_node_locks.sql and keeps its name; on databases that
-- have it already this migration does nothing.
CREATE TABLE IF NOT EXISTS k8s_node_locks (
    cluster_name text NOT NULL,
    node text NOT NULL,
    holder text NOT NULL,
    task_id text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_name, node)
);
CREATE INDEX IF NOT EXISTS k8s_node_locks_holder ON k8s_node_locks (holder);
