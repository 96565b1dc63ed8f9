-- Datasets, their versions and observations, and ingest reports (issue 4).

CREATE TABLE datasets (
    tenant          text        NOT NULL,
    name            text        NOT NULL,
    horizon         integer     NOT NULL CHECK (horizon > 0),
    frequency       text,                       -- NULL: inferred from the timestamps
    quantiles       float8[]    NOT NULL DEFAULT '{0.1,0.5,0.9}',
    retrain_wape    float8,                     -- absolute WAPE bound, or
    retrain_factor  float8      NOT NULL DEFAULT 1.5,  -- × the predictor's backtest WAPE
    max_error_rate  float8      NOT NULL DEFAULT 0.1,  -- share of bad rows that rejects a file
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

-- One row per accepted file; a version is visible only once its rows are in.
CREATE TABLE dataset_versions (
    tenant        text        NOT NULL,
    dataset       text        NOT NULL,
    version       integer     NOT NULL,
    ingest_id     text        NOT NULL,        -- the data-arrival event id
    source        text        NOT NULL,
    rows_read     integer     NOT NULL,
    rows_rejected integer     NOT NULL,
    rows_changed  integer     NOT NULL,
    items         integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, dataset, version),
    UNIQUE (tenant, ingest_id),
    FOREIGN KEY (tenant, dataset) REFERENCES datasets (tenant, name)
);

-- The target series (Amazon Forecast's target time series), with any related columns.
CREATE TABLE observations (
    tenant   text        NOT NULL,
    dataset  text        NOT NULL,
    item_id  text        NOT NULL,
    ts       timestamptz NOT NULL,
    value    float8      NOT NULL,
    related  jsonb,
    version  integer     NOT NULL,             -- the version that last wrote the row
    PRIMARY KEY (tenant, dataset, item_id, ts)
);

-- What each ingest found, accepted or not.
CREATE TABLE ingest_reports (
    tenant      text        NOT NULL,
    ingest_id   text        NOT NULL,
    dataset     text        NOT NULL,
    source      text        NOT NULL,
    accepted    boolean     NOT NULL,
    report      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, ingest_id)
);

-- Total parsers for validation in the database: NULL instead of an error.
CREATE FUNCTION almanac_try_float8(t text) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::float8;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

CREATE FUNCTION almanac_try_timestamptz(t text) RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN t::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
