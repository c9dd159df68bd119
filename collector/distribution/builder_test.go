package distribution_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/collector/distribution"
	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

// repoRoot is the repository's root, from this package's folder.
const repoRoot = "../.."

// ocbVersion is the Collector Builder of the collector's release train (make ocb installs it).
const ocbVersion = "v0.165.0"

// manifestPath is the Builder manifest of the distribution.
var manifestPath = filepath.Join(repoRoot, "collector", "distribution", "builder-config.yaml")

type manifestModule struct {
	GoMod string `yaml:"gomod"`
	Path  string `yaml:"path,omitempty"`
}

type manifest struct {
	Receivers  []manifestModule `yaml:"receivers"`
	Processors []manifestModule `yaml:"processors"`
	Exporters  []manifestModule `yaml:"exporters"`
	Extensions []manifestModule `yaml:"extensions"`
	Providers  []manifestModule `yaml:"providers"`
	Replaces   []string         `yaml:"replaces"`
}

func readManifest(t *testing.T) (manifest, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(manifestPath)
	require.NoError(t, err)
	var m manifest
	require.NoError(t, yaml.Unmarshal(b, &m))
	var raw map[string]any
	require.NoError(t, yaml.Unmarshal(b, &raw))
	return m, raw
}

func gomods(ms []manifestModule) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.GoMod
	}
	slices.Sort(out)
	return out
}

func values[K comparable](m map[K]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// `flowwatch collector` and the Builder manifest carry the same components, each from the
// same module, at the version flowwatch is built with (the root go.mod's).
func TestManifestMatchesComponents(t *testing.T) {
	m, _ := readManifest(t)
	f, err := distribution.Components()
	require.NoError(t, err)
	for _, list := range [][]manifestModule{m.Receivers, m.Processors, m.Exporters, m.Extensions, m.Providers} {
		for _, mod := range list {
			path, version, _ := strings.Cut(mod.GoMod, " ")
			out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", path).Output()
			require.NoError(t, err, "go list -m %s", path)
			assert.Equal(t, strings.TrimSpace(string(out)), version, "the manifest's %s and go.mod's differ", path)
		}
	}
	assert.Equal(t, gomods(m.Receivers), values(f.ReceiverModules), "receivers")
	assert.Equal(t, gomods(m.Processors), values(f.ProcessorModules), "processors")
	assert.Equal(t, gomods(m.Exporters), values(f.ExporterModules), "exporters")
	assert.Equal(t, gomods(m.Extensions), values(f.ExtensionModules), "extensions")
	var providers []string
	for _, p := range m.Providers {
		providers = append(providers, strings.Fields(p.GoMod)[0])
	}
	assert.Equal(t, []string{"go.opentelemetry.io/collector/confmap/provider/envprovider",
		"go.opentelemetry.io/collector/confmap/provider/fileprovider",
		"go.opentelemetry.io/collector/confmap/provider/yamlprovider"}, providers, "the providers of distribution.Settings")
}

// builderPath is the Collector Builder that make ocb installs.
func builderPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FLOWWATCH_OCB")
	if p == "" {
		dir, err := os.UserCacheDir()
		require.NoError(t, err)
		p = filepath.Join(dir, "flowwatch", "ocb", ocbVersion, "builder")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the Collector Builder is missing at %s: `make ocb` installs it", p)
	}
	return p
}

// buildWithOCB runs the Collector Builder on the manifest, with this checkout's modules, into
// the project's cache folder (kept between runs: a second build reuses the generated module and
// the Go build cache; one folder per checkout, so that two checkouts never build into one),
// and returns the binary.
func buildWithOCB(t *testing.T) string {
	t.Helper()
	builder := builderPath(t)
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(root))
	out := filepath.Join(cache, "flowwatch", "ocb", "build-"+hex.EncodeToString(sum[:6]))
	m, raw := readManifest(t)
	// The manifest's replaces are relative to its output_path (./_build at the root): made
	// absolute for the output folder of this test.
	dist := raw["dist"].(map[string]any)
	committedOut := filepath.Join(root, dist["output_path"].(string))
	dist["output_path"] = out
	var replaces []any
	for _, r := range m.Replaces {
		mod, target, ok := strings.Cut(r, " => ")
		require.True(t, ok, "replace %q", r)
		replaces = append(replaces, mod+" => "+filepath.Join(committedOut, target))
	}
	raw["replaces"] = replaces
	b, err := yaml.Marshal(raw)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(out, 0o755))
	generated := filepath.Join(out, "builder-config.yaml")
	require.NoError(t, os.WriteFile(generated, b, 0o644))

	start := time.Now()
	cmd := exec.Command(builder, "--config", generated)
	cmd.Dir = root // the components' paths are relative to the root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	log, err := cmd.CombinedOutput()
	require.NoError(t, err, "the Collector Builder failed:\n%s", log)
	t.Logf("the Collector Builder built %s in %s", filepath.Join(out, "otelcol-flowwatch"), time.Since(start).Round(time.Second))
	return filepath.Join(out, "otelcol-flowwatch")
}

// componentList is what `components` prints of the components.
type componentList struct {
	Receivers, Processors, Exporters, Extensions []struct {
		Name   string `yaml:"name"`
		Module string `yaml:"module"`
	}
}

