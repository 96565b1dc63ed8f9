-- The runtime's tables: tenants, idempotency, outbox, invocations, dead letters,
-- the event archive and the launcher's view of instances and the GPU queue.
-- Every row that belongs to a tenant carries it.

CREATE TABLE tenants (
    id            text PRIMARY KEY,
    token_sha256  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per (function, event) that reached a final outcome: the idempotency mark.
CREATE TABLE processed_events (
    function      text NOT NULL,
    event_id      text NOT NULL,
    tenant        text NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('succeeded', 'dead_lettered')),
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function, event_id)
);

-- Events a function emitted, written in the same transaction as its effects,
-- then relayed to the bus; sent_at is set once Kafka acknowledged them.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    function      text NOT NULL,
    tenant        text NOT NULL,
    topic         text NOT NULL,
    event         jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
CREATE INDEX outbox_unsent ON outbox (function, seq) WHERE sent_at IS NULL;

-- One row per attempt to handle an event.
CREATE TABLE invocations (
    id            bigserial PRIMARY KEY,
    function      text NOT NULL,
    event_id      text,
    event_type    text,
    tenant        text NOT NULL DEFAULT 'default',
    trace_id      text,
    instance      text NOT NULL,
    attempt       integer NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'timed_out', 'duplicate', 'dead_lettered')),
    error         text,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL
);
CREATE INDEX invocations_function ON invocations (function, started_at);
CREATE INDEX invocations_event ON invocations (event_id);

-- Events that could not be handled, with why and the original bytes.
CREATE TABLE dead_letters (
    id             bigserial PRIMARY KEY,
    stage          text NOT NULL,            -- 'router' or the function's name
    event_id       text,
    event_type     text,
    tenant         text NOT NULL DEFAULT 'default',
    error_code     text NOT NULL,
    error          text NOT NULL,
    attempts       integer NOT NULL,
    source_topic   text NOT NULL,
    source_partition integer,
    source_offset  bigint,
    record_key     bytea,
    record_value   bytea,
    record_headers jsonb NOT NULL DEFAULT '[]',
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'redriven', 'discarded')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    redriven_at    timestamptz
);
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (stage, event_id) WHERE event_id IS NOT NULL AND status = 'open';
CREATE INDEX dead_letters_open ON dead_letters (status, created_at);

-- Every event that passed through the router, for replay.
CREATE TABLE event_archive (
    source         text NOT NULL,
    id             text NOT NULL,
    type           text NOT NULL,
    subject        text,
    tenant         text NOT NULL,
    time           timestamptz,
    causation_id   text,
    correlation_id text,
    event          jsonb NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, source)          -- id first: it also serves lookups by id (causation chains)
);
CREATE INDEX event_archive_time ON event_archive (archived_at);
CREATE INDEX event_archive_type ON event_archive (type, archived_at);
CREATE INDEX event_archive_subject ON event_archive (subject, archived_at);
CREATE INDEX event_archive_causation ON event_archive (causation_id);

-- The launcher's instances and GPU queue, as it last wrote them (for `almanac status`).
CREATE TABLE function_instances (
    instance      text PRIMARY KEY,
    function      text NOT NULL,
    pid           integer NOT NULL,
    gpu           text,
    started_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE gpu_queue (
    function      text PRIMARY KEY,
    waiting_since timestamptz NOT NULL DEFAULT now(),
    lag           bigint NOT NULL
);
