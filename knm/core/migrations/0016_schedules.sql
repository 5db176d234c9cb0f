-- Schedules: a stored execute request that knm starts as its owner at cron or interval times.
-- Exactly once per fire time: the firing loop claims a due schedule with FOR UPDATE SKIP
-- LOCKED and, in the same transaction, records the run (unique per schedule and fire time),
-- inserts the task and moves next_fire_at on (knm/core/schedules/firing.py).
CREATE TABLE schedules (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- The user it fires as; kept (not cascaded) when the user is deleted, so the fire that
    -- finds them gone is recorded as failed with that reason.
    owner_id bigint NOT NULL,
    owner_name text NOT NULL,
    cron text,
    timezone text NOT NULL DEFAULT 'UTC',
    interval_seconds integer CHECK (interval_seconds > 0),
    kind text NOT NULL,
    -- The request as shown (values the executor marks secret blanked, as tasks store it);
    -- the request as sent, which is what fires, is sealed below (it may hold secrets).
    request jsonb NOT NULL,
    key_id text,
    nonce bytea,
    ciphertext bytea,
    enabled boolean NOT NULL DEFAULT true,
    misfire_policy text NOT NULL DEFAULT 'skip' CHECK (misfire_policy IN ('skip', 'run_once')),
    max_concurrent_runs integer NOT NULL DEFAULT 1 CHECK (max_concurrent_runs > 0),
    start_at timestamptz,
    end_at timestamptz,
    -- The next fire time not yet handled; NULL when none is left (past end_at).
    next_fire_at timestamptz,
    last_fired_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (interval_seconds IS NULL))
);
CREATE UNIQUE INDEX schedules_name_key ON schedules (lower(name));
CREATE INDEX schedules_due_idx ON schedules (next_fire_at) WHERE enabled;
CREATE INDEX schedules_owner_idx ON schedules (owner_id);

CREATE TABLE schedule_runs (
    id bigserial PRIMARY KEY,
    schedule_id bigint NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_time timestamptz NOT NULL,
    -- The task it started (no foreign key: task retention may prune it before the run).
    task_id text,
    status text NOT NULL CHECK (status IN ('started', 'skipped', 'failed')),
    reason text NOT NULL DEFAULT '',
    -- A started run whose task has not yet been seen finished (max_concurrent_runs counts
    -- these); skipped and failed runs are settled from the start.
    settled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (schedule_id, fire_time)
);
CREATE INDEX schedule_runs_unsettled_idx ON schedule_runs (schedule_id) WHERE NOT settled;
CREATE INDEX schedule_runs_task_idx ON schedule_runs (task_id) WHERE task_id IS NOT NULL;
