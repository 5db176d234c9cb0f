-- Who may use a credential and where (knm.core.credentials.use). NULL keeps the behaviour from
-- before: any operator or admin, any cluster.
ALTER TABLE credentials
    ADD COLUMN allowed_roles text[],
    ADD COLUMN allowed_users text[],
    ADD COLUMN allowed_clusters text[];
