-- 001: checkpoint events and key aliases — what the flow exporter writes.
--
-- checkpoint_events: one row per telemetry item that reached a checkpoint (or, with an empty
-- checkpoint, an error note on an instance).
--  * Queries: one instance's events (tenant, flow, key) — the API and the detector's rebuild;
--    new events by ingest time — the detector's cursor; per-checkpoint counts, transitions and
--    series of one flow over a time range — the API/Grafana.
--  * ORDER BY (tenant, flow, key, time, event_id) serves the instance lookup with the primary
--    index and keeps one instance's rows together (its trace ids and attributes compress well).
--    event_id closes the key, so ReplacingMergeTree folds a replayed duplicate into one row;
--    readers still dedup (LIMIT 1 BY event_id) because merges are eventual.
--  * PARTITION BY day of the event time: TTL drops whole parts (ttl_only_drop_parts), and
--    flow-wide range queries prune partitions.
--  * minmax index on ingest_time: the detector's cursor skips granules without scanning; ingest
--    time tracks event time closely, so granules are tight.
--  * bloom_filter on trace_id: "which instance is this trace" lookups.
--  * LowCardinality for the small vocabularies (tenant, flow, checkpoint, service, name, status);
--    Delta+ZSTD for the times (sorted within an instance); ZSTD for the free text.
CREATE TABLE IF NOT EXISTS {{db}}.checkpoint_events {{on_cluster}}
(
    event_id    UInt64,
    tenant      LowCardinality(String),
    flow        LowCardinality(String),
    checkpoint  LowCardinality(String),
    key         String CODEC(ZSTD(1)),
    key_attr    LowCardinality(String),
    time        DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    ingest_time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id    String CODEC(ZSTD(1)),
    span_id     String CODEC(ZSTD(1)),
    service     LowCardinality(String),
    name        LowCardinality(String),
    status      LowCardinality(String),
    message     String CODEC(ZSTD(3)),
    attributes  Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    INDEX idx_ingest ingest_time TYPE minmax GRANULARITY 1,
    INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
ORDER BY (tenant, flow, key, time, event_id)
TTL toDateTime(time) + INTERVAL {{retention_days}} DAY
-- non_replicated_deduplication_window: honour insert_deduplication_token on single nodes too.
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- aliases: (tenant, flow, attr, value) -> key, written when a checkpoint carries an alias
-- attribute. Looked up by value (resolve a later checkpoint's key) and by key (an instance's
-- events recorded under its aliases). ORDER BY the lookup path; the first mapping wins
-- (readers take argMin(key, time)); ReplacingMergeTree folds replays.
CREATE TABLE IF NOT EXISTS {{db}}.aliases {{on_cluster}}
(
    tenant LowCardinality(String),
    flow   LowCardinality(String),
    attr   LowCardinality(String),
    value  String CODEC(ZSTD(1)),
    key    String CODEC(ZSTD(1)),
    time   DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_key key TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, flow, attr, value, key)
TTL toDateTime(time) + INTERVAL {{retention_days}} DAY;
