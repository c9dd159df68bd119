package detector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// Outbound HTTP, shared by every HTTP receiver (Alertmanager, alert webhooks, HTTP command
// sinks): one way to build a client from its configuration, one place that decides what a
// status means.

// DefaultHTTPTimeout bounds one outbound HTTP request.
const DefaultHTTPTimeout = 10 * time.Second

// UserAgent is the User-Agent of flowwatch's outbound requests.
const UserAgent = "flowwatch"

// NewHTTPClient builds the client an http_config describes (nil: the defaults): headers, basic
// auth, authorization or bearer token, OAuth2, TLS with a CA and a client certificate, proxy.
// It reads the files the configuration names, so a missing CA file fails here.
func NewHTTPClient(hc *HTTPClientConfig) (*http.Client, error) {
	cfg := promconfig.DefaultHTTPClientConfig
	if hc != nil {
		cfg = promconfig.HTTPClientConfig(*hc)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return promconfig.NewClientFromConfig(cfg, "flowwatch", promconfig.WithUserAgent(UserAgent))
}

// redact removes credentials from a URL for errors and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// permanentError is a delivery the receiver refused (4xx): sending it again will not help.
type permanentError struct{ error }

// IsPermanent reports whether a delivery error will not go away by retrying.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// post sends one JSON body and decides success by status: 2xx ok, 4xx permanent, else retry.
func post(ctx context.Context, client *http.Client, target string, body []byte, header http.Header) error {
	ctx, cancel := context.WithTimeoutCause(ctx, DefaultHTTPTimeout, fmt.Errorf("POST %s took longer than %s", redact(target), DefaultHTTPTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request to %s: %w", redact(target), err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			err = c
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("POST %s: %w", redact(target), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST %s: %s: %s", redact(target), resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
		return permanentError{err}
	}
	return err
}
