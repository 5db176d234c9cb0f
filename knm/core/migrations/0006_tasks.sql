CREATE TABLE tasks (
    id bigserial PRIMARY KEY,
    task_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    cluster_name text NOT NULL DEFAULT '',
    target_nodes text[] NOT NULL DEFAULT '{}',
    request jsonb NOT NULL DEFAULT '{}'::jsonb,
    summary jsonb NOT NULL DEFAULT '{}'::jsonb,
    result jsonb NOT NULL DEFAULT '{}'::jsonb,
    credential_id bigint,
    user_id bigint,
    username text,
    parent_task_id text,
    rerun_of text,
    idempotency_key text,
    success_count integer NOT NULL DEFAULT 0,
    failed_count integer NOT NULL DEFAULT 0,
    progress integer NOT NULL DEFAULT 0,
    message text NOT NULL DEFAULT '',
    error text,
    timeout integer,
    deadline_at timestamptz,
    -- Values the executor marked secret (script parameters …), sealed like credentials.
    key_id text,
    nonce bytea,
    ciphertext bytea,
    cancel_requested boolean NOT NULL DEFAULT false,
    cancel_reason text,
    worker_id text,
    lease_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    start_time timestamptz,
    end_time timestamptz
);
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id DESC) WHERE parent_task_id IS NULL;
CREATE INDEX tasks_kind_created_idx ON tasks (kind, created_at DESC, id DESC) WHERE parent_task_id IS NULL;
CREATE INDEX tasks_cluster_created_idx ON tasks (cluster_name, created_at DESC, id DESC);
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id DESC);
CREATE INDEX tasks_parent_idx ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
CREATE INDEX tasks_queue_idx ON tasks (kind, id) WHERE status = 'pending';
CREATE INDEX tasks_running_idx ON tasks (lease_until) WHERE status = 'running';
CREATE INDEX tasks_credential_idx ON tasks (credential_id) WHERE status IN ('pending', 'running');
CREATE UNIQUE INDEX tasks_idempotency_idx ON tasks (user_id, kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A finished task never changes again: enforced here, not only in Python.
CREATE FUNCTION knm_tasks_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Re-sealing secrets under a new key (knm admin rotate-key) is the one change allowed.
    IF OLD.status IN ('completed', 'failed', 'cancelled')
       AND (to_jsonb(NEW) - 'key_id' - 'nonce' - 'ciphertext')
           IS DISTINCT FROM (to_jsonb(OLD) - 'key_id' - 'nonce' - 'ciphertext') THEN
        RAISE EXCEPTION 'task % is finished (%) and cannot change', OLD.task_id, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tasks_frozen BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION knm_tasks_frozen();

CREATE TABLE task_nodes (
    task_id text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    node text NOT NULL,
    position integer NOT NULL,
    address text NOT NULL DEFAULT '',
    port integer,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'success', 'failed')),
    reason text,
    message text NOT NULL DEFAULT '',
    exit_code integer,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    stdout_bytes bigint NOT NULL DEFAULT 0,
    stderr_bytes bigint NOT NULL DEFAULT 0,
    stdout_truncated boolean NOT NULL DEFAULT false,
    stderr_truncated boolean NOT NULL DEFAULT false,
    start_time timestamptz,
    end_time timestamptz,
    PRIMARY KEY (task_id, node)
);

CREATE TABLE task_output (
    task_id text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    node text NOT NULL,
    stream text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'log')),
    seq integer NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (task_id, node, stream, seq)
);

CREATE TABLE task_events (
    task_id text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    seq integer NOT NULL,
    type text NOT NULL,
    progress integer NOT NULL,
    message text NOT NULL DEFAULT '',
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);
