// Command gpx_flowwatch is the backend of the flowwatch Grafana data source plugin; Grafana
// starts it and talks to it over the plugin gRPC protocol.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/flowwatch/flowwatch/grafana-plugin/pkg/plugin"
)

func main() {
	if err := datasource.Manage(plugin.PluginID, plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("serve plugin", "error", err.Error())
		os.Exit(1)
	}
}
