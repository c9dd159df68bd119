package distribution

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the repository's root, from this package's folder.
const repoRoot = "../.."

// modulePrefix is the path of the root module; the others are below it.
const modulePrefix = "github.com/flowwatch/flowwatch"

// trainVersion is the version every module of this repository requires of its siblings: they
// are released together.
const trainVersion = "v0.1.0"

// componentModules are the modules a user's collector imports — the components and what they
// need of flowwatch — with the modules of this repository each may hold in its graph.
var componentModules = map[string][]string{
	"model":                   {"model", "internal/testctx"},
	"storage":                 {"storage", "internal/testsvc"},
	"collector/flowattr":      {"collector/flowattr"},
	"collector/flowprocessor": {"collector/flowprocessor", "collector/flowattr", "model", "internal/testctx"},
	"collector/flowexporter":  {"collector/flowexporter", "collector/flowattr", "storage", "internal/testsvc"},
}

// forbidden are modules of the rest of flowwatch's graph that must never reach a user's
// collector through our components (k8s.io, which the collector's own service brings, is fine).
var forbidden = []string{
	"github.com/nats-io/nats-server",
	"github.com/grafana/grafana-plugin-sdk-go",
	"github.com/prometheus/alertmanager",
	"github.com/chromedp/",
	"github.com/standard-webhooks/",
	"github.com/cloudevents/",
}

// goModules lists the folders of the repository that hold a go.mod, tracked by git or to be
// (not ignored: npm's node_modules are).
func goModules(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "--cached", "--others", "--exclude-standard", "go.mod", "**/go.mod").Output()
	require.NoError(t, err, "git ls-files")
	var dirs []string
	for _, f := range strings.Fields(string(out)) {
		dirs = append(dirs, filepath.ToSlash(filepath.Dir(f)))
	}
	slices.Sort(dirs)
	return dirs
}

// Every module runs its tests, vet and tidy check: the Makefile's MODULES lists each go.mod.
func TestMakefileListsEveryModule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^MODULES\s*:=\s*(.*)$`).FindSubmatch(b)
	require.NotNil(t, m, "the Makefile has no MODULES line")
	listed := strings.Fields(string(m[1]))
	slices.Sort(listed)
	assert.Equal(t, goModules(t), listed, "the Makefile's MODULES and the go.mod files of the repository differ: a module whose tests nothing runs")
}

// The component modules stand on their own (GOWORK=off) and their graph holds nothing of the
// rest of flowwatch: what a user's collector gets from them is what `go list -m all` lists.
func TestComponentModuleGraphs(t *testing.T) {
	for dir, allowed := range componentModules {
		t.Run(dir, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-m", "all")
			cmd.Dir = filepath.Join(repoRoot, dir)
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly") // never touch go.sum
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "go list -m all in %s: %s", dir, out)
			var ours []string
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			n := 0
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 0 {
					continue
				}
				n++
				mod := f[0]
				for _, bad := range forbidden {
					assert.False(t, strings.HasPrefix(mod, bad), "%s's graph holds %s", dir, sc.Text())
				}
				if mod == modulePrefix || strings.HasPrefix(mod, modulePrefix+"/") {
					ours = append(ours, strings.TrimPrefix(strings.TrimPrefix(mod, modulePrefix), "/"))
				}
			}
			slices.Sort(ours)
			want := slices.Clone(allowed)
			slices.Sort(want)
			assert.Equal(t, want, ours, "the flowwatch modules in %s's graph", dir)
			t.Logf("%s: %d modules in the graph, flowwatch's: %v", dir, n, ours)
		})
	}
}

// Each module requires its siblings at the train's version, from this checkout.
func TestSiblingsOnOneTrain(t *testing.T) {
	req := regexp.MustCompile(`(?m)^\s*(?:require\s+)?(` + regexp.QuoteMeta(modulePrefix) + `/\S+) (\S+)`)
	rep := regexp.MustCompile(`(?m)^\s*(?:replace\s+)?(` + regexp.QuoteMeta(modulePrefix) + `/\S+) => (\S+)`)
	for _, dir := range goModules(t) {
		b, err := os.ReadFile(filepath.Join(repoRoot, dir, "go.mod"))
		require.NoError(t, err)
		replaced := map[string]string{}
		for _, m := range rep.FindAllStringSubmatch(string(b), -1) {
			replaced[m[1]] = m[2]
		}
		for _, m := range req.FindAllStringSubmatch(string(b), -1) {
			if m[2] == "=>" {
				continue
			}
			assert.Equal(t, trainVersion, m[2], "%s/go.mod requires %s", dir, m[1])
			target, ok := replaced[m[1]]
			if assert.True(t, ok, "%s/go.mod requires %s without a replace to this checkout", dir, m[1]) {
				want, _ := filepath.Rel(filepath.Join(repoRoot, dir), filepath.Join(repoRoot, strings.TrimPrefix(m[1], modulePrefix+"/")))
				if !strings.HasPrefix(want, ".") {
					want = "./" + want
				}
				assert.Equal(t, filepath.ToSlash(want), target, "%s/go.mod replaces %s", dir, m[1])
			}
		}
	}
}
