package deploy

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowwatch/flowwatch/storage"
)

// chConfig is the part of a ClickHouse server or Keeper configuration file the cluster
// depends on.
type chConfig struct {
	XMLName       xml.Name
	RemoteServers *struct {
		Clusters []chCluster `xml:",any"`
	} `xml:"remote_servers"`
	Macros *struct {
		Cluster string `xml:"cluster"`
		Shard   string `xml:"shard"`
		Replica string `xml:"replica"`
	} `xml:"macros"`
	ZooKeeper *struct {
		Nodes []chHostPort `xml:"node"`
	} `xml:"zookeeper"`
	DistributedDDL *struct {
		Path string `xml:"path"`
	} `xml:"distributed_ddl"`
	KeeperServer *chKeeperServer `xml:"keeper_server"`
}

type chHostPort struct {
	Host string `xml:"host"`
	Port int    `xml:"port"`
}

func (h chHostPort) String() string { return h.Host + ":" + strconv.Itoa(h.Port) }

type chCluster struct {
	XMLName xml.Name
	Secret  *struct {
		FromEnv string `xml:"from_env,attr"`
		Value   string `xml:",chardata"`
	} `xml:"secret"`
	Shards []struct {
		InternalReplication bool         `xml:"internal_replication"`
		Replicas            []chHostPort `xml:"replica"`
	} `xml:"shard"`
}

type chKeeperServer struct {
	TCPPort     int `xml:"tcp_port"`
	ServerID    int `xml:"server_id"`
	HTTPControl *struct {
		Port      int `xml:"port"`
		Readiness struct {
			Endpoint string `xml:"endpoint"`
		} `xml:"readiness"`
	} `xml:"http_control"`
	Raft struct {
		Servers []chRaftServer `xml:"server"`
	} `xml:"raft_configuration"`
}

type chRaftServer struct {
	ID       int    `xml:"id"`
	Hostname string `xml:"hostname"`
	Port     int    `xml:"port"`
}

// readCHConfig parses a ClickHouse configuration file; the root element must be <clickhouse>.
func readCHConfig(path string) (*chConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c chConfig
	if err := xml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.XMLName.Local != "clickhouse" {
		return nil, fmt.Errorf("%s: root element <%s>, want <clickhouse>", path, c.XMLName.Local)
	}
	return &c, nil
}

// cluster returns the named cluster of remote_servers.
func (c *chConfig) cluster(name string) *chCluster {
	if c.RemoteServers == nil {
		return nil
	}
	for i := range c.RemoteServers.Clusters {
		if c.RemoteServers.Clusters[i].XMLName.Local == name {
			return &c.RemoteServers.Clusters[i]
		}
	}
	return nil
}

// clusterShape checks a cluster definition: the wanted shards x replicas, internal replication
// on every shard (Distributed inserts write one replica, ReplicatedMergeTree copies), replicas
// unique, a secret from the environment. It returns the replicas per shard.
func clusterShape(c *chCluster, shards, replicas int) ([][]chHostPort, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Shards) != shards {
		fail("cluster %s: %d shards, want %d", c.XMLName.Local, len(c.Shards), shards)
	}
	seen := map[string]bool{}
	var out [][]chHostPort
	for i, s := range c.Shards {
		if len(s.Replicas) != replicas {
			fail("cluster %s shard %d: %d replicas, want %d", c.XMLName.Local, i+1, len(s.Replicas), replicas)
		}
		if !s.InternalReplication {
			fail("cluster %s shard %d: internal_replication must be true with Replicated tables", c.XMLName.Local, i+1)
		}
		for _, r := range s.Replicas {
			if r.Host == "" || r.Port != nativePort {
				fail("cluster %s shard %d: replica %s: want a host and the native port %d", c.XMLName.Local, i+1, r, nativePort)
			}
			if seen[r.String()] {
				fail("cluster %s: replica %s listed twice", c.XMLName.Local, r)
			}
			seen[r.String()] = true
		}
		out = append(out, s.Replicas)
	}
	if c.Secret == nil || (c.Secret.FromEnv == "" && strings.TrimSpace(c.Secret.Value) == "") {
		fail("cluster %s: no <secret>: nodes would trust any client claiming to be a peer", c.XMLName.Local)
	} else if strings.TrimSpace(c.Secret.Value) != "" {
		fail("cluster %s: <secret> inline; read it from_env", c.XMLName.Local)
	}
	return out, errs
}

