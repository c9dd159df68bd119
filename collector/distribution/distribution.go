// Package distribution is the `flowwatch collector`: an OpenTelemetry Collector made of the
// components flowwatch ships and the core and contrib ones its configurations use. The
// component lists below and the Builder manifest builder-config.yaml (the same distribution,
// built by the OpenTelemetry Collector Builder) name the same components; Run is the command
// line. It owns no pipeline logic of its own: configuration decides the pipelines.
package distribution

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/zpagesextension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/collector/flowexporter"
	"github.com/flowwatch/flowwatch/collector/flowprocessor"
)

// part is one component of the distribution: its factory and the Go module that
// provides it, as the Builder manifest (builder-config.yaml) lists it.
type part[F any] struct {
	module  string
	factory func() F
}

// The components of the distribution. Add a component here and in builder-config.yaml
// (TestManifestMatchesComponents keeps the two in step).
var (
	receivers = []part[receiver.Factory]{
		{"go.opentelemetry.io/collector/receiver/otlpreceiver", otlpreceiver.NewFactory},
	}
	processors = []part[processor.Factory]{
		{"go.opentelemetry.io/collector/processor/memorylimiterprocessor", memorylimiterprocessor.NewFactory},
		{"go.opentelemetry.io/collector/processor/batchprocessor", batchprocessor.NewFactory},
		{"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor", resourceprocessor.NewFactory},
		{"github.com/flowwatch/flowwatch/collector/flowprocessor", flowprocessor.NewFactory},
	}
	exporters = []part[exporter.Factory]{
		{"go.opentelemetry.io/collector/exporter/debugexporter", debugexporter.NewFactory},
		{"go.opentelemetry.io/collector/exporter/otlpexporter", otlpexporter.NewFactory},
		{"go.opentelemetry.io/collector/exporter/otlphttpexporter", otlphttpexporter.NewFactory},
		{"github.com/flowwatch/flowwatch/collector/flowexporter", flowexporter.NewFactory},
	}
	extensions = []part[extension.Factory]{
		{"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage", filestorage.NewFactory},
		{"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension", healthcheckextension.NewFactory},
		{"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension", pprofextension.NewFactory},
		{"go.opentelemetry.io/collector/extension/zpagesextension", zpagesextension.NewFactory},
	}
)

// made makes the factories of cs, and the map of their modules ("path version", as a
// Builder-made collector reports them).
func made[F interface{ Type() component.Type }](cs []part[F]) ([]F, map[component.Type]string) {
	fs := make([]F, len(cs))
	modules := make(map[component.Type]string, len(cs))
	for i, c := range cs {
		fs[i] = c.factory()
		modules[fs[i].Type()] = moduleVersion(c.module)
	}
	return fs, modules
}

// manifest is the Builder manifest of the distribution: the modules of its components, at
// the versions this binary is built with (TestManifestMatchesComponents holds them to go.mod).
//
//go:embed builder-config.yaml
var manifest []byte

// manifestModules maps each module path of the manifest to its "path version".
var manifestModules = sync.OnceValue(func() map[string]string {
	var m map[string]any
	if err := yaml.Unmarshal(manifest, &m); err != nil {
		panic(fmt.Sprintf("builder-config.yaml: %v", err)) // embedded at build time; its tests parse it
	}
	out := map[string]string{}
	for _, kind := range []string{"receivers", "processors", "exporters", "extensions", "providers"} {
		list, _ := m[kind].([]any)
		for _, e := range list {
			entry, _ := e.(map[string]any)
			gomod, _ := entry["gomod"].(string)
			if path, _, ok := strings.Cut(gomod, " "); ok {
				out[path] = gomod
			}
		}
	}
	return out
})

// moduleVersion is "path version" of a component's module, as the manifest names it (and a
// Builder-made collector reports it), or the path alone when the manifest lacks it.
func moduleVersion(path string) string {
	if m, ok := manifestModules()[path]; ok {
		return m
	}
	return path
}

// Components returns the factories of the flowwatch collector.
func Components() (otelcol.Factories, error) {
	var errs, err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	rs, rm := made(receivers)
	ps, pm := made(processors)
	es, em := made(exporters)
	xs, xm := made(extensions)
	f.ReceiverModules, f.ProcessorModules, f.ExporterModules, f.ExtensionModules = rm, pm, em, xm
	f.Receivers, err = otelcol.MakeFactoryMap(rs...)
	errs = errors.Join(errs, err)
	f.Processors, err = otelcol.MakeFactoryMap(ps...)
	errs = errors.Join(errs, err)
	f.Exporters, err = otelcol.MakeFactoryMap(es...)
	errs = errors.Join(errs, err)
	f.Extensions, err = otelcol.MakeFactoryMap(xs...)
	errs = errors.Join(errs, err)
	if errs != nil {
		return otelcol.Factories{}, fmt.Errorf("build collector components: %w", errs)
	}
	return f, nil
}

// BuildInfo describes the distribution to the collector runtime.
func BuildInfo(version string) component.BuildInfo {
	return component.BuildInfo{
		Command:     "flowwatch collector",
		Description: "flowwatch OpenTelemetry Collector: maps telemetry onto business-flow checkpoints",
		Version:     version,
	}
}

// Settings returns the collector settings of the distribution reading its configuration
// from uris (file paths, or file:, env: and yaml: URIs). With factories nil, Components is used.
func Settings(version string, factories func() (otelcol.Factories, error), uris ...string) otelcol.CollectorSettings {
	if factories == nil {
		factories = Components
	}
	return otelcol.CollectorSettings{
		BuildInfo: BuildInfo(version),
		Factories: factories,
		// The caller's context carries the process signals (see Run).
		DisableGracefulShutdown: true,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs: uris,
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
}

// Version is the version the distribution reports; the build may set it with -ldflags.
var Version = "dev"

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Run is `flowwatch collector`: the collector's own command line (--config FILE, --set, and
// the validate, components and featuregate subcommands). It runs until ctx is done and
// returns the exit code: 0 success, 1 failure, 2 usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := otelcol.NewCommand(Settings(Version, nil))
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SilenceErrors = true
	cmd.SetFlagErrorFunc(func(_ *cobraCommand, err error) error { return usageError{err} })
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "flowwatch collector: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || strings.Contains(err.Error(), "at least one config flag must be provided") {
		fmt.Fprintln(stderr, "usage: flowwatch collector --config FILE [--set KEY=VALUE] | validate --config FILE | components")
		return 2
	}
	return 1
}
