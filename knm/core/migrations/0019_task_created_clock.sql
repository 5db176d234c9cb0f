-- A task's created_at is when its row was written, not when its transaction began: a schedule
-- fires up to 25 tasks in one transaction, and now() gave them all the batch's start.
ALTER TABLE tasks ALTER COLUMN created_at SET DEFAULT clock_timestamp();
