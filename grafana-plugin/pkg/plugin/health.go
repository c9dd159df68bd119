package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// CheckHealth calls GET /api/v1/flows and says, in words the user can act on, what is
// wrong: the settings, an unreachable URL, a refused token, a server that is not flowwatch,
// or a failing flowwatch.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	fail := func(format string, args ...any) (*backend.CheckHealthResult, error) {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: fmt.Sprintf(format, args...)}, nil
	}
	if d.configErr != nil {
		return fail("Fix the data source settings: %v.", d.configErr)
	}
	at := redactURL(d.settings.URL)
	flows, err := d.client.Flows(ctx)
	var (
		ae  *APIError
		nf  *NotFlowwatchError
		unr *UnreachableError
	)
	switch {
	case err == nil:
	case errors.As(err, &unr):
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr):
			return fail("Cannot reach the flowwatch API at %s: the host name %q does not resolve. Check the URL.", at, dnsErr.Name)
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return fail("The flowwatch API at %s did not answer within %s. Check that flowwatch is running and that Grafana can reach it (firewall, proxy), or raise the timeout.", at, d.settings.Timeout())
		}
		return fail("Cannot reach the flowwatch API at %s (%v). Check the URL and that flowwatch is running (`flowwatch run`, or the detector, serves the API).", at, unr.Err)
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		if d.settings.Token == "" {
			return fail("The flowwatch API at %s requires a token (HTTP %d: %s). Set the API token in the data source settings.", at, ae.Status, ae.Message)
		}
		return fail("The flowwatch API at %s refused the API token (HTTP %d: %s). Set the token flowwatch was started with.", at, ae.Status, ae.Message)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return fail("The server at %s has no flowwatch API (GET /api/v1/flows: HTTP 404). Check that the URL points at flowwatch's API address, without a path.", at)
	case errors.As(err, &ae):
		return fail("The flowwatch API at %s failed (HTTP %d: %s). Check flowwatch's logs and its store.", at, ae.Status, ae.Message)
	case errors.As(err, &nf):
		return fail("The server at %s answered, but not as flowwatch does (HTTP %d: %s). Check that the URL points at flowwatch, not at Grafana, a trace backend or a proxy's page.", at, nf.Status, nf.Detail)
	default:
		return fail("Checking the flowwatch API at %s failed: %v", at, err)
	}
	names := make([]string, 0, len(flows))
	seen := map[string]bool{}
	for _, f := range flows {
		if !seen[f.Name] {
			seen[f.Name] = true
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return &backend.CheckHealthResult{Status: backend.HealthStatusOk,
			Message: fmt.Sprintf("Connected to flowwatch at %s, but it has no flows loaded: give it flow definitions (flowwatch run --flows DIR).", at)}, nil
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk,
		Message: fmt.Sprintf("Connected to flowwatch at %s: %d flow(s): %s.", at, len(names), strings.Join(names, ", "))}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
