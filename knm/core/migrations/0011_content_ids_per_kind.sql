-- Playbooks, scripts and workflows each have their own id sequence (the wire contract: a fresh
-- install has playbook 1, script 1 and workflow 1). Nothing is renumbered: ids were unique across
-- kinds, so they are unique per kind too, and tasks and workflow steps keep referring to them.
-- Each kind's sequence continues after its own highest id.

-- The last id handed out per kind; a row is locked by the insert that takes the next id, so ids
-- of one kind never collide and a rolled-back insert leaves no gap.
CREATE TABLE content_ids (
    kind text PRIMARY KEY,
    last_id bigint NOT NULL
);
INSERT INTO content_ids (kind, last_id) SELECT kind, max(id) FROM content_items GROUP BY kind;

ALTER TABLE content_versions ADD COLUMN kind text;
UPDATE content_versions v SET kind = i.kind FROM content_items i WHERE i.id = v.item_id;
ALTER TABLE content_versions ALTER COLUMN kind SET NOT NULL;
ALTER TABLE content_versions DROP CONSTRAINT content_versions_item_id_fkey;
ALTER TABLE content_versions DROP CONSTRAINT content_versions_pkey;

ALTER TABLE content_items ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE content_items_id_seq;
ALTER TABLE content_items DROP CONSTRAINT content_items_pkey;
ALTER TABLE content_items ADD PRIMARY KEY (kind, id);

ALTER TABLE content_versions ADD PRIMARY KEY (kind, item_id, version);
ALTER TABLE content_versions ADD FOREIGN KEY (kind, item_id)
    REFERENCES content_items (kind, id) ON DELETE CASCADE;
