-- Progress of the attempt in hand, reported by any function through the SDK
-- (`context.progress`, or a `{"progress": …}` line of a program under the exec adapter) and
-- shown by `almanac status`. One row per function and event, written at most about once a
-- second while the handler runs and deleted in the transaction that commits or dead-letters
-- the event. It replaces the train functions' own progress tables.
CREATE TABLE function_progress (
    function   text        NOT NULL,
    tenant     text        NOT NULL,
    source     text        NOT NULL,
    event_id   text        NOT NULL,
    attempt    integer     NOT NULL,
    progress   jsonb       NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function, tenant, source, event_id)
);

DROP TABLE training_progress;
DROP TABLE deep_training;
