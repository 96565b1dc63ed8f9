-- One event is one (tenant, source, id).
--
-- CloudEvents makes `id` unique only per `source`, and every tenant chooses its own sources
-- and ids: the second tenant (or producer) to reuse an id must not find its event taken for
-- one already processed. The idempotency marks, the attempt ledger, open dead letters and the
-- archive are keyed by all three.

-- Marks and attempts written before this migration carry the source the archive knows for
-- their event (the same tenant and id); the rest cannot be told apart any more and keep ''.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['processed_events', 'event_attempts'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN source text NOT NULL DEFAULT ''''', t);
        EXECUTE format('UPDATE %I x SET source = a.source FROM event_archive a '
                       'WHERE a.id = x.event_id AND a.tenant = x.tenant', t);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN source DROP DEFAULT, DROP CONSTRAINT %I, '
                       'ADD PRIMARY KEY (function, tenant, source, event_id)', t, t || '_pkey');
    END LOOP;
END $$;

-- A dead letter names its event's source, so that a redrive clears the right mark.
ALTER TABLE dead_letters ADD COLUMN event_source text;
UPDATE dead_letters d SET event_source = a.source
FROM event_archive a WHERE a.id = d.event_id AND a.tenant = d.tenant;
DROP INDEX dead_letters_once;
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (stage, tenant, coalesce(event_source, ''), event_id)
    WHERE event_id IS NOT NULL AND status = 'open';

-- Two tenants' events with the same source and id are both archived (id first still serves
-- lookups by id).
ALTER TABLE event_archive DROP CONSTRAINT event_archive_pkey, ADD PRIMARY KEY (id, source, tenant);
