-- 003: when each flow version was first loaded by a detector.
--
-- flow_versions: a version without active_from is active from the moment a detector first
-- loaded it (never "since forever"), so loading v2 never re-pins the instances v1 started —
-- after a restart either. Every detector writes the moment it first sees a version; readers
-- take the earliest (min) per version, so all shards agree. Tiny: one row per version per
-- detector start that did not find it.
CREATE TABLE IF NOT EXISTS {{db}}.flow_versions {{on_cluster}}
(
    flow      LowCardinality(String),
    version   UInt32,
    loaded_at DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (flow, version, loaded_at);
