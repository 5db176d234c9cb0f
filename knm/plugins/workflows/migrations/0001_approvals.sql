CREATE TABLE workflow_approvals (
    task_id text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    step_id text NOT NULL,
    batch integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
    message text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    decided_by text,
    comment text NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, step_id, batch)
);
