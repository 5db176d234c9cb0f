-- Clusters: a name, the kind of provider that serves it, and that provider's configuration.
CREATE TABLE clusters (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- The provider's configuration without its secret fields (static: the nodes).
    config jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The provider's secret fields (kubernetes: the kubeconfig) as one sealed JSON document
    -- (knm.core.crypto, bound to the row's id; re-sealed by `knm admin rotate-key`).
    -- Null when the provider has none.
    secrets_key_id text,
    secrets_nonce bytea,
    secrets_ciphertext bytea,
    -- {"address", "port", "credential_id"}; no foreign key, since credentials are optional.
    bastion jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
