// Package deploy holds the scaled-out shape of flowwatch — docker compose (compose/), Kubernetes
// manifests (kubernetes/), an example ClickHouse cluster (clickhouse/) and the image
// (Dockerfile) — and the tests that validate them offline: no Docker engine and no Kubernetes
// API server are needed. The tests parse every file, check what each kind requires, and
// cross-check the references between them: mounted files exist, ports and probes agree with
// the configurations, shard counts match replica counts, host names resolve to services.
//
// It has no code of its own; see README.md.
package deploy
