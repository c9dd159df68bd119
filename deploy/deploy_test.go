package deploy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/model"
)

// repoRoot is the repository root, relative to this package's folder (where go test runs).
const repoRoot = ".."

// flowsDir holds the example flows both shapes mount.
var flowsDir = filepath.Join(repoRoot, "examples", "flows")

// The cluster name every part agrees on: remote_servers, `flowwatch schema --cluster`, the
// exporter's and the detector's `cluster`.
const clusterName = "flowwatch"

// ClickHouse's native protocol port, the one the DSNs must name.
const nativePort = 9000

// decodeStrict decodes YAML into v, rejecting fields v does not declare: a misspelt key in a
// deployment file is an error here, not a silently ignored setting.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

// decodeNodeStrict is decodeStrict for one node of a multi-document file.
func decodeNodeStrict(n *yaml.Node, v any) error {
	data, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Errorf("re-encode: %w", err)
	}
	return decodeStrict(data, v)
}

// mountTable says what a container sees at which path: target folder or file -> read-only.
type mountTable map[string]bool

// find returns the mount holding p (p itself or a parent folder) and whether it is read-only.
func (m mountTable) find(p string) (target string, readOnly, ok bool) {
	p = path.Clean(p)
	for {
		if ro, hit := m[p]; hit {
			return p, ro, true
		}
		if p == "/" || p == "." {
			return "", false, false
		}
		p = path.Dir(p)
	}
}

// hostResolver says whether a host name used in a configuration reaches something the shape
// deploys (or documents as external).
type hostResolver func(host string) bool

