-- Maintenance windows: a named cron expression in an IANA time zone; each fire time opens the
-- window for `duration` seconds (knm.core.windows.cron). Disruptive work that requires a
-- window starts only while it is open.
CREATE TABLE maintenance_windows (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    cron text NOT NULL,
    timezone text NOT NULL,
    duration integer NOT NULL CHECK (duration > 0),
    -- A disabled window does not open (a change freeze): what requires it waits.
    enabled boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The window a cluster requires (at most one). A window some cluster requires cannot be
-- deleted until it no longer is (409), so no cluster loses its protection by accident.
CREATE TABLE cluster_windows (
    cluster_id bigint PRIMARY KEY REFERENCES clusters (id) ON DELETE CASCADE,
    window_id bigint NOT NULL REFERENCES maintenance_windows (id)
);
CREATE INDEX cluster_windows_window ON cluster_windows (window_id);

-- A roll stopped at its window's end is resumed (a new task with `resumed_from`) when the
-- window next opens, unless an operator cancels that. One row per stopped task; a resume is
-- started once across processes (the row is claimed FOR UPDATE SKIP LOCKED, and the start
-- carries an idempotency key).
CREATE TABLE window_resumes (
    task_id text PRIMARY KEY REFERENCES tasks (task_id) ON DELETE CASCADE,
    -- The windows the roll required (names, as they were), all open at `due_at`.
    windows text[] NOT NULL,
    due_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'started', 'cancelled', 'failed')),
    resume_task_id text,
    -- Why a resume could not start (state 'failed'), or who cancelled it.
    error text,
    cancelled_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX window_resumes_due ON window_resumes (due_at) WHERE state = 'pending';
