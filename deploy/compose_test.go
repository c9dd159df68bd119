package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// composeFile is the resolved output of `docker-compose config`: paths absolute, anchors and
// variables expanded, short forms normalised.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Hostname    string            `yaml:"hostname"`
	Build       *composeBuild     `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Restart     string            `yaml:"restart"`
	ReadOnly    bool              `yaml:"read_only"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Networks map[string]*struct {
		Aliases []string `yaml:"aliases"`
	} `yaml:"networks"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// composeMount is one entry of a service's volumes.
type composeMount struct {
	source, target string
	bind, readOnly bool
}

func (s composeService) mounts() []composeMount {
	var out []composeMount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := composeMount{source: parts[0]}
		if len(parts) > 1 {
			m.target = parts[1]
		}
		if len(parts) > 2 {
			m.readOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
		}
		m.bind = strings.HasPrefix(m.source, "/") || strings.HasPrefix(m.source, ".")
		out = append(out, m)
	}
	return out
}

// binds maps bind-mount targets to their host sources.
func (s composeService) binds() map[string]string {
	out := map[string]string{}
	for _, m := range s.mounts() {
		if m.bind {
			out[m.target] = m.source
		}
	}
	return out
}

// mountTable is what the container sees; with a read-only root file system, nothing else is
// writable.
func (s composeService) mountTable() mountTable {
	mt := mountTable{}
	for _, m := range s.mounts() {
		mt[m.target] = m.readOnly
	}
	return mt
}

// healthcheckURL is the URL a healthcheck command fetches ("" when none).
func (s composeService) healthcheckURL() *url.URL {
	if s.Healthcheck == nil {
		return nil
	}
	for _, a := range s.Healthcheck.Test {
		if strings.HasPrefix(a, "http://") {
			u, err := url.Parse(a)
			if err == nil {
				return u
			}
		}
	}
	return nil
}

func (s composeService) healthcheckPort() int {
	u := s.healthcheckURL()
	if u == nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// publishedContainerPorts are the container ports of `ports:` ("127.0.0.1:8080:8080/tcp").
func (s composeService) publishedContainerPorts() []int {
	var out []int
	for _, p := range s.Ports {
		p, _, _ = strings.Cut(p, "/")
		i := strings.LastIndex(p, ":")
		n, _ := strconv.Atoi(p[i+1:])
		out = append(out, n)
	}
	return out
}

func (s composeService) aliases() []string {
	var out []string
	for _, n := range s.Networks {
		if n != nil {
			out = append(out, n.Aliases...)
		}
	}
	return out
}

// flowwatchCommand is the subcommand a flowwatch-image service runs ("" for other images).
func (f composeFile) flowwatchCommand(name string) string {
	s := f.Services[name]
	if s.Build == nil || len(s.Command) == 0 {
		return ""
	}
	return s.Command[0]
}

// resolver says which host names the compose network resolves: service names and aliases.
func (f composeFile) resolver() hostResolver {
	hosts := map[string]bool{}
	for name, s := range f.Services {
		hosts[name] = true
		for _, a := range s.aliases() {
			hosts[a] = true
		}
	}
	return func(h string) bool { return hosts[h] || strings.HasSuffix(h, ".invalid") }
}

// servicesAnswering lists the services reachable under a host name.
func (f composeFile) servicesAnswering(host string) []string {
	var out []string
	for name, s := range f.Services {
		if name == host || slices.Contains(s.aliases(), host) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// composeConfig runs Debian's docker-compose (no engine needed) on a compose file and parses
// its resolved output. The environment is emptied so the defaults in the file are what is
// checked. docker-compose is installed by `make deps`; its absence fails the test.
func composeConfig(t *testing.T, file string) composeFile {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is needed to validate %s (`make deps` installs it): %v", file, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--ansi", "never", "-f", file, "config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker-compose -f %s config: %v\n%s", file, err, stderr.String())
	}
	if w := strings.TrimSpace(stderr.String()); w != "" {
		t.Errorf("docker-compose -f %s config warns (unset variable?):\n%s", file, w)
	}
	var f composeFile
	if err := yaml.Unmarshal(stdout.Bytes(), &f); err != nil {
		t.Fatalf("parse resolved %s: %v", file, err)
	}
	if len(f.Services) == 0 {
		t.Fatalf("%s: no services", file)
	}
	return f
}

// buildOutputs may be mounted before they exist: they are built, not committed.
var buildOutputs = []string{filepath.Join("grafana-plugin", "dist")}

// checkComposeGraph checks what any compose file here must hold: pinned images, bind sources
// that exist, named volumes that are declared, depends_on that names services able to meet
// the condition, no dependency cycle, host ports published once, loopback only.
func checkComposeGraph(t *testing.T, f composeFile) {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	hostPorts := map[string]string{}
	for name, s := range f.Services {
		if s.Image == "" {
			t.Errorf("service %s: no image", name)
		} else if tag := s.Image[strings.LastIndex(s.Image, ":")+1:]; !strings.Contains(s.Image, ":") || tag == "latest" {
			t.Errorf("service %s: image %q: pin a version", name, s.Image)
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("service %s: build: %v", name, err)
			}
		}
		for _, m := range s.mounts() {
			switch {
			case m.target == "":
				t.Errorf("service %s: volume %q has no target", name, m.source)
			case m.bind:
				if _, err := os.Stat(m.source); err != nil {
					rel, _ := filepath.Rel(root, m.source)
					if !isNotExist(err) || !slices.Contains(buildOutputs, rel) {
						t.Errorf("service %s: mounts %s: %v", name, m.source, err)
					}
				}
			default:
				if _, ok := f.Volumes[m.source]; !ok {
					t.Errorf("service %s: named volume %q is not declared under volumes", name, m.source)
				}
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := f.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s: depends_on %s, which does not exist", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("service %s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			case d.Condition == "service_completed_successfully" && target.Restart != "no":
				t.Errorf("service %s: waits for %s to complete, but %s restarts (%q)", name, dep, dep, target.Restart)
			}
		}
		for _, p := range s.Ports {
			p, _, _ = strings.Cut(p, "/")
			parts := strings.Split(p, ":")
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("service %s: port %q: publish on 127.0.0.1 only", name, p)
				continue
			}
			hp := parts[0] + ":" + parts[1]
			if other, dup := hostPorts[hp]; dup {
				t.Errorf("service %s: host port %s is also published by %s", name, hp, other)
			}
			hostPorts[hp] = name
		}
	}
	// depends_on must not loop.
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, []string)
	visit = func(n string, trail []string) {
		switch state[n] {
		case 1:
			t.Errorf("depends_on cycle: %s", strings.Join(append(trail, n), " -> "))
			return
		case 2:
			return
		}
		state[n] = 1
		for dep := range f.Services[n].DependsOn {
			visit(dep, append(trail, n))
		}
		state[n] = 2
	}
	for n := range f.Services {
		visit(n, nil)
	}
}

// TestCompose validates deploy/compose/docker-compose.yaml with docker-compose itself, then
// checks what it cannot: the parts the scaled-out shape needs are there, and every reference
// between the services and their configuration files holds.
func TestCompose(t *testing.T) {
	f := composeConfig(t, filepath.Join("compose", "docker-compose.yaml"))
	checkComposeGraph(t, f)
	resolve := f.resolver()
	exampleFlows(t)

	byCommand := map[string][]string{}
	byImage := map[string][]string{}
	for name, s := range f.Services {
		if c := f.flowwatchCommand(name); c != "" {
			byCommand[c] = append(byCommand[c], name)
			if !slices.Contains(deployedCommands, c) {
				t.Errorf("service %s: runs `flowwatch %s`, not one of %v", name, c, deployedCommands)
			}
			if !s.ReadOnly {
				t.Errorf("service %s: flowwatch containers run with a read-only root file system", name)
			}
		}
		repo, _, _ := strings.Cut(s.Image, ":")
		byImage[repo] = append(byImage[repo], name)
	}
	for _, names := range byCommand {
		slices.Sort(names)
	}
	for cmd, want := range map[string]int{"collector": 2, "detector": 2, "schema": 1, "demo": 1} {
		if got := len(byCommand[cmd]); got != want {
			t.Errorf("%d services run `flowwatch %s` (%v), want %d", got, cmd, byCommand[cmd], want)
		}
	}
	for _, repo := range []string{"clickhouse/clickhouse-server", "clickhouse/clickhouse-keeper", "prom/alertmanager", "nats", "grafana/grafana"} {
		if len(byImage[repo]) != 1 {
			t.Errorf("want one service from image %s, have %v", repo, byImage[repo])
		}
	}
	one := func(repo string) (string, composeService) {
		if len(byImage[repo]) == 0 {
			t.Fatalf("no service from image %s", repo)
		}
		n := byImage[repo][0]
		return n, f.Services[n]
	}

	// ClickHouse: an LTS server, the one-node cluster, Keeper.
	chName, ch := one("clickhouse/clickhouse-server")
	keeperName, keeper := one("clickhouse/clickhouse-keeper")
	for n, s := range map[string]composeService{chName: ch, keeperName: keeper} {
		repo, _, _ := strings.Cut(s.Image, ":")
		if err := checkClickHouseImage(s.Image, repo); err != nil {
			t.Errorf("service %s: %v", n, err)
		}
	}
	if tag := func(s string) string { v, _, _ := strings.Cut(s[strings.Index(s, ":")+1:], "-"); return v }; tag(ch.Image) != tag(keeper.Image) {
		t.Errorf("ClickHouse %s and Keeper %s: keep them on one release", ch.Image, keeper.Image)
	}
	var chCfg *chConfig
	for target, src := range ch.binds() {
		if strings.HasPrefix(target, "/etc/clickhouse-server/config.d/") {
			c, err := readCHConfig(src)
			if err != nil {
				t.Fatal(err)
			}
			chCfg = c
		}
	}
	if chCfg == nil {
		t.Fatalf("service %s: mounts no config.d file", chName)
	}
	cl := chCfg.cluster(clusterName)
	if cl == nil {
		t.Fatalf("service %s: no remote_servers cluster %q", chName, clusterName)
	}
	shards, errs := clusterShape(cl, 1, 1)
	reportErrs(t, "compose/clickhouse", errs)
	for _, s := range shards {
		for _, r := range s {
			if got := f.servicesAnswering(r.Host); !slices.Equal(got, []string{chName}) {
				t.Errorf("cluster %s: replica %s resolves to %v, want [%s]", clusterName, r, got, chName)
			}
		}
	}
	if cl.Secret != nil && cl.Secret.FromEnv != "" && ch.Environment[cl.Secret.FromEnv] == "" {
		t.Errorf("service %s: the cluster secret comes from %s, which is not set", chName, cl.Secret.FromEnv)
	}
	if m := chCfg.Macros; m == nil || m.Shard == "" || m.Replica == "" || m.Cluster != clusterName {
		t.Errorf("service %s: macros %+v: want cluster %s, shard and replica", chName, m, clusterName)
	}
	keeperCfg, err := readCHConfig(keeper.binds()["/etc/clickhouse-keeper/keeper_config.xml"])
	if err != nil {
		t.Fatalf("service %s: keeper_config.xml: %v", keeperName, err)
	}
	raft, errs := keeperEnsemble(map[string]*chConfig{keeperName: keeperCfg})
	reportErrs(t, "compose/clickhouse/keeper.xml", errs)
	for _, r := range raft {
		if r.Hostname != keeperName {
			t.Errorf("keeper raft server %d: host %s, want %s", r.ID, r.Hostname, keeperName)
		}
	}
	if chCfg.ZooKeeper == nil || len(chCfg.ZooKeeper.Nodes) != 1 {
		t.Errorf("service %s: want one <zookeeper> node, the Keeper", chName)
	} else if n := chCfg.ZooKeeper.Nodes[0]; n.Host != keeperName || n.Port != keeperCfg.KeeperServer.TCPPort {
		t.Errorf("service %s: zookeeper %s, Keeper listens on %s:%d", chName, n, keeperName, keeperCfg.KeeperServer.TCPPort)
	}
	if hc := keeperCfg.KeeperServer.HTTPControl; hc != nil && keeper.healthcheckPort() != hc.Port {
		t.Errorf("service %s: healthcheck port %d, http_control port %d", keeperName, keeper.healthcheckPort(), hc.Port)
	}
	if _, ok := ch.DependsOn[keeperName]; !ok {
		t.Errorf("service %s: must wait for %s", chName, keeperName)
	}

	// schema-init applies the cluster DDL before anything writes.
	for _, name := range byCommand["schema"] {
		s := f.Services[name]
		if c, _ := flagValue(s.Command, "cluster"); c != clusterName {
			t.Errorf("service %s: --cluster %q, want %q", name, c, clusterName)
		}
		dsn, _ := flagValue(s.Command, "apply")
		if err := checkDSN(dsn, resolve); err != nil {
			t.Errorf("service %s: --apply: %v", name, err)
		}
		if d, ok := s.DependsOn[chName]; !ok || d.Condition != "service_healthy" {
			t.Errorf("service %s: must wait for %s to be healthy", name, chName)
		}
	}
	waitsForSchema := func(name string) {
		for _, sch := range byCommand["schema"] {
			if d := f.Services[name].DependsOn[sch]; d.Condition != "service_completed_successfully" {
				t.Errorf("service %s: must wait for %s to complete", name, sch)
			}
		}
	}

	// Collectors.
	var otlpPort int
	for _, name := range byCommand["collector"] {
		s := f.Services[name]
		waitsForSchema(name)
		cfg := configOf(t, name, s)
		env := map[string]bool{}
		for k := range s.Environment {
			env[k] = true
		}
		ports, errs := checkCollectorConfig(cfg, s.mountTable(), env, resolve)
		reportErrs(t, "service "+name+": collector config", errs)
		checkComposeQueueVolume(t, f, name, s, cfg)
		if s.healthcheckPort() != ports.health {
			t.Errorf("service %s: healthcheck port %d, health_check listens on %d", name, s.healthcheckPort(), ports.health)
		}
		for _, p := range s.publishedContainerPorts() {
			if p != ports.otlpGRPC && p != ports.otlpHTTP {
				t.Errorf("service %s: publishes container port %d, which is not an OTLP port of its config", name, p)
			}
		}
		if dsn := s.Environment["FLOWWATCH_CLICKHOUSE_DSN"]; dsn != "" {
			if err := checkDSN(dsn, resolve); err != nil {
				t.Errorf("service %s: FLOWWATCH_CLICKHOUSE_DSN: %v", name, err)
			}
		}
		otlpPort = ports.otlpGRPC
	}

	// Detectors: one service per shard, indexes 0..count-1.
	indexes := map[string]string{}
	var apiPort int
	for _, name := range byCommand["detector"] {
		s := f.Services[name]
		waitsForSchema(name)
		cfg, port, errs := checkDetectorConfig(configOf(t, name, s), s.mountTable(), resolve)
		reportErrs(t, "service "+name+": detector config", errs)
		if cfg.Shard.Count != len(byCommand["detector"]) {
			t.Errorf("service %s: shard.count %d, but %d detector services run", name, cfg.Shard.Count, len(byCommand["detector"]))
		}
		idx, ok := s.Environment["FLOWWATCH_SHARD_INDEX"]
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= cfg.Shard.Count {
			t.Errorf("service %s: FLOWWATCH_SHARD_INDEX %q, want 0..%d", name, idx, cfg.Shard.Count-1)
		}
		if other, dup := indexes[idx]; dup {
			t.Errorf("services %s and %s: both shard %s", other, name, idx)
		}
		indexes[idx] = name
		if u := s.healthcheckURL(); u == nil || u.Path != "/readyz" || u.Port() != strconv.Itoa(port) {
			t.Errorf("service %s: healthcheck %v, want /readyz on the API port %d", name, u, port)
		}
		for _, p := range s.publishedContainerPorts() {
			if p != port {
				t.Errorf("service %s: publishes container port %d, the API listens on %d", name, p, port)
			}
		}
		for _, am := range cfg.Alerting.Alertmanagers {
			u, _ := url.Parse(am.URL)
			for _, svc := range f.servicesAnswering(u.Hostname()) {
				if _, ok := s.DependsOn[svc]; !ok {
					t.Errorf("service %s: sends alerts to %s but does not depend on it", name, svc)
				}
			}
		}
		apiPort = port
	}

	// Alertmanager: its mounted configuration passes Alertmanager's own check (amtool, from
	// Debian's prometheus-alertmanager, which `make deps` installs).
	amName, am := one("prom/alertmanager")
	amFile := ""
	if v, ok := flagValue(am.Command, "config.file"); ok {
		amFile = am.binds()[v]
	}
	if amFile == "" {
		t.Errorf("service %s: --config.file is not a mounted file", amName)
	} else {
		amtool, err := exec.LookPath("amtool")
		if err != nil {
			t.Fatalf("amtool is needed to check %s (`make deps` installs prometheus-alertmanager): %v", amFile, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, amtool, "check-config", amFile).CombinedOutput()
		if err != nil {
			t.Errorf("service %s: amtool check-config %s: %v\n%s", amName, amFile, err, out)
		}
	}

	// NATS with JetStream.
	natsName, nats := one("nats")
	if !slices.Contains(nats.Command, "--jetstream") && !slices.Contains(nats.Command, "-js") {
		t.Errorf("service %s: JetStream is not enabled (%v)", natsName, nats.Command)
	}

	// Grafana: the plugin folder under its id, allowed unsigned; provisioning mounted; the
	// datasource URL reaching the detectors' API.
	gName, g := one("grafana/grafana")
	pluginID := ""
	for target, src := range g.binds() {
		if id, ok := strings.CutPrefix(target, "/var/lib/grafana/plugins/"); ok {
			pluginID = id
			if !sameFile(src, filepath.Join(repoRoot, "grafana-plugin", "dist")) {
				t.Errorf("service %s: plugin mounted from %s, want grafana-plugin/dist", gName, src)
			}
		}
		if target == "/etc/grafana/provisioning" && !sameFile(src, filepath.Join(repoRoot, "grafana-plugin", "provisioning")) {
			t.Errorf("service %s: provisioning mounted from %s, want grafana-plugin/provisioning", gName, src)
		}
	}
	if _, ok := g.binds()["/etc/grafana/provisioning"]; !ok {
		t.Errorf("service %s: grafana-plugin/provisioning is not mounted", gName)
	}
	if pluginID == "" {
		t.Errorf("service %s: no plugin mounted under /var/lib/grafana/plugins", gName)
	} else {
		if !slices.Contains(strings.Split(g.Environment["GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"], ","), pluginID) {
			t.Errorf("service %s: GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS must list %s", gName, pluginID)
		}
		if dep, err := grafanaPluginDependency(); err == nil {
			_, tag, _ := strings.Cut(g.Image, ":")
			if !versionAtLeast(tag, dep) {
				t.Errorf("service %s: image %s, but the plugin needs Grafana %s (plugin.json dependencies.grafanaDependency)", gName, g.Image, dep)
			}
		} else if !isNotExist(err) {
			t.Error(err)
		}
		if id, err := grafanaPluginID(); err == nil && id != pluginID {
			t.Errorf("service %s: plugin mounted as %s, grafana-plugin/src/plugin.json says %s", gName, pluginID, id)
		} else if err != nil && !isNotExist(err) {
			t.Error(err)
		}
	}
	checkGrafanaProvisioning(t, gName, g, pluginID)
	if err := checkURL(g.Environment["FLOWWATCH_API_URL"], resolve, "http"); err != nil {
		t.Errorf("service %s: FLOWWATCH_API_URL: %v", gName, err)
	} else {
		u, _ := url.Parse(g.Environment["FLOWWATCH_API_URL"])
		answering := f.servicesAnswering(u.Hostname())
		if !slices.Equal(answering, byCommand["detector"]) || u.Port() != strconv.Itoa(apiPort) {
			t.Errorf("service %s: FLOWWATCH_API_URL %s reaches %v, want the detectors %v on %d", gName, u, answering, byCommand["detector"], apiPort)
		}
	}

	// Demo traffic: OTLP to the collectors, commands from NATS.
	for _, name := range byCommand["demo"] {
		s := f.Services[name]
		otlp, _ := flagValue(s.Command, "otlp")
		host, port, err := net.SplitHostPort(otlp)
		if err != nil {
			t.Errorf("service %s: --otlp %q: %v", name, otlp, err)
		} else {
			if got := f.servicesAnswering(host); !slices.Equal(got, byCommand["collector"]) {
				t.Errorf("service %s: --otlp %s reaches %v, want every collector %v", name, otlp, got, byCommand["collector"])
			}
			if port != strconv.Itoa(otlpPort) {
				t.Errorf("service %s: --otlp port %s, the collectors' OTLP gRPC port is %d", name, port, otlpPort)
			}
		}
		natsURL, _ := flagValue(s.Command, "nats")
		if err := checkURL(natsURL, resolve, "nats"); err != nil {
			t.Errorf("service %s: --nats: %v", name, err)
		}
		for _, c := range byCommand["collector"] {
			if d := s.DependsOn[c]; d.Condition != "service_healthy" {
				t.Errorf("service %s: must wait for %s to be healthy", name, c)
			}
		}
	}

	checkComposeReachability(t, f)
}

// checkComposeQueueVolume checks that a collector's persistent queue lives on a named volume
// the file declares: a restarted or re-created container finds the rows it had queued.
func checkComposeQueueVolume(t *testing.T, f composeFile, name string, s composeService, cfg []byte) {
	t.Helper()
	dirs, err := queueDirectories(cfg)
	if err != nil {
		t.Errorf("service %s: %v", name, err)
		return
	}
	for _, dir := range dirs {
		target, _, ok := s.mountTable().find(dir)
		if !ok {
			continue // checkCollectorConfig reports it
		}
		i := slices.IndexFunc(s.mounts(), func(m composeMount) bool { return m.target == target })
		m := s.mounts()[i]
		if _, declared := f.Volumes[m.source]; m.bind || !declared {
			t.Errorf("service %s: the queue folder %s is on %s, not a named volume of the file", name, dir, m.source)
		}
	}
}

// configOf reads the file a flowwatch service's --config names, through its bind mounts.
func configOf(t *testing.T, name string, s composeService) []byte {
	t.Helper()
	p, ok := flagValue(s.Command, "config")
	if !ok {
		t.Fatalf("service %s: no --config", name)
	}
	src, ok := s.binds()[p]
	if !ok {
		t.Fatalf("service %s: --config %s is not a mounted file", name, p)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return data
}

// grafanaPluginID reads the plugin id from grafana-plugin/src/plugin.json.
func grafanaPluginID() (string, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "grafana-plugin", "src", "plugin.json"))
	if err != nil {
		return "", err
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return "", err
	}
	return p.ID, nil
}

// composeEndpoint is a host:port some service is configured to reach.
type composeEndpoint struct {
	where, host string
	port        int
}

// listenPorts says which ports each service listens on: flowwatch services from their own
// configuration and flags, the other images from their documented defaults and flags.
func listenPorts(t *testing.T, f composeFile) map[string]map[int]bool {
	t.Helper()
	out := map[string]map[int]bool{}
	add := func(svc string, ports ...int) {
		if out[svc] == nil {
			out[svc] = map[int]bool{}
		}
		for _, p := range ports {
			if p > 0 {
				out[svc][p] = true
			}
		}
	}
	flagPort := func(args []string, name string, def int) int {
		v, ok := flagValue(args, name)
		if !ok {
			return def
		}
		if i := strings.LastIndex(v, ":"); i >= 0 {
			v = v[i+1:]
		}
		p, err := strconv.Atoi(v)
		if err != nil {
			t.Errorf("--%s %q: not a port", name, v)
		}
		return p
	}
	for name, s := range f.Services {
		repo, _, _ := strings.Cut(s.Image, ":")
		switch cmd := f.flowwatchCommand(name); {
		case cmd == "collector":
			// problems of the configuration itself are reported by TestCompose
			ports, _ := checkCollectorConfig(configOf(t, name, s), s.mountTable(), nil, func(string) bool { return true })
			add(name, ports.health, ports.otlpGRPC, ports.otlpHTTP, ports.metrics)
		case cmd == "detector":
			var cfg detectorConfig
			if err := yaml.Unmarshal(configOf(t, name, s), &cfg); err == nil {
				p, _ := endpointPort(cfg.Listen)
				add(name, p)
			}
		case cmd == "demo":
			if _, ok := flagValue(s.Command, "listen"); ok {
				add(name, flagPort(s.Command, "listen", 0))
			}
		case repo == "clickhouse/clickhouse-server":
			add(name, nativePort, 8123, 9009)
		case repo == "clickhouse/clickhouse-keeper":
			if c, err := readCHConfig(s.binds()["/etc/clickhouse-keeper/keeper_config.xml"]); err == nil && c.KeeperServer != nil {
				add(name, c.KeeperServer.TCPPort)
				if c.KeeperServer.HTTPControl != nil {
					add(name, c.KeeperServer.HTTPControl.Port)
				}
				for _, r := range c.KeeperServer.Raft.Servers {
					if r.Hostname == name {
						add(name, r.Port)
					}
				}
			}
		case repo == "prom/alertmanager":
			add(name, flagPort(s.Command, "web.listen-address", 9093))
		case repo == "nats":
			add(name, flagPort(s.Command, "port", 4222), flagPort(s.Command, "http_port", 0))
		case repo == "grafana/grafana":
			add(name, 3000)
		}
	}
	return out
}

// checkComposeReachability collects every host:port a service or configuration points at and
// checks that every service answering to the host listens on the port; and that every
// published or health-checked port is one the service listens on.
func checkComposeReachability(t *testing.T, f composeFile) {
	t.Helper()
	listens := listenPorts(t, f)
	var eps []composeEndpoint
	addURL := func(where, raw string, defPort int) {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			return // reported by the checks of the configuration
		}
		p := defPort
		if u.Port() != "" {
			p, _ = strconv.Atoi(u.Port())
		}
		eps = append(eps, composeEndpoint{where, u.Hostname(), p})
	}
	for name, s := range f.Services {
		for k, v := range s.Environment {
			if strings.Contains(v, "://") {
				addURL(fmt.Sprintf("service %s env %s", name, k), v, 0)
			}
		}
		for _, a := range s.Command {
			if strings.Contains(a, "://") {
				addURL(fmt.Sprintf("service %s argument", name), a, 0)
			}
		}
		if v, ok := flagValue(s.Command, "otlp"); ok {
			if h, p, err := net.SplitHostPort(v); err == nil {
				n, _ := strconv.Atoi(p)
				eps = append(eps, composeEndpoint{fmt.Sprintf("service %s --otlp", name), h, n})
			}
		}
		switch f.flowwatchCommand(name) {
		case "detector":
			var cfg detectorConfig
			if yaml.Unmarshal(configOf(t, name, s), &cfg) == nil {
				addURL("service "+name+" store.dsn", cfg.Store.DSN, 0)
				for _, am := range cfg.Alerting.Alertmanagers {
					addURL("service "+name+" alerting.alertmanagers", am.URL, 80)
				}
				for _, sk := range cfg.Sinks {
					addURL("service "+name+" sink "+sk.Name, sk.URL, map[string]int{"nats": 4222, "webhook": 80}[sk.Type])
				}
			}
		}
		for target, src := range s.binds() {
			if !strings.HasPrefix(target, "/etc/clickhouse-server/config.d/") {
				continue
			}
			c, err := readCHConfig(src)
			if err != nil {
				continue
			}
			if c.RemoteServers != nil {
				for _, cl := range c.RemoteServers.Clusters {
					for _, sh := range cl.Shards {
						for _, r := range sh.Replicas {
							eps = append(eps, composeEndpoint{"service " + name + " remote_servers", r.Host, r.Port})
						}
					}
				}
			}
			if c.ZooKeeper != nil {
				for _, n := range c.ZooKeeper.Nodes {
					eps = append(eps, composeEndpoint{"service " + name + " zookeeper", n.Host, n.Port})
				}
			}
		}
		for _, p := range s.publishedContainerPorts() {
			if !listens[name][p] {
				t.Errorf("service %s: publishes port %d, on which it does not listen (%v)", name, p, slices.Sorted(maps.Keys(listens[name])))
			}
		}
		if p := s.healthcheckPort(); p != 0 && !listens[name][p] {
			t.Errorf("service %s: healthcheck on port %d, on which it does not listen", name, p)
		}
	}
	for _, ep := range eps {
		if strings.HasSuffix(ep.host, ".invalid") {
			continue
		}
		answering := f.servicesAnswering(ep.host)
		if len(answering) == 0 {
			t.Errorf("%s: %s:%d: no service answers to %s", ep.where, ep.host, ep.port, ep.host)
		}
		for _, svc := range answering {
			if !listens[svc][ep.port] {
				t.Errorf("%s: %s:%d: service %s does not listen on %d (%v)", ep.where, ep.host, ep.port, svc, ep.port, slices.Sorted(maps.Keys(listens[svc])))
			}
		}
	}
}

// checkGrafanaProvisioning reads the provisioning Grafana is given: the flowwatch datasource
// has the plugin's type and takes its settings from variables the service sets; dashboard
// providers read folders that exist inside the mounted provisioning.
func checkGrafanaProvisioning(t *testing.T, name string, g composeService, pluginID string) {
	t.Helper()
	const target = "/etc/grafana/provisioning"
	src, ok := g.binds()[target]
	if !ok {
		return // reported by TestCompose
	}
	varRE := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	checkVars := func(file string, data []byte) {
		// $$ escapes a literal $ in Grafana provisioning.
		for _, m := range varRE.FindAllSubmatchIndex(data, -1) {
			if m[0] > 0 && data[m[0]-1] == '$' {
				continue
			}
			v := string(data[m[2]:m[3]])
			if _, ok := g.Environment[v]; !ok {
				t.Errorf("service %s: %s uses $%s, which the service does not set", name, file, v)
			}
		}
	}
	dsFiles, _ := filepath.Glob(filepath.Join(src, "datasources", "*.yaml"))
	found := false
	for _, file := range dsFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ds struct {
			Datasources []struct {
				Type string `yaml:"type"`
				URL  string `yaml:"url"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(data, &ds); err != nil {
			t.Errorf("service %s: %s: %v", name, file, err)
			continue
		}
		for _, d := range ds.Datasources {
			if d.Type == pluginID {
				found = true
			}
		}
		checkVars(filepath.Base(file), stripYAMLComments(data))
	}
	if !found {
		t.Errorf("service %s: no provisioned datasource of type %s in %s/datasources", name, pluginID, src)
	}
	provFiles, _ := filepath.Glob(filepath.Join(src, "dashboards", "*.yaml"))
	for _, file := range provFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var prov struct {
			Providers []struct {
				Options struct {
					Path string `yaml:"path"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		if err := yaml.Unmarshal(data, &prov); err != nil {
			t.Errorf("service %s: %s: %v", name, file, err)
			continue
		}
		for _, p := range prov.Providers {
			rel, ok := strings.CutPrefix(p.Options.Path, target+"/")
			if !ok {
				t.Errorf("service %s: %s: dashboards path %s is outside the mounted %s", name, file, p.Options.Path, target)
				continue
			}
			if fi, err := os.Stat(filepath.Join(src, rel)); err != nil || !fi.IsDir() {
				t.Errorf("service %s: %s: dashboards path %s: not a folder of grafana-plugin/provisioning", name, file, p.Options.Path)
			}
		}
	}
}

// stripYAMLComments drops # comments that start a line (variables named in prose are not
// references).
func stripYAMLComments(data []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
		}
	}
	return out
}

// grafanaPluginDependency reads the minimum Grafana version from plugin.json (">=12.0.0" ->
// "12.0.0").
func grafanaPluginDependency() (string, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "grafana-plugin", "src", "plugin.json"))
	if err != nil {
		return "", err
	}
	var p struct {
		Dependencies struct {
			GrafanaDependency string `json:"grafanaDependency"`
		} `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return "", fmt.Errorf("grafana-plugin/src/plugin.json: %w", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(p.Dependencies.GrafanaDependency), ">=")
	if !ok {
		return "", fmt.Errorf("grafana-plugin/src/plugin.json: grafanaDependency %q: want >=X.Y.Z", p.Dependencies.GrafanaDependency)
	}
	return strings.TrimSpace(v), nil
}

// versionAtLeast compares dotted numeric versions ("13.2.3" >= "12.0.0").
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}
