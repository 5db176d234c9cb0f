-- Versioned content of every kind (playbooks, scripts, workflows, ...) in one table.
CREATE TABLE content_items (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- A string body (playbook YAML, script source) is stored as a JSON string.
    body jsonb NOT NULL,
    -- The kind's own fields (a script's language and parameters).
    extras jsonb NOT NULL DEFAULT '{}'::jsonb,
    category text NOT NULL DEFAULT 'general',
    tags text[] NOT NULL DEFAULT '{}',
    is_builtin boolean NOT NULL DEFAULT false,
    is_active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    -- Usernames, not foreign keys: the history outlives the users who wrote it.
    created_by text,
    updated_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX content_items_name_key ON content_items (kind, lower(name));
CREATE INDEX content_items_category_idx ON content_items (kind, category);
CREATE INDEX content_items_tags_idx ON content_items USING gin (tags);
CREATE INDEX content_items_extras_idx ON content_items USING gin (extras jsonb_path_ops);

-- Every version of every item's body, the current one included.
CREATE TABLE content_versions (
    item_id bigint NOT NULL REFERENCES content_items (id) ON DELETE CASCADE,
    version integer NOT NULL,
    body jsonb NOT NULL,
    -- Only the extras the kind marks as versioned (a script's language and parameters).
    extras jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, version)
);