// collectorConfig is the part of an OTel collector configuration the deployment depends on.
type collectorConfig struct {
	Extensions map[string]map[string]any `yaml:"extensions"`
	Receivers  map[string]map[string]any `yaml:"receivers"`
	Processors map[string]map[string]any `yaml:"processors"`
	Exporters  map[string]map[string]any `yaml:"exporters"`
	Connectors map[string]map[string]any `yaml:"connectors"`
	Service    struct {
		Extensions []string `yaml:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
		Telemetry map[string]any `yaml:"telemetry"`
	} `yaml:"service"`
}

// collectorPorts are the ports a collector configuration listens on.
type collectorPorts struct {
	health, otlpGRPC, otlpHTTP, metrics int
}

// componentType is the type of a component ID ("otlp" of "otlp/2").
func componentType(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

// str reads a string setting of a component ("" when absent or not a string).
func str(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

// endpointPort is the port of a "host:port" listen address.
func endpointPort(endpoint string) (int, error) {
	_, p, err := net.SplitHostPort(endpoint)
	if err != nil {
		return 0, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("endpoint %q: bad port", endpoint)
	}
	return n, nil
}

var envRefRE = regexp.MustCompile(`^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$`)

// checkCollectorConfig validates a collector configuration as a container runs it: every
// component a pipeline names is defined and every defined one is used, the flow processor's
// flows and the persistent queue's folder are mounted (the queue writable), the exporter's DSN
// comes from a variable the container sets (or names a host the shape resolves). It returns
// the ports the configuration listens on.
func checkCollectorConfig(data []byte, mounts mountTable, env map[string]bool, resolve hostResolver) (collectorPorts, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var cfg collectorConfig
	var ports collectorPorts
	if err := decodeStrict(data, &cfg); err != nil {
		return ports, []error{fmt.Errorf("parse collector config: %w", err)}
	}

	used := map[string]map[string]bool{"receivers": {}, "processors": {}, "exporters": {}}
	if len(cfg.Service.Pipelines) == 0 {
		fail("service.pipelines: none defined")
	}
	for name, p := range cfg.Service.Pipelines {
		if len(p.Receivers) == 0 || len(p.Exporters) == 0 {
			fail("pipeline %s: needs receivers and exporters", name)
		}
		for kind, ids := range map[string][]string{"receivers": p.Receivers, "processors": p.Processors, "exporters": p.Exporters} {
			defined := map[string]map[string]map[string]any{"receivers": cfg.Receivers, "processors": cfg.Processors, "exporters": cfg.Exporters}[kind]
			for _, id := range ids {
				if _, ok := defined[id]; !ok {
					fail("pipeline %s: %s %q is not defined under %s", name, kind[:len(kind)-1], id, kind)
				}
				used[kind][id] = true
			}
		}
		// memory_limiter must see data first. Batching happens in the flow exporter's sending
		// queue, after its rows are on disk: a batch processor before it would acknowledge
		// spans that a crash of the collector loses.
		if i := slices.IndexFunc(p.Processors, func(id string) bool { return componentType(id) == "memory_limiter" }); i != 0 {
			fail("pipeline %s: memory_limiter must be the first processor (processors: %v)", name, p.Processors)
		}
		if !slices.ContainsFunc(p.Processors, func(id string) bool { return componentType(id) == "flow" }) {
			fail("pipeline %s: no flow processor", name)
		}
		if slices.ContainsFunc(p.Processors, func(id string) bool { return componentType(id) == "batch" }) {
			fail("pipeline %s: no batch processor before the flow exporter: it batches in its persistent sending queue, after the rows are on disk", name)
		}
	}
	for kind, defined := range map[string]map[string]map[string]any{"receivers": cfg.Receivers, "processors": cfg.Processors, "exporters": cfg.Exporters} {
		for id := range defined {
			if !used[kind][id] {
				fail("%s: %q is defined but no pipeline uses it", kind, id)
			}
		}
	}
	for _, id := range cfg.Service.Extensions {
		if _, ok := cfg.Extensions[id]; !ok {
			fail("service.extensions: %q is not defined under extensions", id)
		}
	}
	for id := range cfg.Extensions {
		if !slices.Contains(cfg.Service.Extensions, id) {
			fail("extensions: %q is defined but not enabled in service.extensions", id)
		}
	}

	// Ports.
	for id, c := range cfg.Extensions {
		if componentType(id) == "health_check" {
			p, err := endpointPort(str(c, "endpoint"))
			if err != nil {
				fail("extensions.%s: %v", id, err)
			}
			ports.health = p
		}
	}
	if ports.health == 0 {
		fail("extensions: no health_check (the probes need it)")
	}
	for id, c := range cfg.Receivers {
		if componentType(id) != "otlp" {
			continue
		}
		if ep := str(c, "protocols", "grpc", "endpoint"); ep != "" {
			p, err := endpointPort(ep)
			if err != nil {
				fail("receivers.%s.protocols.grpc: %v", id, err)
			}
			ports.otlpGRPC = p
		}
		if ep := str(c, "protocols", "http", "endpoint"); ep != "" {
			p, err := endpointPort(ep)
			if err != nil {
				fail("receivers.%s.protocols.http: %v", id, err)
			}
			ports.otlpHTTP = p
		}
	}
	if ports.otlpGRPC == 0 {
		fail("receivers: no otlp gRPC endpoint")
	}
	if readers, ok := cfg.Service.Telemetry["metrics"].(map[string]any)["readers"].([]any); ok {
		for _, r := range readers {
			prom, _ := r.(map[string]any)
			if pull, ok := prom["pull"].(map[string]any); ok {
				if exp, ok := pull["exporter"].(map[string]any); ok {
					if pm, ok := exp["prometheus"].(map[string]any); ok {
						if p, ok := pm["port"].(int); ok {
							ports.metrics = p
						}
					}
				}
			}
		}
	}

	// The flow processor reads flows from mounted folders.
	for id, c := range cfg.Processors {
		if componentType(id) != "flow" {
			continue
		}
		flows, _ := c["flows"].([]any)
		if len(flows) == 0 {
			fail("processors.%s.flows: empty", id)
		}
		for _, f := range flows {
			fp, _ := f.(string)
			if _, _, ok := mounts.find(fp); !ok {
				fail("processors.%s.flows: %q is not mounted in the container", id, fp)
			}
		}
		if d, ok := c["reload_interval"].(string); ok {
			if v, err := time.ParseDuration(d); err != nil || v <= 0 {
				fail("processors.%s.reload_interval: %q is not a positive duration", id, d)
			}
		}
	}

	// The flow exporter: DSN, cluster, persistent queue.
	flowExporters := 0
	for id, c := range cfg.Exporters {
		if componentType(id) != "flow" {
			continue
		}
		flowExporters++
		if str(c, "path") != "" {
			fail("exporters.%s.path: the scaled-out shape writes to a ClickHouse server (the image has no chDB)", id)
		}
		dsn := str(c, "endpoint")
		if m := envRefRE.FindStringSubmatch(dsn); m != nil {
			if !env[m[1]] {
				fail("exporters.%s.endpoint: ${env:%s} but the container does not set %s", id, m[1], m[1])
			}
		} else if err := checkDSN(dsn, resolve); err != nil {
			fail("exporters.%s.endpoint: %v", id, err)
		}
		if got := str(c, "cluster"); got != clusterName {
			fail("exporters.%s.cluster: %q, want %q (the remote_servers cluster)", id, got, clusterName)
		}
		if create, _ := c["create_schema"].(bool); create {
			fail("exporters.%s.create_schema: the schema job applies the cluster DDL once; N collectors racing ON CLUSTER DDL is not wanted", id)
		}
		q, _ := c["sending_queue"].(map[string]any)
		storage, _ := q["storage"].(string)
		if storage == "" {
			fail("exporters.%s.sending_queue.storage: not set (the queue must be persistent)", id)
			continue
		}
		ext, ok := cfg.Extensions[storage]
		if !ok || componentType(storage) != "file_storage" {
			fail("exporters.%s.sending_queue.storage: %q is not a file_storage extension of this config", id, storage)
			continue
		}
		dir := str(ext, "directory")
		if _, ro, ok := mounts.find(dir); !ok || ro {
			fail("extensions.%s.directory: %q must be on a writable volume (the root file system is read-only)", storage, dir)
		}
	}
	if flowExporters == 0 {
		fail("exporters: no flow exporter")
	}
	return ports, errs
}

// queueDirectories are the folders of the file_storage extensions that hold the flow
// exporters' sending queues (checkCollectorConfig reports a queue without one).
func queueDirectories(data []byte) ([]string, error) {
	var cfg collectorConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("parse collector config: %w", err)
	}
	var dirs []string
	for id, c := range cfg.Exporters {
		if componentType(id) != "flow" {
			continue
		}
		storage := str(c, "sending_queue", "storage")
		if dir := str(cfg.Extensions[storage], "directory"); dir != "" {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// checkDSN checks a ClickHouse DSN of the server transport: clickhouse://[user[:pw]@]host:9000/db.
func checkDSN(dsn string, resolve hostResolver) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("parse %q: %w", dsn, err)
	}
	if u.Scheme != "clickhouse" {
		return fmt.Errorf("%q: scheme %q, want clickhouse (the native protocol)", dsn, u.Scheme)
	}
	if u.Port() != strconv.Itoa(nativePort) {
		return fmt.Errorf("%q: port %q, want %d (native protocol)", dsn, u.Port(), nativePort)
	}
	if !resolve(u.Hostname()) {
		return fmt.Errorf("%q: host %q is not deployed by this shape", dsn, u.Hostname())
	}
	if strings.Trim(u.Path, "/") == "" {
		return fmt.Errorf("%q: no database", dsn)
	}
	return nil
}

// detectorConfig is the detector's own configuration type: a key it does not know is an error
// here as it is when the detector starts.
type detectorConfig = detector.FileConfig

type sinkConfig = detector.SinkFile

// checkDetectorConfig validates a detector configuration as a container runs it. It returns
// the parsed configuration and the API's listen port.
func checkDetectorConfig(data []byte, mounts mountTable, resolve hostResolver) (detectorConfig, int, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var cfg detectorConfig
	if err := decodeStrict(data, &cfg); err != nil {
		return cfg, 0, []error{fmt.Errorf("parse detector config: %w", err)}
	}
	if cfg.Store.Embedded != "" {
		fail("store.embedded: the scaled-out shape uses the server transport (the image has no chDB)")
	}
	if err := checkDSN(cfg.Store.DSN, resolve); err != nil {
		fail("store.dsn: %v", err)
	}
	if cfg.Store.Cluster != clusterName {
		fail("store.cluster: %q, want %q", cfg.Store.Cluster, clusterName)
	}
	if len(cfg.Flows) == 0 {
		fail("flows: empty")
	}
	for _, f := range cfg.Flows {
		if _, _, ok := mounts.find(f); !ok {
			fail("flows: %q is not mounted in the container", f)
		}
	}
	for key, d := range map[string]detector.Duration{"tick": cfg.Tick, "alerting.resend": cfg.Alerting.Resend} {
		if d <= 0 {
			fail("%s: must be set to a positive duration", key)
		}
	}
	if cfg.Shard.Count < 1 || cfg.Shard.Index < 0 || cfg.Shard.Index >= cfg.Shard.Count {
		fail("shard: index %d, count %d: want 0 <= index < count", cfg.Shard.Index, cfg.Shard.Count)
	}
	port, err := endpointPort(cfg.Listen)
	if err != nil {
		fail("listen: %v", err)
	}
	if len(cfg.Alerting.Alertmanagers) == 0 {
		fail("alerting.alertmanagers: empty")
	}
	for _, am := range cfg.Alerting.Alertmanagers {
		if err := checkURL(am.URL, resolve, "http", "https"); err != nil {
			fail("alerting.alertmanagers: %v", err)
		}
	}
	names := map[string]bool{}
	for i, s := range cfg.Sinks {
		if s.Name == "" || names[s.Name] {
			fail("sinks[%d]: name %q is empty or repeated", i, s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case "nats":
			if err := checkURL(s.URL, resolve, "nats"); err != nil {
				fail("sinks[%d] (%s): %v", i, s.Name, err)
			}
			if s.Stream == "" || len(s.Subjects) == 0 {
				fail("sinks[%d] (%s): a nats sink needs stream and subjects", i, s.Name)
			}
		case "webhook":
			if err := checkURL(s.URL, resolve, "http", "https"); err != nil {
				fail("sinks[%d] (%s): %v", i, s.Name, err)
			}
		default:
			fail("sinks[%d] (%s): type %q, want nats or webhook", i, s.Name, s.Type)
		}
		if s.Rate <= 0 {
			fail("sinks[%d] (%s): rate must be positive", i, s.Name)
		}
	}
	// Every sink the flows' on_stuck actions name must exist, or their commands go nowhere; a
	// NATS action's subject must be one the sink's stream captures (the detector creates or
	// updates the stream with exactly these subjects, then publishes to the action's subject).
	reported := map[string]bool{}
	for _, a := range flowActions() {
		if reported[a.sink+" "+a.subject] {
			continue
		}
		reported[a.sink+" "+a.subject] = true
		i := slices.IndexFunc(cfg.Sinks, func(s sinkConfig) bool { return s.Name == a.sink })
		if i < 0 {
			fail("sinks: flow %s checkpoint %s uses sink %q, which is not configured", a.flow, a.checkpoint, a.sink)
			continue
		}
		if s := cfg.Sinks[i]; s.Type == "nats" {
			subject := cmp.Or(a.subject, defaultNATSSubject)
			if !slices.ContainsFunc(s.Subjects, func(f string) bool { return natsSubjectMatches(f, subject) }) {
				fail("sinks[%d] (%s): subjects %v do not capture %q (flow %s checkpoint %s): the publish would fail", i, s.Name, s.Subjects, subject, a.flow, a.checkpoint)
			}
		}
	}
	return cfg, port, errs
}

// checkURL checks a URL's scheme and that its host resolves in the shape.
func checkURL(raw string, resolve hostResolver, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse %q: %w", raw, err)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("%q: scheme %q, want one of %v", raw, u.Scheme, schemes)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if !resolve(u.Hostname()) {
		return fmt.Errorf("%q: host %q is not deployed by this shape", raw, u.Hostname())
	}
	return nil
}

// exampleFlows loads examples/flows as both shapes mount it.
func exampleFlows(t *testing.T) *model.Set {
	t.Helper()
	set, err := model.Load(flowsDir)
	if err != nil {
		t.Fatalf("load %s: %v", flowsDir, err)
	}
	if len(set.Names()) == 0 {
		t.Fatalf("%s: no flows", flowsDir)
	}
	return set
}

// flowAction is an on_stuck action of an example flow.
type flowAction struct {
	flow, checkpoint, sink, subject string
}

// flowActions lists the on_stuck actions of the example flows.
func flowActions() []flowAction {
	set, err := model.Load(flowsDir)
	if err != nil {
		return nil // reported by exampleFlows
	}
	var out []flowAction
	for _, name := range set.Names() {
		for _, f := range set.Versions(name) {
			for _, cp := range f.Checkpoints {
				for _, a := range cp.OnStuck {
					out = append(out, flowAction{f.Name, cp.Name, a.Sink, a.Subject})
				}
			}
		}
	}
	return out
}

// natsSubjectMatches says whether a NATS subject falls under a subject filter ("*" one token,
// ">" the rest).
func natsSubjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		switch {
		case f == ">":
			return i < len(st)
		case i >= len(st):
			return false
		case f != "*" && f != st[i]:
			return false
		}
	}
	return len(ft) == len(st)
}

// defaultNATSSubject is where the detector publishes an action without a subject.
const defaultNATSSubject = "flowwatch.commands"

// registeredCommands lists the subcommands cmd/flowwatch registers (register("name", ...)).
func registeredCommands(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "cmd", "flowwatch", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("list cmd/flowwatch: %v (%d files)", err, len(files))
	}
	re := regexp.MustCompile(`register\(\s*"([a-z-]+)"`)
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(data, -1) {
			out[string(m[1])] = true
		}
	}
	return out
}

// The subcommands the deployment runs, and the one flag each takes a file from.
var deployedCommands = []string{"collector", "detector", "schema", "demo"}

func TestDeployedCommandsAreRegistered(t *testing.T) {
	cmds := registeredCommands(t)
	for _, c := range deployedCommands {
		if !cmds[c] {
			t.Errorf("the deployment runs `flowwatch %s`, which cmd/flowwatch does not register", c)
		}
	}
}

// flagValue returns the value of --name (or -name) in args: "--name value" or "--name=value".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--" + name, "-" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// TestDockerfile checks the image build: a Go builder on the go.mod toolchain building
// ./cmd/flowwatch without cgo (no chDB in the image), a small runtime stage copying only the
// binary, running as a non-root user.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod: no go directive")
	}

	type stage struct {
		from, name string
		lines      []string
	}
	var stages []stage
	args := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var logical string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			logical += cont + " "
			continue
		}
		line, logical = logical+line, ""
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "ARG":
			if k, v, ok := strings.Cut(rest, "="); ok && len(stages) == 0 {
				args[k] = v
			}
		case "FROM":
			f := strings.Fields(rest)
			s := stage{from: os.Expand(f[0], func(k string) string { return args[k] })}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if strings.ToUpper(instr) != "ARG" {
				t.Fatalf("Dockerfile: %s before the first FROM", instr)
			}
			continue
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	if want := "golang:" + string(goLine[1]); !strings.HasPrefix(build.from, want) {
		t.Errorf("build stage FROM %s, want %s* (go.mod says go %s)", build.from, want, goLine[1])
	}
	var goBuild string
	for _, l := range build.lines {
		if strings.Contains(l, "go build") {
			goBuild = l
		}
	}
	switch {
	case goBuild == "":
		t.Error("build stage: no `go build`")
	default:
		if !strings.Contains(goBuild, "CGO_ENABLED=0") {
			t.Error("go build: CGO_ENABLED=0 expected (static binary, no libchdb.so)")
		}
		if strings.Contains(goBuild, "chdb") {
			t.Error("go build: the scaled-out image must not build the chdb tag")
		}
		if !strings.Contains(goBuild, "./cmd/flowwatch") {
			t.Error("go build: does not build ./cmd/flowwatch")
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "cmd", "flowwatch")); err != nil {
		t.Errorf("build target: %v", err)
	}

	for _, img := range []string{final.from, build.from} {
		if !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
			t.Errorf("FROM %s: pin a tag", img)
		}
	}
	// A binary that binds C libraries through purego is linked against glibc's loader even
	// with CGO_ENABLED=0: it does not start on musl (alpine) or without a libc.
	if usesPurego(t) {
		for _, bad := range []string{"alpine", "scratch", "distroless/static", "busybox"} {
			if strings.Contains(final.from, bad) {
				t.Errorf("final stage FROM %s: ./cmd/flowwatch uses purego, so the binary needs glibc (ld-linux); use a glibc image", final.from)
			}
		}
	}
	var user, entrypoint string
	for _, l := range final.lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "COPY":
			if !strings.Contains(rest, "--from="+build.name) {
				t.Errorf("final stage: COPY %s: copy only from the build stage", rest)
			}
			if strings.Contains(rest, "chdb") {
				t.Errorf("final stage: COPY %s: no chDB in the scaled-out image", rest)
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); user == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage: USER %q, want a non-root user", user)
	}
	if !strings.Contains(entrypoint, "flowwatch") {
		t.Errorf("final stage: ENTRYPOINT %s, want the flowwatch binary", entrypoint)
	}
}

// reportErrs reports each error as a test failure, prefixed with where it was found.
func reportErrs(t *testing.T, where string, errs []error) {
	t.Helper()
	for _, err := range errs {
		t.Errorf("%s: %v", where, err)
	}
}

// isNotExist says whether err means "no such file".
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

func TestNATSSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		filter, subject string
		want            bool
	}{
		{"payments.>", "payments.retry", true},
		{"payments.>", "payments", false},
		{"payments.*", "payments.retry", true},
		{"payments.*", "payments.retry.now", false},
		{"flowwatch.>", "payments.retry", false},
		{"payments.retry", "payments.retry", true},
		{"payments.retry", "payments.retry.x", false},
		{">", "a.b", true},
	} {
		if got := natsSubjectMatches(c.filter, c.subject); got != c.want {
			t.Errorf("natsSubjectMatches(%q, %q) = %v, want %v", c.filter, c.subject, got, c.want)
		}
	}
}

// usesPurego says whether ./cmd/flowwatch, built as the image builds it, links purego.
func usesPurego(t *testing.T) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/flowwatch")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/flowwatch: %v", err)
	}
	return slices.Contains(strings.Fields(string(out)), "github.com/ebitengine/purego")
}
