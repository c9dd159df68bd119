CREATE DATABASE IF NOT EXISTS flowwatch ON CLUSTER flowwatch;

CREATE TABLE IF NOT EXISTS flowwatch.schema_migrations ON CLUSTER flowwatch
(
    version    UInt32,
    name       String,
    applied_at DateTime64(9, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/flowwatch/schema_migrations', '{replica}')
ORDER BY version;

-- migration 001_checkpoints
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
CREATE TABLE IF NOT EXISTS flowwatch.checkpoint_events_local ON CLUSTER flowwatch
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/checkpoint_events_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (tenant, flow, key, time, event_id)
TTL toDateTime(time) + INTERVAL 30 DAY
-- non_replicated_deduplication_window: honour insert_deduplication_token on single nodes too.
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS flowwatch.checkpoint_events ON CLUSTER flowwatch AS flowwatch.checkpoint_events_local
ENGINE = Distributed(flowwatch, flowwatch, checkpoint_events_local, cityHash64(tenant, flow, key));

-- aliases: (tenant, flow, attr, value) -> key, written when a checkpoint carries an alias
-- attribute. Looked up by value (resolve a later checkpoint's key) and by key (an instance's
-- events recorded under its aliases). ORDER BY the lookup path; the first mapping wins
-- (readers take argMin(key, time)); ReplacingMergeTree folds replays.
CREATE TABLE IF NOT EXISTS flowwatch.aliases_local ON CLUSTER flowwatch
(
    tenant LowCardinality(String),
    flow   LowCardinality(String),
    attr   LowCardinality(String),
    value  String CODEC(ZSTD(1)),
    key    String CODEC(ZSTD(1)),
    time   DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_key key TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/aliases_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, flow, attr, value, key)
TTL toDateTime(time) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS flowwatch.aliases ON CLUSTER flowwatch AS flowwatch.aliases_local
ENGINE = Distributed(flowwatch, flowwatch, aliases_local, cityHash64(tenant, flow, key));

-- migration 002_detector
-- 002: what the detector writes — instance states, and the audit of alerts and commands.
--
-- instance_states: the detector's latest verdict per instance. ReplacingMergeTree(updated_at)
-- keeps the newest row per (tenant, flow, key) however many shards or restarts wrote it;
-- readers use FINAL so they see one truth before merges. Listings filter by flow and status
-- and sort by last_seen: ORDER BY (tenant, flow, key) is the replacing key (it must be), and
-- a set index on status skips granules of other statuses. expected_checkpoints is
-- materialized from the Expected JSON so "instances expecting X" needs no JSON at read time.
CREATE TABLE IF NOT EXISTS flowwatch.instance_states_local ON CLUSTER flowwatch
(
    tenant          LowCardinality(String),
    flow            LowCardinality(String),
    version         UInt32,
    key             String CODEC(ZSTD(1)),
    status          LowCardinality(String),
    started_at      DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    last_seen       DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    last_checkpoint LowCardinality(String),
    expected        String CODEC(ZSTD(3)),
    reason          String CODEC(ZSTD(3)),
    violations      String CODEC(ZSTD(3)),
    shard           UInt32,
    updated_at      DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    expected_checkpoints Array(LowCardinality(String)) MATERIALIZED
        arrayMap(x -> JSONExtractString(x, 'checkpoint'), JSONExtractArrayRaw(expected)),
    INDEX idx_status status TYPE set(8) GRANULARITY 4
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/instance_states_local', '{replica}', updated_at)
ORDER BY (tenant, flow, key)
TTL toDateTime(updated_at) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS flowwatch.instance_states ON CLUSTER flowwatch AS flowwatch.instance_states_local
ENGINE = Distributed(flowwatch, flowwatch, instance_states_local, cityHash64(tenant, flow, key));

-- alerts: append-only audit of notifications, read newest first per flow. ReplacingMergeTree
-- over the whole identity folds a retried write; readers dedup with LIMIT 1 BY.
CREATE TABLE IF NOT EXISTS flowwatch.alerts_local ON CLUSTER flowwatch
(
    time        DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    tenant      LowCardinality(String),
    flow        LowCardinality(String),
    version     UInt32,
    key         String CODEC(ZSTD(1)),
    checkpoint  LowCardinality(String),
    state       LowCardinality(String),
    sink        LowCardinality(String),
    fingerprint String CODEC(ZSTD(1)),
    summary     String CODEC(ZSTD(3)),
    error       String CODEC(ZSTD(3))
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/alerts_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, flow, time, fingerprint, state, sink)
TTL toDateTime(time) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS flowwatch.alerts ON CLUSTER flowwatch AS flowwatch.alerts_local
ENGINE = Distributed(flowwatch, flowwatch, alerts_local, cityHash64(tenant, flow, key));

-- commands: one row per unblock command id; a later outcome (succeeded / no_effect) replaces
-- the earlier one (ReplacingMergeTree by time, FINAL on read).
CREATE TABLE IF NOT EXISTS flowwatch.commands_local ON CLUSTER flowwatch
(
    id         String,
    time       DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    tenant     LowCardinality(String),
    flow       LowCardinality(String),
    version    UInt32,
    key        String CODEC(ZSTD(1)),
    checkpoint LowCardinality(String),
    attempt    UInt32,
    sink       LowCardinality(String),
    subject    String,
    outcome    LowCardinality(String),
    error      String CODEC(ZSTD(3)),
    payload    String CODEC(ZSTD(3))
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/commands_local', '{replica}', time)
ORDER BY (tenant, flow, id)
TTL toDateTime(time) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS flowwatch.commands ON CLUSTER flowwatch AS flowwatch.commands_local
ENGINE = Distributed(flowwatch, flowwatch, commands_local, cityHash64(tenant, flow, key));

-- migration 003_flow_versions
-- 003: when each flow version was first loaded by a detector.
--
-- flow_versions: a version without active_from is active from the moment a detector first
-- loaded it (never "since forever"), so loading v2 never re-pins the instances v1 started —
-- after a restart either. Every detector writes the moment it first sees a version; readers
-- take the earliest (min) per version, so all shards agree. Tiny: one row per version per
-- detector start that did not find it.
CREATE TABLE IF NOT EXISTS flowwatch.flow_versions_local ON CLUSTER flowwatch
(
    flow      LowCardinality(String),
    version   UInt32,
    loaded_at DateTime64(9, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/flow_versions_local', '{replica}')
ORDER BY (flow, version, loaded_at);

CREATE TABLE IF NOT EXISTS flowwatch.flow_versions ON CLUSTER flowwatch AS flowwatch.flow_versions_local
ENGINE = Distributed(flowwatch, flowwatch, flow_versions_local, cityHash64(flow));

-- migration 004_families
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
CREATE TABLE IF NOT EXISTS flowwatch.family_links_local ON CLUSTER flowwatch
(
    tenant     LowCardinality(String),
    flow       LowCardinality(String),
    parent_key String CODEC(ZSTD(1)),
    key        String CODEC(ZSTD(1)),
    time       DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_key key TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flowwatch/family_links_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, flow, parent_key, key)
TTL toDateTime(time) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS flowwatch.family_links ON CLUSTER flowwatch AS flowwatch.family_links_local
ENGINE = Distributed(flowwatch, flowwatch, family_links_local, cityHash64(tenant, flow, key));

-- The view reads each insert into the events table (on a cluster: into each shard's local
-- table, whose rows are sharded like the links, by the child's key).
CREATE MATERIALIZED VIEW IF NOT EXISTS flowwatch.family_links_mv ON CLUSTER flowwatch TO flowwatch.family_links_local AS
SELECT tenant, flow, attributes['flow.parent_key'] AS parent_key, key, time
FROM flowwatch.checkpoint_events_local
WHERE attributes['flow.parent_key'] != '';

