-- Where each function has got to in each partition of its input topic: the offset of the
-- next record to read, written in the same transaction as the processed mark. A starting
-- instance reads these instead of asking Kafka's group coordinator (which costs a cold
-- start about 100 ms); Kafka's committed offsets are still kept for lag. Positions belong
-- to one Kafka cluster: a new cluster (the embedded mock broker after a restart) starts
-- from its own offsets, so rows of another cluster are ignored.
CREATE TABLE consumer_positions (
    cluster_id    text NOT NULL,
    function      text NOT NULL,
    topic         text NOT NULL,
    partition     integer NOT NULL,
    next_offset   bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, function, topic, partition)
);
