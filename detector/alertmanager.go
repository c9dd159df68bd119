package detector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Alertmanager posts alerts to every configured Alertmanager (never load-balanced: each
// replica must hear every alert).
type Alertmanager struct {
	// URLs are Alertmanagers called with Client (nil: http.DefaultClient).
	URLs   []string
	Client *http.Client
	// Targets are Alertmanagers with clients of their own (their http_config).
	Targets []AlertmanagerTarget
}

// AlertmanagerTarget is one Alertmanager and the client that reaches it.
type AlertmanagerTarget struct {
	URL    string
	Client *http.Client
}

// Name implements Notifier.
func (a *Alertmanager) Name() string { return "alertmanager" }

// Notify implements Notifier: POST /api/v2/alerts to each Alertmanager. An error from any
// of them fails the notification: all are sent again (Alertmanager dedups by label set).
func (a *Alertmanager) Notify(ctx context.Context, alerts []Alert) error {
	body, err := json.Marshal(alerts) // the body of POST /api/v2/alerts
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	targets := make([]AlertmanagerTarget, 0, len(a.URLs)+len(a.Targets))
	for _, u := range a.URLs {
		targets = append(targets, AlertmanagerTarget{URL: u, Client: a.Client})
	}
	targets = append(targets, a.Targets...)
	var errs []error
	for _, t := range targets {
		if err := post(ctx, t.Client, strings.TrimRight(t.URL, "/")+"/api/v2/alerts", body, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
