-- The credential an execute request of this cluster uses when it names none (admin-set). A
-- credential that is some cluster's default cannot be deleted (409) until that changes.
ALTER TABLE clusters ADD COLUMN default_credential_id bigint REFERENCES credentials (id);
