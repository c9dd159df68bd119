-- Legacy flavor: the checkpoint events table in the SQL that ClickHouse 18.16 accepts (no
-- DateTime64, Map, CODEC, TTL or skip indexes). It exists so the server transport (batching,
-- timeouts, retries after a killed server, dedup by event_id) is exercised against the only
-- server package Debian ships; production servers (>= 24.8) get the files one folder up.
-- Times are Int64 nanoseconds since the epoch; attributes a Nested pair of arrays.
CREATE TABLE IF NOT EXISTS {{db}}.checkpoint_events {{on_cluster}}
(
    event_id    UInt64,
    tenant      String,
    flow        String,
    checkpoint  String,
    key         String,
    key_attr    String,
    time        Int64,
    ingest_time Int64,
    trace_id    String,
    span_id     String,
    service     String,
    name        String,
    status      String,
    message     String,
    attributes  Nested(k String, v String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(toDateTime(intDiv(time, 1000000000)))
ORDER BY (tenant, flow, key, time, event_id);

CREATE TABLE IF NOT EXISTS {{db}}.aliases {{on_cluster}}
(
    tenant String,
    flow   String,
    attr   String,
    value  String,
    key    String,
    time   Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, flow, attr, value, key);
