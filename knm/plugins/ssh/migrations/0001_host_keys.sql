-- Host keys pinned by the SSH transport, per cluster and node name (not per address: a node
-- that moves keeps its pin, and two clusters may reuse an address for different machines).
-- The node name '@bastion' holds the key of the cluster's jump host.
CREATE TABLE ssh_host_keys (
    cluster_name text NOT NULL,
    node text NOT NULL,
    key_type text NOT NULL,
    fingerprint text NOT NULL,
    -- One OpenSSH public key line: "ssh-ed25519 AAAA...".
    public_key text NOT NULL,
    address text NOT NULL DEFAULT '',
    port integer NOT NULL DEFAULT 22,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_name, node)
);