// keeperEnsemble checks Keeper node configurations against each other: one server_id each,
// all listed in one identical raft_configuration, an odd count. It returns the raft servers.
func keeperEnsemble(nodes map[string]*chConfig) ([]chRaftServer, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var raft []chRaftServer
	ids := map[int]string{}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ks := nodes[n].KeeperServer
		if ks == nil {
			fail("%s: no <keeper_server>", n)
			continue
		}
		if ks.TCPPort == 0 {
			fail("%s: keeper_server.tcp_port not set", n)
		}
		if other, dup := ids[ks.ServerID]; dup {
			fail("%s: server_id %d is also %s's", n, ks.ServerID, other)
		}
		ids[ks.ServerID] = n
		if raft == nil {
			raft = ks.Raft.Servers
		} else if !reflect.DeepEqual(raft, ks.Raft.Servers) {
			fail("%s: raft_configuration differs from the other nodes'", n)
		}
		if !slices.ContainsFunc(ks.Raft.Servers, func(s chRaftServer) bool { return s.ID == ks.ServerID }) {
			fail("%s: server_id %d is not in its raft_configuration", n, ks.ServerID)
		}
		if ks.HTTPControl == nil || ks.HTTPControl.Port == 0 {
			fail("%s: no http_control port (the readiness endpoint probes use)", n)
		}
	}
	if len(raft) != len(nodes) {
		fail("raft_configuration lists %d servers, %d node configurations exist", len(raft), len(nodes))
	}
	return raft, errs
}

