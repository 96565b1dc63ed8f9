-- An endpoint a tenant deletes stops receiving at once but keeps its delivery history.
ALTER TABLE webhook_endpoints ADD COLUMN deleted_at timestamptz;
