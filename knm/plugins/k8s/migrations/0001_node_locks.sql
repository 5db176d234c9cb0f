-- Kept for databases that applied it; the core's 0007_node_locks.sql creates the table now.
-- Per-node locks of disruptive Kubernetes actions (cordon, drain). The holder is the root task
-- (a workflow's id for its steps), so every step of one workflow shares the node's lock. A lock
-- whose holder task is finished is stale: it is deleted whenever locks are taken.
CREATE TABLE IF NOT EXISTS k8s_node_locks (
    cluster_name text NOT NULL,
    node text NOT NULL,
    holder text NOT NULL,
    -- The task that took it (the holder itself, or one of its steps).
    task_id text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_name, node)
);
CREATE INDEX IF NOT EXISTS k8s_node_locks_holder ON k8s_node_locks (holder);
