-- SSH credentials. What the API shows is in plain columns; the secrets (password, private key,
-- passphrase) are one AES-256-GCM sealed JSON document (knm.core.crypto) bound to the row's id,
-- beside the id of the key that sealed it (re-sealed by `knm admin rotate-key`).
CREATE TABLE credentials (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    username text NOT NULL,
    auth_type text NOT NULL CHECK (auth_type IN ('password', 'private_key')),
    port integer NOT NULL DEFAULT 22 CHECK (port BETWEEN 1 AND 65535),
    has_password boolean NOT NULL DEFAULT false,
    has_private_key boolean NOT NULL DEFAULT false,
    has_passphrase boolean NOT NULL DEFAULT false,
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Deleting is a hard delete, so a name is free again once its credential is gone.
CREATE UNIQUE INDEX credentials_name_key ON credentials (lower(name));
