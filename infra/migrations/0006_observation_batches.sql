-- Observations stored as batches: each accepted file's new and changed rows are one table,
-- loaded by COPY while it is invisible and attached as a partition of `observation_rows`
-- in the ingest's commit. No row is copied twice and no index is kept up per row, so an
-- ingest runs at about the speed of COPY itself.
--
-- A dataset's data is its batches, the newest version winning per item and timestamp:
-- `dataset_observations(tenant, dataset)` reads one dataset (only its partitions are
-- scanned); the `observations` view shows every dataset the same way.

CREATE SEQUENCE observation_batch_ids;

-- One row per attached batch.
CREATE TABLE observation_batches (
    batch      bigint      PRIMARY KEY,
    tenant     text        NOT NULL,
    dataset    text        NOT NULL,
    version    integer     NOT NULL,                -- the dataset version the batch made
    ingest_id  text        NOT NULL,
    rows       bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, dataset, version)
);

CREATE TABLE observation_rows (
    item_id text        NOT NULL,
    ts      timestamptz NOT NULL,
    value   float8      NOT NULL,
    related jsonb,
    batch   bigint      NOT NULL
) PARTITION BY LIST (batch);

-- Rows loaded before batches: one batch per dataset version, in one partition.
DO $$
DECLARE
    ids bigint[];
BEGIN
    CREATE TABLE observation_batch_legacy (LIKE observation_rows);
    CREATE TEMPORARY TABLE legacy_batches ON COMMIT DROP AS
        SELECT nextval('observation_batch_ids') AS batch, tenant, dataset, version, count(*) AS n
        FROM observations GROUP BY tenant, dataset, version;
    INSERT INTO observation_batches (batch, tenant, dataset, version, ingest_id, rows)
        SELECT batch, tenant, dataset, version, 'before-batches', n FROM legacy_batches;
    INSERT INTO observation_batch_legacy (item_id, ts, value, related, batch)
        SELECT o.item_id, o.ts, o.value, o.related, l.batch FROM observations o
        JOIN legacy_batches l USING (tenant, dataset, version);
    SELECT array_agg(batch) INTO ids FROM legacy_batches;
    IF ids IS NULL THEN
        DROP TABLE observation_batch_legacy;
    ELSE
        EXECUTE format('ALTER TABLE observation_rows ATTACH PARTITION observation_batch_legacy FOR VALUES IN (%s)',
                       array_to_string(ids, ','));
    END IF;
END $$;

DROP TABLE observations;

-- One dataset's observations (or one item's): the newest version of each item and
-- timestamp. Only the dataset's own partitions are scanned (the batch list is a parameter
-- of the statement, so the planner prunes the rest).
CREATE FUNCTION dataset_observations(p_tenant text, p_dataset text, p_item text DEFAULT NULL)
RETURNS TABLE (item_id text, ts timestamptz, value float8, related jsonb, version integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    batches bigint[];
BEGIN
    SELECT coalesce(array_agg(b.batch), '{}') INTO batches
    FROM observation_batches b WHERE b.tenant = p_tenant AND b.dataset = p_dataset;
    RETURN QUERY EXECUTE
        'SELECT DISTINCT ON (r.item_id, r.ts) r.item_id, r.ts, r.value, r.related, b.version
         FROM observation_rows r JOIN observation_batches b ON b.batch = r.batch
         WHERE r.batch = ANY ($1) AND ($2::text IS NULL OR r.item_id = $2)
         ORDER BY r.item_id, r.ts, b.version DESC' USING batches, p_item;
END $$;

-- Every dataset's observations (for inspection; readers of one dataset use the function).
CREATE VIEW observations AS
    SELECT DISTINCT ON (b.tenant, b.dataset, r.item_id, r.ts)
           b.tenant, b.dataset, r.item_id, r.ts, r.value, r.related, b.version
    FROM observation_rows r JOIN observation_batches b ON b.batch = r.batch
    ORDER BY b.tenant, b.dataset, r.item_id, r.ts, b.version DESC;
