-- Notifications: subscriptions, an outbox of deliveries and a log of their attempts.

CREATE TABLE notification_subscriptions (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    owner_id bigint REFERENCES users (id) ON DELETE SET NULL,
    owner text NOT NULL DEFAULT '',
    events text[] NOT NULL,
    -- Empty: no filter. An event that carries no kind/cluster/status passes that filter.
    kinds text[] NOT NULL DEFAULT '{}',
    clusters text[] NOT NULL DEFAULT '{}',
    statuses text[] NOT NULL DEFAULT '{}',
    target_type text NOT NULL CHECK (target_type IN ('webhook', 'slack', 'email')),
    -- The target's plain settings (URL, SMTP host …); its secret is sealed below.
    target jsonb NOT NULL DEFAULT '{}'::jsonb,
    has_secret boolean NOT NULL DEFAULT false,
    key_id text,
    nonce bytea,
    ciphertext bytea,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_subscriptions_events_idx
    ON notification_subscriptions USING gin (events) WHERE enabled;

CREATE TABLE notification_outbox (
    id bigserial PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES notification_subscriptions (id) ON DELETE CASCADE,
    event text NOT NULL,
    -- Sent as the Idempotency-Key header: the same on every attempt, in every process.
    idempotency_key text NOT NULL UNIQUE,
    -- The body as sent, built once when the event happened.
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    -- When a pending row is due; a claim moves it one lease ahead, so a row whose claimer
    -- died is due again once the lease has run out.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_outbox_subscription_idx ON notification_outbox (subscription_id, id DESC);

CREATE TABLE notification_attempts (
    id bigserial PRIMARY KEY,
    outbox_id bigint NOT NULL REFERENCES notification_outbox (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker_id text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT now(),
    ok boolean NOT NULL,
    status_code integer,
    latency_ms integer NOT NULL DEFAULT 0,
    error text
);
CREATE INDEX notification_attempts_outbox_idx ON notification_attempts (outbox_id, id);

-- One outbox row per matching subscription, in the caller's transaction: the event and its
-- notifications commit (or roll back) together. The Python emit() calls this too, so the
-- filter rules live here once.
CREATE FUNCTION knm_notify(p_event text, p_kind text, p_cluster text, p_status text, p_data jsonb)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    added integer;
    event_id text := gen_random_uuid()::text;
BEGIN
    INSERT INTO notification_outbox (subscription_id, event, idempotency_key, payload)
    SELECT s.id, p_event, event_id || '.' || s.id,
           jsonb_build_object(
               'id', event_id || '.' || s.id,
               'event', p_event,
               'occurred_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'subscription', jsonb_build_object('id', s.id, 'name', s.name),
               'data', p_data)
    FROM notification_subscriptions s
    WHERE s.enabled AND s.events @> ARRAY[p_event]
      AND (cardinality(s.kinds) = 0 OR p_kind IS NULL OR p_kind = ANY (s.kinds))
      AND (cardinality(s.clusters) = 0 OR p_cluster IS NULL OR p_cluster = ANY (s.clusters))
      AND (cardinality(s.statuses) = 0 OR p_status IS NULL OR p_status = ANY (s.statuses));
    GET DIAGNOSTICS added = ROW_COUNT;
    IF added > 0 THEN
        PERFORM pg_notify('knm_notifications', '');
    END IF;
    RETURN added;
END $$;

-- Task events come from a trigger, not from the runner's Python: every path that ends a task
-- (the runner, the reaper of a lost worker, cancelling a pending task, any later one) sets
-- tasks.status, so none can forget to notify, and the outbox rows are written in the very
-- transaction that makes the task terminal. Steps of a workflow (child tasks) are the
-- workflow's business: only top-level tasks notify.
CREATE FUNCTION knm_tasks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The common case, no one listening, costs one index probe.
    IF NOT EXISTS (SELECT 1 FROM notification_subscriptions
                   WHERE enabled AND events @> ARRAY['task.' || NEW.status]) THEN
        RETURN NULL;
    END IF;
    PERFORM knm_notify(
        'task.' || NEW.status, NEW.kind, NEW.cluster_name, NEW.status,
        jsonb_build_object(
            'task_id', NEW.task_id, 'kind', NEW.kind, 'cluster_name', NEW.cluster_name,
            'status', NEW.status, 'message', NEW.message, 'error', NEW.error,
            'target_nodes', to_jsonb(NEW.target_nodes),
            'success_count', NEW.success_count, 'failed_count', NEW.failed_count,
            'username', NEW.username, 'rerun_of', NEW.rerun_of,
            'start_time', to_char(NEW.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            'end_time', to_char(NEW.end_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')));
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_notify AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status
          AND NEW.status IN ('completed', 'failed', 'cancelled')
          AND NEW.parent_task_id IS NULL)
    EXECUTE FUNCTION knm_tasks_notify();

-- A node that failed while its task ran. Nodes failed only because the task ended before
-- they ran (cancelled, skipped) are the task's event, not theirs.
CREATE FUNCTION knm_task_nodes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    -- The common case, no one listening, costs one index probe.
    IF NOT EXISTS (SELECT 1 FROM notification_subscriptions
                   WHERE enabled AND events @> ARRAY['node.failed']) THEN
        RETURN NULL;
    END IF;
    SELECT kind, cluster_name, parent_task_id INTO t FROM tasks WHERE task_id = NEW.task_id;
    IF t.parent_task_id IS NOT NULL THEN
        RETURN NULL;
    END IF;
    PERFORM knm_notify(
        'node.failed', t.kind, t.cluster_name, 'failed',
        jsonb_build_object(
            'task_id', NEW.task_id, 'kind', t.kind, 'cluster_name', t.cluster_name,
            'node', NEW.node, 'address', NEW.address, 'status', 'failed',
            'reason', NEW.reason, 'message', NEW.message, 'exit_code', NEW.exit_code));
    RETURN NULL;
END $$;
CREATE TRIGGER task_nodes_notify AFTER UPDATE OF status ON task_nodes FOR EACH ROW
    WHEN (NEW.status = 'failed' AND OLD.status IS DISTINCT FROM 'failed'
          AND coalesce(NEW.reason, '') NOT IN ('cancelled', 'skipped'))
    EXECUTE FUNCTION knm_task_nodes_notify();
