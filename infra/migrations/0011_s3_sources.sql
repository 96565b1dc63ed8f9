-- S3-compatible buckets whose new objects are a dataset's data arrivals. A rule maps a
-- bucket and key prefix to one tenant's dataset, says where the store answers (endpoint,
-- region, path-style or virtual-hosted addressing) and names the credentials by reference
-- (a secret of the tenant's that the ingest function resolves; no key is ever stored here).
-- A bucket notification's object goes to the rule with the longest prefix that matches it.
CREATE TABLE s3_sources (
    id          text        PRIMARY KEY,
    tenant      text        NOT NULL,
    dataset     text        NOT NULL,
    bucket      text        NOT NULL,
    prefix      text        NOT NULL DEFAULT '',
    endpoint    text        NOT NULL,
    region      text        NOT NULL,
    path_style  boolean     NOT NULL DEFAULT true,
    credentials text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant, dataset) REFERENCES datasets (tenant, name) ON DELETE CASCADE,
    -- One owner per bucket and prefix in the installation: a notification from a topic
    -- carries no tenant, so the rule decides it.
    UNIQUE (bucket, prefix)
);
CREATE INDEX s3_sources_tenant ON s3_sources (tenant, dataset);
