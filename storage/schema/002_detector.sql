-- 002: what the detector writes — instance states, and the audit of alerts and commands.
--
-- instance_states: the detector's latest verdict per instance. ReplacingMergeTree(updated_at)
-- keeps the newest row per (tenant, flow, key) however many shards or restarts wrote it;
-- readers use FINAL so they see one truth before merges. Listings filter by flow and status
-- and sort by last_seen: ORDER BY (tenant, flow, key) is the replacing key (it must be), and
-- a set index on status skips granules of other statuses. expected_checkpoints is
-- materialized from the Expected JSON so "instances expecting X" needs no JSON at read time.
CREATE TABLE IF NOT EXISTS {{db}}.instance_states {{on_cluster}}
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
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, flow, key)
TTL toDateTime(updated_at) + INTERVAL {{retention_days}} DAY;

-- alerts: append-only audit of notifications, read newest first per flow. ReplacingMergeTree
-- over the whole identity folds a retried write; readers dedup with LIMIT 1 BY.
CREATE TABLE IF NOT EXISTS {{db}}.alerts {{on_cluster}}
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, flow, time, fingerprint, state, sink)
TTL toDateTime(time) + INTERVAL {{retention_days}} DAY;

-- commands: one row per unblock command id; a later outcome (succeeded / no_effect) replaces
-- the earlier one (ReplacingMergeTree by time, FINAL on read).
CREATE TABLE IF NOT EXISTS {{db}}.commands {{on_cluster}}
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
ENGINE = ReplacingMergeTree(time)
ORDER BY (tenant, flow, id)
TTL toDateTime(time) + INTERVAL {{retention_days}} DAY;