var ltsTagRE = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.\d+)*(?:-alpine)?$`)

// checkClickHouseImage: an official image, pinned to a current LTS line (YY.3 or YY.8) no older
// than 24.8, the oldest server the storage contract supports.
func checkClickHouseImage(image, repo string) error {
	name, tag, ok := strings.Cut(image, ":")
	if !ok || name != repo {
		return fmt.Errorf("image %q: want the official %s:<LTS>", image, repo)
	}
	m := ltsTagRE.FindStringSubmatch(tag)
	if m == nil {
		return fmt.Errorf("image %q: tag must be a version", image)
	}
	year, _ := strconv.Atoi(m[1])
	month, _ := strconv.Atoi(m[2])
	if month != 3 && month != 8 {
		return fmt.Errorf("image %q: %d.%d is not an LTS release (YY.3 or YY.8)", image, year, month)
	}
	if year*100+month < 24*100+8 {
		return fmt.Errorf("image %q: older than 24.8", image)
	}
	return nil
}

// TestClickHouseCluster checks the example cluster of deploy/clickhouse: 2 shards x 2 replicas,
// one macros file per replica naming it and its shard, a 3-node Keeper ensemble the servers
// point at, and the compose file that runs it all mounting the right file on the right node.
func TestClickHouseCluster(t *testing.T) {
	common, err := readCHConfig(filepath.Join("clickhouse", "config.d", "flowwatch-cluster.xml"))
	if err != nil {
		t.Fatal(err)
	}
	cl := common.cluster(clusterName)
	if cl == nil {
		t.Fatalf("config.d/flowwatch-cluster.xml: no remote_servers cluster %q", clusterName)
	}
	shards, errs := clusterShape(cl, 2, 2)
	reportErrs(t, "config.d/flowwatch-cluster.xml", errs)
	if common.Macros != nil {
		t.Error("config.d/flowwatch-cluster.xml: macros differ per node; keep them in macros/<node>.xml")
	}
	if common.DistributedDDL == nil || common.DistributedDDL.Path == "" {
		t.Error("config.d/flowwatch-cluster.xml: no distributed_ddl path (ON CLUSTER needs it)")
	}

	// Macros: one file per replica, named after it; {replica} unique, {shard} the same within
	// a shard and different across shards.
	macroFiles, _ := filepath.Glob(filepath.Join("clickhouse", "macros", "*.xml"))
	replicaHosts := map[string]int{} // host -> shard index
	for i, s := range shards {
		for _, r := range s {
			replicaHosts[r.Host] = i
		}
	}
	if len(macroFiles) != len(replicaHosts) {
		t.Errorf("macros/: %d files, want one per replica (%d)", len(macroFiles), len(replicaHosts))
	}
	shardMacro := map[int]string{}
	shardOf := map[string]int{}
	seenReplica := map[string]bool{}
	for _, f := range macroFiles {
		c, err := readCHConfig(f)
		if err != nil {
			t.Error(err)
			continue
		}
		node := strings.TrimSuffix(filepath.Base(f), ".xml")
		shard, ok := replicaHosts[node]
		switch {
		case c.Macros == nil:
			t.Errorf("%s: no <macros>", f)
			continue
		case !ok:
			t.Errorf("%s: %s is not a replica of cluster %s", f, node, clusterName)
			continue
		}
		m := c.Macros
		if m.Replica != node {
			t.Errorf("%s: replica macro %q, want the node's name %q", f, m.Replica, node)
		}
		if seenReplica[m.Replica] {
			t.Errorf("%s: replica macro %q repeated", f, m.Replica)
		}
		seenReplica[m.Replica] = true
		if m.Cluster != clusterName {
			t.Errorf("%s: cluster macro %q, want %q", f, m.Cluster, clusterName)
		}
		if prev, ok := shardMacro[shard]; ok && prev != m.Shard {
			t.Errorf("%s: shard macro %q, but another replica of the same shard has %q", f, m.Shard, prev)
		}
		shardMacro[shard] = m.Shard
		if other, ok := shardOf[m.Shard]; ok && other != shard {
			t.Errorf("%s: shard macro %q is used by shard %d too", f, m.Shard, other+1)
		}
		shardOf[m.Shard] = shard
	}

	// Keeper: three nodes; the servers' <zookeeper> lists exactly them.
	keeperFiles, _ := filepath.Glob(filepath.Join("clickhouse", "keeper", "*.xml"))
	keepers := map[string]*chConfig{}
	for _, f := range keeperFiles {
		c, err := readCHConfig(f)
		if err != nil {
			t.Error(err)
			continue
		}
		keepers[strings.TrimSuffix(filepath.Base(f), ".xml")] = c
	}
	if len(keepers) < 3 || len(keepers)%2 == 0 {
		t.Errorf("keeper/: %d nodes, want an odd number >= 3 (a quorum survives a node down)", len(keepers))
	}
	raft, errs := keeperEnsemble(keepers)
	reportErrs(t, "keeper/", errs)
	for node, c := range keepers {
		// keeper-N.xml is the node whose raft hostname is keeper-N.
		i := slices.IndexFunc(raft, func(s chRaftServer) bool { return c.KeeperServer != nil && s.ID == c.KeeperServer.ServerID })
		if i >= 0 && raft[i].Hostname != node {
			t.Errorf("keeper/%s.xml: server_id %d is %s in raft_configuration", node, c.KeeperServer.ServerID, raft[i].Hostname)
		}
	}
	if common.ZooKeeper == nil {
		t.Fatal("config.d/flowwatch-cluster.xml: no <zookeeper> (Keeper) section")
	}
	var want, got []string
	for node, c := range keepers {
		if c.KeeperServer != nil {
			want = append(want, chHostPort{node, c.KeeperServer.TCPPort}.String())
		}
	}
	for _, n := range common.ZooKeeper.Nodes {
		got = append(got, n.String())
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("config.d/flowwatch-cluster.xml: zookeeper nodes %v, want the Keeper ensemble %v", got, want)
	}

	// The compose file running the cluster: each node mounts its own files.
	f := composeConfig(t, filepath.Join("clickhouse", "docker-compose.yaml"))
	for node := range replicaHosts {
		s, ok := f.Services[node]
		if !ok {
			t.Errorf("clickhouse/docker-compose.yaml: no service %s", node)
			continue
		}
		if err := checkClickHouseImage(s.Image, "clickhouse/clickhouse-server"); err != nil {
			t.Errorf("service %s: %v", node, err)
		}
		if s.Hostname != "" && s.Hostname != node {
			t.Errorf("service %s: hostname %s differs from its replica name", node, s.Hostname)
		}
		binds := s.binds()
		if src := binds["/etc/clickhouse-server/config.d/macros.xml"]; !sameFile(src, filepath.Join("clickhouse", "macros", node+".xml")) {
			t.Errorf("service %s: mounts macros %q, want macros/%s.xml", node, src, node)
		}
		if src := binds["/etc/clickhouse-server/config.d/flowwatch-cluster.xml"]; !sameFile(src, filepath.Join("clickhouse", "config.d", "flowwatch-cluster.xml")) {
			t.Errorf("service %s: does not mount config.d/flowwatch-cluster.xml", node)
		}
		if env := cl.Secret; env != nil && env.FromEnv != "" {
			if _, ok := s.Environment[env.FromEnv]; !ok {
				t.Errorf("service %s: the cluster secret comes from %s, which it does not set", node, env.FromEnv)
			}
		}
	}
	for node, c := range keepers {
		s, ok := f.Services[node]
		if !ok {
			t.Errorf("clickhouse/docker-compose.yaml: no service %s", node)
			continue
		}
		if err := checkClickHouseImage(s.Image, "clickhouse/clickhouse-keeper"); err != nil {
			t.Errorf("service %s: %v", node, err)
		}
		if src := s.binds()["/etc/clickhouse-keeper/keeper_config.xml"]; !sameFile(src, filepath.Join("clickhouse", "keeper", node+".xml")) {
			t.Errorf("service %s: mounts keeper config %q, want keeper/%s.xml", node, src, node)
		}
		if c.KeeperServer != nil && c.KeeperServer.HTTPControl != nil {
			if p := s.healthcheckPort(); p != c.KeeperServer.HTTPControl.Port {
				t.Errorf("service %s: healthcheck port %d, keeper http_control port %d", node, p, c.KeeperServer.HTTPControl.Port)
			}
		}
	}
	checkComposeGraph(t, f)
}

// sameFile says whether a compose bind source (absolute) is the file at rel (relative to
// this package).
func sameFile(src, rel string) bool {
	abs, err := filepath.Abs(rel)
	return err == nil && src != "" && filepath.Clean(src) == abs
}

// TestClusterDDLMacros generates the cluster DDL flowwatch applies (storage.DDL, as `flowwatch
// schema --cluster flowwatch` prints it) and checks that every macro it uses is defined on
// every server of both cluster configurations. (TestClickHouseCluster checks that the {replica}
// values are unique across the whole cluster, which the DDL needs: some tables replicate over
// all shards on one Keeper path.)
func TestClusterDDLMacros(t *testing.T) {
	ddl, err := storage.DDL(storage.SchemaOptions{Cluster: clusterName, RetentionDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ddl, "ON CLUSTER "+clusterName) {
		t.Fatalf("the cluster DDL does not run ON CLUSTER %s", clusterName)
	}
	builtin := map[string]bool{"database": true, "table": true, "uuid": true}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{([a-z_]+)\}`).FindAllStringSubmatch(ddl, -1) {
		if !builtin[m[1]] {
			used[m[1]] = true
		}
	}
	if !used["shard"] || !used["replica"] {
		t.Fatalf("the cluster DDL uses macros %v; want at least {shard} and {replica}", used)
	}
	files, _ := filepath.Glob(filepath.Join("clickhouse", "macros", "*.xml"))
	files = append(files, filepath.Join("compose", "clickhouse", "flowwatch.xml"))
	for _, f := range files {
		c, err := readCHConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		if c.Macros == nil {
			t.Errorf("%s: no macros", f)
			continue
		}
		defined := map[string]string{"cluster": c.Macros.Cluster, "shard": c.Macros.Shard, "replica": c.Macros.Replica}
		for m := range used {
			if defined[m] == "" {
				t.Errorf("%s: the cluster DDL uses {%s}, which this server does not define", f, m)
			}
		}
	}
}
