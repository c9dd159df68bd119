package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// TraceIDPlaceholder is replaced by a trace ID in the trace URL template.
const TraceIDPlaceholder = "${traceId}"

// Defaults of the data source settings.
const (
	DefaultTimeout = 30 * time.Second
	// SecureTokenKey is the secureJsonData key of the API bearer token.
	SecureTokenKey = "token"
)

// Settings are a data source instance's settings: the API URL (the data source's url),
// jsonData and the secure token.
type Settings struct {
	// URL of the flowwatch API, e.g. http://localhost:8080.
	URL string `json:"-"`
	// TraceURL is a link template for trace IDs with ${traceId}, e.g. a Jaeger UI
	// http://jaeger:16686/trace/${traceId}. Empty: no external trace links.
	TraceURL string `json:"traceUrl"`
	// TracingDatasourceUID names a Grafana tracing data source (Tempo, Jaeger) to open trace
	// IDs in Explore. Empty: no internal trace links.
	TracingDatasourceUID string `json:"tracingDatasourceUid"`
	// TimeoutSeconds bounds one API call; 0 means DefaultTimeout.
	TimeoutSeconds int `json:"timeoutSeconds"`
	// Tenant is the tenant queries use when they name none; empty means all tenants.
	Tenant string `json:"tenant"`
	// Token is the API bearer token (secureJsonData.token).
	Token string `json:"-"`
}

// Timeout is the bound of one API call.
func (s *Settings) Timeout() time.Duration {
	if s.TimeoutSeconds <= 0 {
		return DefaultTimeout
	}
	return time.Duration(s.TimeoutSeconds) * time.Second
}

// LoadSettings reads the instance settings. The error lists every problem, in words meant
// for the person configuring the data source.
func LoadSettings(in backend.DataSourceInstanceSettings) (Settings, *url.URL, error) {
	var s Settings
	if len(in.JSONData) > 0 {
		if err := json.Unmarshal(in.JSONData, &s); err != nil {
			return s, nil, fmt.Errorf("the data source's JSON settings cannot be read: %w", err)
		}
	}
	s.URL = strings.TrimSpace(in.URL)
	s.Token = in.DecryptedSecureJSONData[SecureTokenKey]
	var errs []error
	var base *url.URL
	if s.URL == "" {
		errs = append(errs, errors.New("the flowwatch API URL is empty: set it to where flowwatch serves its API, for example http://localhost:8080"))
	} else if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("the flowwatch API URL %q is not an http(s) URL with a host, for example http://localhost:8080", s.URL))
	} else {
		u.RawQuery, u.Fragment = "", ""
		base = u
	}
	if s.TraceURL != "" && !strings.Contains(s.TraceURL, TraceIDPlaceholder) {
		errs = append(errs, fmt.Errorf("the trace URL template %q must contain %s where the trace ID goes", s.TraceURL, TraceIDPlaceholder))
	}
	if s.TimeoutSeconds < 0 {
		errs = append(errs, fmt.Errorf("the timeout must be positive seconds, not %d", s.TimeoutSeconds))
	}
	return s, base, errors.Join(errs...)
}
