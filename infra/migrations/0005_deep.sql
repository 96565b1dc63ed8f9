-- The deep global model beside the statistical AutoML, and champion selection.

-- Which predictors a dataset trains and forecasts with: the statistical AutoML alone, the
-- deep model alone, or both with the better by holdout backtest (or their mean).
ALTER TABLE datasets ADD COLUMN models text NOT NULL DEFAULT 'statistical'
    CHECK (models IN ('statistical', 'deep', 'champion'));

-- One predictor of each kind per triggering event.
ALTER TABLE predictors DROP CONSTRAINT predictors_tenant_trigger_event_key;
ALTER TABLE predictors ADD CONSTRAINT predictors_tenant_trigger_event_kind_key UNIQUE (tenant, trigger_event, kind);
ALTER TABLE predictors ADD CONSTRAINT predictors_kind_check CHECK (kind IN ('statistical', 'deep'));

-- Each predictor's forecast of each item's holdout window (its last horizon values, from
-- the values before them), with those values: what champion selection compares.
CREATE TABLE predictor_holdouts (
    predictor_id text     NOT NULL REFERENCES predictors ON DELETE CASCADE,
    item_id      text     NOT NULL,
    actual       float8[] NOT NULL,              -- the held-out values
    levels       float8[] NOT NULL,
    quantiles    float8[] NOT NULL,              -- [step][level]
    PRIMARY KEY (predictor_id, item_id)
);

-- A deep predictor's trained network (the .npz that python/almanac_deep writes).
CREATE TABLE predictor_models (
    predictor_id text  PRIMARY KEY REFERENCES predictors ON DELETE CASCADE,
    format       text  NOT NULL,
    model        bytea NOT NULL
);

-- Deep training progress, for `almanac status` (one row per dataset in training).
CREATE TABLE deep_training (
    tenant     text        NOT NULL,
    dataset    text        NOT NULL,
    event_id   text        NOT NULL,
    device     text        NOT NULL,
    member     integer     NOT NULL,
    members    integer     NOT NULL,
    epoch      integer     NOT NULL,
    max_epochs integer     NOT NULL,
    loss       float8,
    validation float8,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, dataset)
);

-- Which predictor kind made a forecast (statistical, deep or their mean) and its holdout
-- WAPE, the monitor's reference when it is not the predictor's own.
ALTER TABLE forecasts ADD COLUMN kind text NOT NULL DEFAULT 'statistical';
ALTER TABLE forecasts ADD COLUMN backtest_wape float8;
