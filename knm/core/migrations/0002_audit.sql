CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    user_id bigint,
    username text,
    role text,
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    outcome text NOT NULL DEFAULT 'ok',
    client text NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
CREATE INDEX audit_log_user_idx ON audit_log (username, at DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, at DESC);
