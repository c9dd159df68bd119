package storage

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed schema/*.sql schema/legacy/*.sql
var schemaFS embed.FS

// SchemaOptions shapes the DDL generated from the embedded .sql files.
type SchemaOptions struct {
	// Database holds every table; default "flowwatch".
	Database string
	// Cluster, when set, generates ON CLUSTER DDL: Replicated*MergeTree local tables
	// (<table>_local, on the {shard}/{replica} macros) and Distributed tables under the plain
	// names, sharded by cityHash64(tenant, flow, key).
	Cluster string
	// RetentionDays drops rows older than this many days (TTL); 0 keeps them forever.
	RetentionDays int
	// Legacy selects the tables ClickHouse 18.16 accepts (legacy.go): for tests of the server
	// transport against Debian's old server only.
	Legacy bool
}

// DefaultDatabase is the database used when SchemaOptions.Database is empty.
const DefaultDatabase = "flowwatch"

// ShardingKey is the Distributed tables' sharding expression: one instance's rows, and every
// replay of them, land on one shard, where ReplacingMergeTree can fold duplicates.
const ShardingKey = "cityHash64(tenant, flow, key)"

// shardingKeys are the Distributed sharding expressions of the tables that have no instance
// key (the rest use ShardingKey).
var shardingKeys = map[string]string{"flow_versions": "cityHash64(flow)"}

// Migration is one versioned schema step: the statements of one embedded .sql file.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (o SchemaOptions) withDefaults() (SchemaOptions, error) {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if !identRe.MatchString(o.Database) {
		return o, fmt.Errorf("schema: database name %q: want letters, digits and _", o.Database)
	}
	if o.Cluster != "" && !identRe.MatchString(o.Cluster) {
		return o, fmt.Errorf("schema: cluster name %q: want letters, digits and _", o.Cluster)
	}
	if o.RetentionDays < 0 {
		return o, fmt.Errorf("schema: retention_days must not be negative, got %d", o.RetentionDays)
	}
	if o.Legacy && o.Cluster != "" {
		return o, fmt.Errorf("schema: the legacy tables have no cluster mode")
	}
	return o, nil
}

// Migrations renders the embedded schema files, in version order.
func Migrations(o SchemaOptions) ([]Migration, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := "schema"
	if o.Legacy {
		dir = legacySchemaDir
	}
	entries, err := fs.ReadDir(schemaFS, dir)
	if err != nil {
		return nil, fmt.Errorf("schema: read embedded files: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("schema: file %s: want NNN_name.sql", e.Name())
		}
		data, err := schemaFS.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", e.Name(), err)
		}
		m := Migration{Version: v, Name: name}
		for _, st := range splitStatements(string(data)) {
			m.Statements = append(m.Statements, renderStatement(st, o)...)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("schema: two migrations with version %d", out[i].Version)
		}
	}
	return out, nil
}

// bootstrapStatements create the database and the migrations table.
func bootstrapStatements(o SchemaOptions) []string {
	onCluster := ""
	engine := "ReplacingMergeTree"
	appliedAt := "DateTime64(9, 'UTC')"
	if o.Legacy {
		appliedAt = legacyAppliedAtType
	}
	if o.Cluster != "" {
		onCluster = " ON CLUSTER " + o.Cluster
		// One history for the whole cluster: every replica of every shard shares the path.
		engine = fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/all/%s/schema_migrations', '{replica}')", o.Database)
	}
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", o.Database, onCluster),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_migrations%s\n(\n    version    UInt32,\n    name       String,\n    applied_at %s\n)\nENGINE = %s\nORDER BY version", o.Database, onCluster, appliedAt, engine),
	}
}

// DDL returns every statement (bootstrap and migrations) as one script, each ended by ";".
func DDL(o SchemaOptions) (string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	ms, err := Migrations(o)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, st := range bootstrapStatements(o) {
		b.WriteString(st)
		b.WriteString(";\n\n")
	}
	for _, m := range ms {
		fmt.Fprintf(&b, "-- migration %03d_%s\n", m.Version, m.Name)
		for _, st := range m.Statements {
			b.WriteString(st)
			b.WriteString(";\n\n")
		}
	}
	return b.String(), nil
}

// splitStatements splits a script on ";" at line ends, dropping comment-only pieces.
func splitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s != "" && strings.TrimSpace(stripComments(s)) != "" {
			out = append(out, s)
		}
	}
	for _, line := range strings.SplitAfter(script, "\n") {
		trimmed := strings.TrimRight(line, " \t\r\n")
		if strings.HasSuffix(trimmed, ";") && !strings.HasPrefix(strings.TrimSpace(trimmed), "--") {
			cur.WriteString(strings.TrimSuffix(trimmed, ";"))
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// renderStatement fills the placeholders of one statement: {{db}}, {{on_cluster}},
// {{retention_days}} (the TTL line is dropped when retention is 0), {{local}} (the suffix of a
// cluster's local tables, which a materialized view reads and writes: empty on a single
// node), and in cluster mode turns a CREATE TABLE into its replicated local table plus a
// Distributed table.
func renderStatement(st string, o SchemaOptions) []string {
	onCluster, local := "", ""
	if o.Cluster != "" {
		onCluster, local = "ON CLUSTER "+o.Cluster, "_local"
	}
	if o.RetentionDays == 0 {
		st = dropTTL(st)
	}
	st = strings.NewReplacer(
		"{{db}}", o.Database,
		" {{on_cluster}}", prefixSpace(onCluster),
		"{{retention_days}}", strconv.Itoa(o.RetentionDays),
		"{{local}}", local,
	).Replace(st)
	if o.Cluster == "" {
		return []string{st}
	}
	return Clusterize(st, o.Database, o.Cluster)
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

func dropTTL(st string) string {
	lines := strings.Split(st, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "TTL ") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

var (
	createTableRe = regexp.MustCompile(`CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)`)
	engineRe      = regexp.MustCompile(`ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?`)
)

// Clusterize turns one single-node CREATE TABLE statement (already rendered, with ON CLUSTER)
// into the cluster's pair: <table>_local on Replicated<Engine>('/clickhouse/tables/{shard}/
// <db>/<table>_local', '{replica}', <engine args>), and <table> as a Distributed table over
// it sharded by ShardingKey. Other statements pass through unchanged.
func Clusterize(st, db, cluster string) []string {
	m := createTableRe.FindStringSubmatchIndex(st)
	if m == nil {
		return []string{st}
	}
	table := st[m[4]:m[5]]
	local := table + "_local"
	out := st[:m[4]] + local + st[m[5]:]
	out = engineRe.ReplaceAllStringFunc(out, func(e string) string {
		sm := engineRe.FindStringSubmatch(e)
		args := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", db, local)
		if strings.TrimSpace(sm[2]) != "" {
			args += ", " + sm[2]
		}
		return fmt.Sprintf("ENGINE = Replicated%s(%s)", sm[1], args)
	})
	shardBy := ShardingKey
	if k, ok := shardingKeys[table]; ok {
		shardBy = k
	}
	dist := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s AS %s.%s\nENGINE = Distributed(%s, %s, %s, %s)",
		db, table, cluster, db, local, cluster, db, local, shardBy)
	return []string{out, dist}
}
