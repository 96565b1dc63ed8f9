-- Durable attempts and crash loops.
--
-- An attempt is counted here before the handler starts, so a handler that kills its own
-- process (a trap, out of memory, SIGKILL) still uses up `retries.maxAttempts` across
-- restarts; `running` is still true when the process died during the attempt. The row
-- goes when the event reaches a final outcome (processed or dead-lettered).
CREATE TABLE event_attempts (
    function    text        NOT NULL,
    event_id    text        NOT NULL,
    tenant      text        NOT NULL,
    attempts    integer     NOT NULL,
    running     boolean     NOT NULL,
    instance    text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function, event_id)
);

-- Functions whose instances keep dying: the launcher backs off starting them and
-- `almanac status` shows them as crash-looping. A clean exit clears the row.
CREATE TABLE function_crashes (
    function     text        PRIMARY KEY,
    consecutive  integer     NOT NULL,
    last_status  text        NOT NULL,
    last_at      timestamptz NOT NULL DEFAULT now(),
    held_until   timestamptz NOT NULL
);

-- Per-dataset bounds on what an ingest reads: the decompressed size of a file and the
-- length of one line (an unterminated huge line or a gzip bomb is refused by name).
ALTER TABLE datasets
    ADD COLUMN max_file_bytes bigint  NOT NULL DEFAULT 10737418240 CHECK (max_file_bytes > 0),
    ADD COLUMN max_line_bytes integer NOT NULL DEFAULT 1048576 CHECK (max_line_bytes BETWEEN 64 AND 1073741824);

-- Kafka clusters this deployment has used. A cluster never seen before (a broker that came
-- back empty, a new cluster), or one whose offsets went backwards, is reconciled from
-- Postgres by the control plane: archived events a subscribed function has not processed
-- are routed again and outbox rows the bus never confirmed are relayed again.
-- `oldest_rerouted` is the archive time of the oldest event its reconciliation routed again:
-- the next reconciliation looks back to it (or to this cluster's first_seen, if earlier),
-- since such an event may still be unprocessed when this cluster is lost in turn.
CREATE TABLE kafka_clusters (
    cluster_id      text        PRIMARY KEY,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    reconciled_at   timestamptz,
    oldest_rerouted timestamptz
);

-- The outbox sweep looks at recently sent rows.
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
