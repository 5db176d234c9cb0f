-- A revision number per task for what its status answer reads besides the task's own row: its
-- nodes and its output. Every statement that inserts or updates them bumps the task's number,
-- so "nothing changed since" is one primary-key lookup (the task row's own changes show in its
-- xmin), and a running task's status is answered from memory while it holds
-- (knm.core.tasks.status_cache). Rows are deleted only for finished tasks (retention), whose
-- answers never go through this check.
CREATE TABLE task_revisions (
    task_id text PRIMARY KEY REFERENCES tasks (task_id) ON DELETE CASCADE,
    rev bigint NOT NULL
);

CREATE FUNCTION knm_task_revised() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The counter's row lock orders concurrent writers of one task: each commit leaves a
    -- number no earlier snapshot saw (a sequence could commit out of order).
    INSERT INTO task_revisions AS r (task_id, rev)
    SELECT DISTINCT task_id, 1 FROM changed ORDER BY task_id
    ON CONFLICT (task_id) DO UPDATE SET rev = r.rev + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER task_nodes_revised_insert AFTER INSERT ON task_nodes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION knm_task_revised();
CREATE TRIGGER task_nodes_revised_update AFTER UPDATE ON task_nodes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION knm_task_revised();
CREATE TRIGGER task_output_revised AFTER INSERT ON task_output
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION knm_task_revised();