func parseComponents(t *testing.T, out []byte) componentList {
	t.Helper()
	var c componentList
	require.NoError(t, yaml.Unmarshal(out, &c), "%s", out)
	require.NotEmpty(t, c.Receivers, "%s", out)
	return c
}

// traceBackend is a small OTLP/gRPC trace receiver: the raw-traces pipeline's backend.
type traceBackend struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans []ptrace.Span
	attrs []map[string]any
}

func (b *traceBackend) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rss := req.Traces().ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		res := rss.At(i).Resource().Attributes().AsRaw()
		for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
			ss := rss.At(i).ScopeSpans().At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				b.spans = append(b.spans, ss.At(k))
				b.attrs = append(b.attrs, res)
			}
		}
	}
	return ptraceotlp.NewExportResponse(), nil
}

// received returns the names of the spans received, each with its resource's
// flowwatch.collector attribute.
func (b *traceBackend) received() map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]any{}
	for i, s := range b.spans {
		out[s.Name()] = b.attrs[i]["flowwatch.collector"]
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	p, err := testsvc.FreePort()
	require.NoError(t, err)
	return strconv.Itoa(p)
}

// The distribution as a user builds it: the real Collector Builder makes otelcol-flowwatch
// from the manifest (our components from this checkout), which reports the same components as
// `flowwatch collector`, then runs on examples/collector.yaml (its ports, queue folder and store
// moved aside): spans sent over OTLP become checkpoint rows in a real store (Debian's ClickHouse
// 18.16), and the raw-traces pipeline forwards every span, tagged by the resource processor,
// to a trace backend over OTLP.
func TestBuilderMadeCollector(t *testing.T) {
	bin := buildWithOCB(t)

	// The same components, from the same modules, as flowwatch collector.
	out, err := exec.Command(bin, "components").Output()
	require.NoError(t, err)
	built := parseComponents(t, out)
	var ours, errb bytes.Buffer
	require.Equal(t, 0, distribution.Run(context.Background(), []string{"components"}, &ours, &errb), errb.String())
	assert.Equal(t, parseComponents(t, ours.Bytes()), built, "otelcol-flowwatch components and flowwatch collector components differ")

	// The trace backend of the raw-traces pipeline.
	backend := &traceBackend{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, backend)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	ch := testsvc.ClickHouseT(t)
	grpcPort, health := freePort(t), freePort(t)
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	col := exec.Command(bin, "--config", "examples/collector.yaml",
		"--set=receivers::otlp::protocols::grpc::endpoint=127.0.0.1:"+grpcPort,
		"--set=receivers::otlp::protocols::http::endpoint=127.0.0.1:"+freePort(t),
		"--set=extensions::health_check::endpoint=127.0.0.1:"+health,
		"--set=extensions::pprof::endpoint=127.0.0.1:"+freePort(t),
		"--set=extensions::zpages::endpoint=127.0.0.1:"+freePort(t),
		"--set=extensions::file_storage::directory="+filepath.Join(t.TempDir(), "queue"),
		"--set=exporters::flow::path=",
		"--set=exporters::flow::endpoint="+ch.DSN(),
		"--set=exporters::flow::tls::insecure=true",
		"--set=service::telemetry::metrics::level=none",
	)
	col.Dir = root
	col.Env = append(os.Environ(), "FLOWWATCH_TRACES_ENDPOINT="+lis.Addr().String(), "HOSTNAME=ocb-test")
	var colOut bytes.Buffer
	col.Stdout, col.Stderr = &colOut, &colOut
	require.NoError(t, col.Start())
	done := make(chan error, 1)
	go func() { done <- col.Wait() }()
	t.Cleanup(func() {
		_ = col.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = col.Process.Kill()
			<-done
		}
	})
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
		}
		resp, err := http.Get("http://127.0.0.1:" + health + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 50*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("otelcol-flowwatch stopped: %v\n%s", err, colOut.String())
	default:
	}

	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint("127.0.0.1:"+grpcPort), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", "orders"), attribute.String("tenant.id", "acme"))))
	tr := tp.Tracer("shop")
	_, s := tr.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("order.id", "ocb-1"), attribute.Int("http.response.status_code", 201)))
	s.End()
	_, s = tr.Start(ctx, "GET /health", trace.WithSpanKind(trace.SpanKindServer))
	s.End()
	require.NoError(t, tp.Shutdown(ctx))

	st, err := storage.OpenServer(ctx, ch.DSN(), storage.Options{})
	require.NoError(t, err)
	defer st.Close()
	var evs []storage.CheckpointEvent
	require.Eventually(t, func() bool {
		evs, err = st.InstanceEvents(ctx, "acme", "order-fulfilment", "ocb-1")
		return err == nil && len(evs) == 1
	}, time.Minute, 100*time.Millisecond, "the checkpoint row in the store: %v %v\n%s", evs, err, &colOut)
	assert.Equal(t, "placed", evs[0].Checkpoint)
	assert.Equal(t, "orders", evs[0].Service)
	assert.Equal(t, "POST /orders", evs[0].Name)

	require.Eventually(t, func() bool { return len(backend.received()) == 2 }, time.Minute, 50*time.Millisecond,
		"the raw spans at the trace backend: %v\n%s", backend.received(), &colOut)
	assert.Equal(t, map[string]any{"POST /orders": "ocb-test", "GET /health": "ocb-test"}, backend.received(),
		"every span, tagged by the resource processor")
}
