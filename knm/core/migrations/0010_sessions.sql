-- A self-service password change keeps the one session it was made from (its JWTs carry the
-- session id as ``sid``); every other session of the user ends with the bumped session_epoch.
ALTER TABLE users ADD COLUMN kept_session text;
-- An API token minted with another API token is its child: it never outlives its parent and is
-- revoked with it.
ALTER TABLE api_tokens ADD COLUMN parent_id bigint REFERENCES api_tokens (id) ON DELETE CASCADE;
CREATE INDEX api_tokens_parent_idx ON api_tokens (parent_id) WHERE parent_id IS NOT NULL;
