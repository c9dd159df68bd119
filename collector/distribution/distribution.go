// Package distribution is the `flowwatch collector`: an OpenTelemetry Collector built from
// the components flowwatch ships. Components is the one place that lists them; Run is the
// command line. It owns no pipeline logic of its own: configuration decides the pipelines.
package distribution

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/zpagesextension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/flowwatch/flowwatch/collector/flowexporter"
	"github.com/flowwatch/flowwatch/collector/flowprocessor"
)

// The component factories of the distribution. Add a component here and nowhere else.
func receiverFactories() []receiver.Factory {
	return []receiver.Factory{
		otlpreceiver.NewFactory(),
	}
}

func processorFactories() []processor.Factory {
	return []processor.Factory{
		memorylimiterprocessor.NewFactory(),
		batchprocessor.NewFactory(),
		flowprocessor.NewFactory(),
	}
}

func exporterFactories() []exporter.Factory {
	return []exporter.Factory{
		debugexporter.NewFactory(),
		flowexporter.NewFactory(),
	}
}

func extensionFactories() []extension.Factory {
	return []extension.Factory{
		filestorage.NewFactory(),
		healthcheckextension.NewFactory(),
		pprofextension.NewFactory(),
		zpagesextension.NewFactory(),
	}
}

// Components returns the factories of the flowwatch collector.
func Components() (otelcol.Factories, error) {
	var errs, err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	f.Receivers, err = otelcol.MakeFactoryMap(receiverFactories()...)
	errs = errors.Join(errs, err)
	f.Processors, err = otelcol.MakeFactoryMap(processorFactories()...)
	errs = errors.Join(errs, err)
	f.Exporters, err = otelcol.MakeFactoryMap(exporterFactories()...)
	errs = errors.Join(errs, err)
	f.Extensions, err = otelcol.MakeFactoryMap(extensionFactories()...)
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
