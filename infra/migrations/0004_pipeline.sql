-- The forecasting pipeline: predictors, forecasts, the latest-forecast table business
-- systems read, accuracy measurements, and webhooks with their deliveries.

-- A trained predictor: per-item choices and backtest metrics, from one dataset version.
CREATE TABLE predictors (
    id              text        PRIMARY KEY,
    tenant          text        NOT NULL,
    dataset         text        NOT NULL,
    dataset_version integer     NOT NULL,
    kind            text        NOT NULL DEFAULT 'statistical',
    trigger_event   text        NOT NULL,
    items           integer     NOT NULL,
    metrics         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant, dataset) REFERENCES datasets (tenant, name),
    UNIQUE (tenant, trigger_event)
);

CREATE TABLE predictor_items (
    predictor_id text    NOT NULL REFERENCES predictors ON DELETE CASCADE,
    item_id      text    NOT NULL,
    members      text[]  NOT NULL,
    combination  text    NOT NULL,
    method       text    NOT NULL,
    metrics      jsonb   NOT NULL,
    PRIMARY KEY (predictor_id, item_id)
);

-- Training progress, for `almanac status` (one row per dataset).
CREATE TABLE training_progress (
    tenant     text        NOT NULL,
    dataset    text        NOT NULL,
    event_id   text        NOT NULL,
    done       integer     NOT NULL,
    total      integer     NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, dataset)
);

-- A forecast from a predictor and a dataset version; its points per item and step.
CREATE TABLE forecasts (
    id              text        PRIMARY KEY,
    tenant          text        NOT NULL,
    dataset         text        NOT NULL,
    predictor_id    text        NOT NULL REFERENCES predictors,
    dataset_version integer     NOT NULL,
    trigger_event   text        NOT NULL,
    quantiles       float8[]    NOT NULL,
    items           integer     NOT NULL,
    first_ts        timestamptz,
    last_ts         timestamptz,
    breached_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, trigger_event)
);

CREATE TABLE forecast_points (
    forecast_id text        NOT NULL REFERENCES forecasts ON DELETE CASCADE,
    item_id     text        NOT NULL,
    ts          timestamptz NOT NULL,
    mean        float8      NOT NULL,
    q           float8[]    NOT NULL,
    PRIMARY KEY (forecast_id, item_id, ts)
);

-- The latest forecast per tenant, dataset, item and timestamp (the DynamoDB role). Export
-- replaces a dataset's rows in one transaction: readers see one forecast or the other.
CREATE TABLE latest_forecasts (
    tenant      text        NOT NULL,
    dataset     text        NOT NULL,
    item_id     text        NOT NULL,
    ts          timestamptz NOT NULL,
    forecast_id text        NOT NULL,
    quantiles   float8[]    NOT NULL,
    q           float8[]    NOT NULL,
    mean        float8      NOT NULL,
    PRIMARY KEY (tenant, dataset, item_id, ts)
);

-- The live forecast's error on actuals that arrived later.
CREATE TABLE accuracy_measurements (
    id              bigserial   PRIMARY KEY,
    tenant          text        NOT NULL,
    dataset         text        NOT NULL,
    forecast_id     text        NOT NULL REFERENCES forecasts,
    dataset_version integer     NOT NULL,
    points          integer     NOT NULL,
    wape            float8,
    mase            float8,
    wql             float8,
    bound           float8      NOT NULL,
    breached        boolean     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (forecast_id, dataset_version)
);

-- Outbound webhooks (Standard Webhooks signing).
CREATE TABLE webhook_endpoints (
    id            text        PRIMARY KEY,
    tenant        text        NOT NULL,
    url           text        NOT NULL,
    event_types   text[]      NOT NULL,
    secret        text        NOT NULL,
    allow_private boolean     NOT NULL DEFAULT false,
    disabled_at   timestamptz,
    disabled_why  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One delivery per endpoint and event; its webhook-id and body never change.
CREATE TABLE webhook_deliveries (
    id              bigserial   PRIMARY KEY,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    webhook_id      text        NOT NULL UNIQUE,
    body            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',  -- pending, delivered, failed
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id bigint      NOT NULL REFERENCES webhook_deliveries,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status      integer,
    error       text,
    duration_ms integer     NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Events a function schedules for later (webhook retries): the relay leaves them until then.
ALTER TABLE outbox ADD COLUMN publish_after timestamptz;
CREATE INDEX outbox_scheduled ON outbox (publish_after) WHERE sent_at IS NULL AND publish_after IS NOT NULL;
