package storage

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestClusterDDLGolden(t *testing.T) {
	got, err := DDL(SchemaOptions{Cluster: "flowwatch", RetentionDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "cluster.golden.sql")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./storage -run Golden -update)", err)
	}
	if got != string(want) {
		t.Fatalf("cluster DDL differs from %s (run with -update if intended):\n%s", path, got)
	}
	// Every MergeTree table is replicated and has a Distributed twin sharded by the key.
	creates := regexp.MustCompile(`CREATE TABLE IF NOT EXISTS flowwatch\.(\w+)_local ON CLUSTER flowwatch`).FindAllStringSubmatch(got, -1)
	if len(creates) != 7 {
		t.Fatalf("%d local tables, want 7", len(creates))
	}
	// A materialized view reads and writes the shard's local tables, never the Distributed ones.
	if !strings.Contains(got, "TO flowwatch.family_links_local AS") || !strings.Contains(got, "FROM flowwatch.checkpoint_events_local\n") {
		t.Error("the family_links view does not read and write the local tables")
	}
	for _, c := range creates {
		shardBy := "cityHash64(tenant, flow, key)"
		if c[1] == "flow_versions" {
			shardBy = "cityHash64(flow)"
		}
		dist := "CREATE TABLE IF NOT EXISTS flowwatch." + c[1] + " ON CLUSTER flowwatch AS flowwatch." + c[1] + "_local\nENGINE = Distributed(flowwatch, flowwatch, " + c[1] + "_local, " + shardBy + ")"
		if !strings.Contains(got, dist) {
			t.Errorf("no Distributed table for %s", c[1])
		}
		if !strings.Contains(got, "'/clickhouse/tables/{shard}/flowwatch/"+c[1]+"_local', '{replica}'") {
			t.Errorf("%s_local is not replicated on the {shard}/{replica} macros", c[1])
		}
	}
}

func TestClusterize(t *testing.T) {
	in := "CREATE TABLE IF NOT EXISTS db.t ON CLUSTER c\n(\n    a String\n)\nENGINE = ReplacingMergeTree(v)\nORDER BY a"
	got := Clusterize(in, "db", "c")
	want := []string{
		"CREATE TABLE IF NOT EXISTS db.t_local ON CLUSTER c\n(\n    a String\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}', v)\nORDER BY a",
		"CREATE TABLE IF NOT EXISTS db.t ON CLUSTER c AS db.t_local\nENGINE = Distributed(c, db, t_local, cityHash64(tenant, flow, key))",
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Clusterize =\n%q\nwant\n%q", got, want)
	}
	plain := Clusterize("ENGINE = MergeTree ORDER BY x", "db", "c")
	if len(plain) != 1 {
		t.Fatalf("a non-CREATE statement was changed: %q", plain)
	}
	noArgs := Clusterize("CREATE TABLE IF NOT EXISTS db.u ON CLUSTER c (a String) ENGINE = MergeTree ORDER BY a", "db", "c")
	if !strings.Contains(noArgs[0], "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/u_local', '{replica}') ORDER BY a") {
		t.Fatalf("Clusterize without engine args = %q", noArgs[0])
	}
}

func TestSchemaOptions(t *testing.T) {
	ddl, err := DDL(SchemaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stripComments(ddl), "TTL ") || strings.Contains(ddl, "{{") || strings.Contains(ddl, "ON CLUSTER") {
		t.Fatalf("retention 0 / no cluster DDL has a TTL, a placeholder or ON CLUSTER:\n%s", ddl)
	}
	ddl, _ = DDL(SchemaOptions{Database: "fw", RetentionDays: 7})
	if !strings.Contains(ddl, "TTL toDateTime(time) + INTERVAL 7 DAY") || !strings.Contains(ddl, "CREATE TABLE IF NOT EXISTS fw.checkpoint_events") {
		t.Fatalf("retention 7 DDL:\n%s", ddl)
	}
	for _, o := range []SchemaOptions{{Database: "a-b"}, {Cluster: "x; DROP"}, {RetentionDays: -1}, {Legacy: true, Cluster: "c"}} {
		if _, err := DDL(o); err == nil {
			t.Errorf("DDL(%+v) accepted", o)
		}
	}
	legacy, err := Migrations(SchemaOptions{Legacy: true})
	if err != nil || len(legacy) != 1 || strings.Contains(stripComments(strings.Join(legacy[0].Statements, "\n")), "DateTime64") {
		t.Fatalf("legacy migrations = %v, %v", legacy, err)
	}
}

var (
	onClusterRe  = regexp.MustCompile(` ON CLUSTER \w+`)
	replicatedRe = regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?([^)]*)\)`)
)

// The local tables of the cluster DDL run on the modern engine (chDB has no ZooKeeper: the
// replication is taken off, everything else is as generated).
func TestClusterLocalTablesOnChDB(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "cluster_local_probe")
	ms, err := Migrations(SchemaOptions{Database: "cluster_local", Cluster: "flowwatch", RetentionDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	b := s.(*store).b
	if err := b.exec(ctx, "DROP DATABASE IF EXISTS cluster_local"); err != nil {
		t.Fatal(err)
	}
	if err := b.exec(ctx, "CREATE DATABASE cluster_local"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		for _, st := range m.Statements {
			if strings.Contains(st, "ENGINE = Distributed") {
				continue
			}
			local := onClusterRe.ReplaceAllString(st, "")
			local = replicatedRe.ReplaceAllString(local, "$1($2)")
			if err := b.exec(ctx, local); err != nil {
				t.Fatalf("%v\n%s", err, local)
			}
			n++
		}
	}
	if n != 8 {
		t.Fatalf("ran %d statements, want 8: 7 local tables and the family_links view", n)
	}
}
