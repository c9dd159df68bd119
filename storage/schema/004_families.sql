-- 004: families — which instances are the children of which (sub-flows).
--
-- family_links: one row per child instance: its (tenant, flow, key) and its parent's key (the
-- parent's flow is the child flow's parent.flow). A materialized view fills it from the child's
-- checkpoint rows that carry the parent's key (attribute flow.parent_key, which the flow
-- processor extracts and the exporter stores), so the collector writes nothing more.
--  * Queries: a parent's children (the API's instance detail, the detector's read-backs of a
--    parent, replay) by (tenant, flow, parent_key): the primary key; a child's parent (for rows
--    that do not carry it) by key: the bloom filter.
--  * ReplacingMergeTree folds the rows of one child into one; readers still take DISTINCT.
CREATE TABLE IF NOT EXISTS {{db}}.family_links {{on_cluster}}
(
    tenant     LowCardinality(String),
    flow       LowCardinality(String),
    parent_key String CODEC(ZSTD(1)),
    key        String CODEC(ZSTD(1)),
    time       DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_key key TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, flow, parent_key, key)
TTL toDateTime(time) + INTERVAL {{retention_days}} DAY;

-- The view reads each insert into the events table (on a cluster: into each shard's local
-- table, whose rows are sharded like the links, by the child's key).
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.family_links_mv {{on_cluster}} TO {{db}}.family_links{{local}} AS
SELECT tenant, flow, attributes['flow.parent_key'] AS parent_key, key, time
FROM {{db}}.checkpoint_events{{local}}
WHERE attributes['flow.parent_key'] != '';
