// Package console owns flowwatch's web console (DESIGN.md "Console"): the built page and its
// assets, embedded in the binary, and the handler that serves them on the query API's
// listener beside the API.
//
// The console reads only the public query API from the browser, like the Grafana plugin: this
// package never reads the store, never evaluates instances and adds no API route. Its sources
// live in web/ (TypeScript, built by `make console` into dist/, which is committed so that
// `go build` alone includes it).
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// TraceIDPlaceholder is where a trace link template takes the trace ID.
const TraceIDPlaceholder = "{trace_id}"

// DefaultRefresh is how often the pages reload what they show.
const DefaultRefresh = 5 * time.Second

// Config is what the console tells the page, besides what it reads from the API.
type Config struct {
	// TraceURL is the link template of one trace, e.g.
	// "https://jaeger.example/trace/{trace_id}"; empty shows trace IDs without links.
	TraceURL string
	// OperatorAPI tells whether the operator actions (cancel, unblock) are served: the page
	// shows their buttons only then.
	OperatorAPI bool
	// TokenRequired tells whether the API wants a bearer token, so the page asks for it
	// before its first request instead of after a 401.
	TokenRequired bool
	// Refresh is how often the pages reload; zero means DefaultRefresh.
	Refresh time.Duration
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.TraceURL != "" {
		u, err := url.Parse(strings.ReplaceAll(c.TraceURL, TraceIDPlaceholder, "0"))
		switch {
		case !strings.Contains(c.TraceURL, TraceIDPlaceholder):
			errs = append(errs, fmt.Errorf("trace URL %q has no %s where the trace ID goes", c.TraceURL, TraceIDPlaceholder))
		case err != nil:
			errs = append(errs, fmt.Errorf("trace URL %q: %w", c.TraceURL, err))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("trace URL %q must be an absolute http(s) URL", c.TraceURL))
		}
	}
	if c.Refresh < 0 {
		errs = append(errs, fmt.Errorf("refresh %s must not be negative", c.Refresh))
	}
	return errors.Join(errs...)
}

// pageConfig is GET /console/config.json: the page's own settings (the names are a contract
// with web/src/config.ts).
type pageConfig struct {
	TraceURL      string `json:"trace_url"`
	OperatorAPI   bool   `json:"operator_api"`
	TokenRequired bool   `json:"token_required"`
	RefreshMS     int64  `json:"refresh_ms"`
}

// contentSecurityPolicy lets the page load only its own assets and talk only to its own
// origin: no CDN, font or script from elsewhere can sneak in.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed dist
var dist embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	name, contentType, etag string
	body                    []byte
}

// assets reads the embedded dist/ folder.
func assets() (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "dist/")
		out[name] = &asset{name: name, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:16]) + `"`, body: body}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded console: %w", err)
	}
	if out["index.html"] == nil {
		return nil, errors.New("read the embedded console: dist/index.html is missing (run `make console`)")
	}
	return out, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// Handler serves the console at GET / and its assets and configuration under /console/, and
// hands every other request to api (the query API handler of the same listener).
func Handler(api http.Handler, cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	files, err := assets()
	if err != nil {
		return nil, err
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	conf, err := json.Marshal(pageConfig{TraceURL: cfg.TraceURL, OperatorAPI: cfg.OperatorAPI,
		TokenRequired: cfg.TokenRequired, RefreshMS: cfg.Refresh.Milliseconds()})
	if err != nil {
		return nil, fmt.Errorf("console: encode the page configuration: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, files["index.html"])
	})
	mux.HandleFunc("GET /console/config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(conf)
	})
	mux.HandleFunc("GET /console/{file}", func(w http.ResponseWriter, r *http.Request) {
		a := files[r.PathValue("file")]
		if a == nil || a.name == "index.html" {
			http.Error(w, "no such console file", http.StatusNotFound)
			return
		}
		serveAsset(w, r, a)
	})
	return mux, nil
}

// serveAsset answers with an embedded file. Every answer is revalidated (no-cache) against
// its ETag, so a new binary's console is picked up at once and an unchanged one costs a 304.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.name == "index.html" {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
