package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Config is what the query API serves from.
type Config struct {
	// Reader is the store the API reads; required.
	Reader storage.Reader
	// Flows returns the current flow definitions; nil (or a nil Set) serves no flows.
	Flows func() *model.Set
	// Token is the bearer token required on /api/ paths; empty means no authentication.
	// /metrics, /healthz and /readyz are never authenticated (probes and scrapers).
	Token string
	// Metrics is served at /metrics; nil serves the default Prometheus registry.
	Metrics http.Handler
	// Registerer receives the API's own request metrics; nil means the default registerer.
	Registerer prometheus.Registerer
	// Ready reports whether the process is ready to serve (for /readyz); nil means always.
	Ready func(context.Context) error
	// Now is the clock (default time.Now): the default time range ends now.
	Now func() time.Time
	// Logger receives one debug line per request and one error line per 5xx; nil discards.
	Logger *slog.Logger
	// OperatorAPI serves the operator actions (cancel, unblock), which Writer records; off,
	// their routes answer 404.
	OperatorAPI bool
	Writer      storage.Writer
}

// Limits of the API's parameters.
const (
	// DefaultLimit is the page size when no limit is given; MaxLimit the largest accepted.
	DefaultLimit = 100
	MaxLimit     = 1000
	// DefaultRange is the time range when from is not given: [to-DefaultRange, to).
	DefaultRange = time.Hour
	// DefaultStep is the series step when none is given.
	DefaultStep = time.Minute
	// MaxPoints bounds the points of one series: (to-from)/step beyond it is a 400.
	MaxPoints = 11000
	// DefaultTenant is the tenant of GET /api/v1/flows/{flow}/instances/{key} when none is
	// given.
	DefaultTenant = model.DefaultTenant
)

// Statuses accepted by the status filter: every status of DESIGN.md.
var Statuses = func() []string {
	out := make([]string, len(model.Statuses))
	for i, s := range model.Statuses {
		out[i] = string(s)
	}
	return out
}()

// route is one served path and method; the OpenAPI test checks the table against
// openapi.yaml.
type route struct {
	method, pattern string
	auth            bool
	handle          func(*server, http.ResponseWriter, *http.Request) error
}

var routes = []route{
	{"GET", "/api/v1/flows", true, (*server).flows},
	{"GET", "/api/v1/instances", true, (*server).instances},
	{"GET", "/api/v1/flows/{flow}/instances/{key}", true, (*server).instance},
	{"GET", "/api/v1/flows/{flow}/graph", true, (*server).graph},
	{"GET", "/api/v1/flows/{flow}/series", true, (*server).series},
	{"GET", "/api/v1/alerts", true, (*server).alerts},
	{"GET", "/api/v1/commands", true, (*server).commands},
	{"GET", "/metrics", false, (*server).serveMetrics},
	{"GET", "/healthz", false, (*server).healthz},
	{"GET", "/readyz", false, (*server).readyz},
}

type server struct {
	cfg     Config
	token   [32]byte
	metrics *requestMetrics
}

// New returns the handler of the query API v1 (DESIGN.md "Query API v1"), and of /metrics,
// /healthz and /readyz. Every answer is JSON (but /metrics); errors are {"error": "..."}.
// A nil Config.Reader is a programming error: New panics.
func New(cfg Config) http.Handler {
	if cfg.Reader == nil {
		panic("api.New: Config.Reader is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Flows == nil {
		cfg.Flows = func() *model.Set { return nil }
	}
	if cfg.Metrics == nil {
		cfg.Metrics = promhttp.Handler()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.DefaultRegisterer
	}
	if cfg.OperatorAPI && cfg.Writer == nil {
		panic("api.New: Config.Writer is required with OperatorAPI")
	}
	s := &server{cfg: cfg, token: sha256.Sum256([]byte(cfg.Token)), metrics: newRequestMetrics(cfg.Registerer)}
	mux := http.NewServeMux()
	served := routes
	if cfg.OperatorAPI {
		served = append(slices.Clone(routes), operatorRoutes...)
	}
	for _, rt := range served {
		mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
		// The same path with no method: every other method is a JSON 405.
		mux.Handle(rt.pattern, s.wrap(route{pattern: rt.pattern, auth: rt.auth, handle: methodNotAllowed(rt.method)}))
	}
	notFound := func(*server, http.ResponseWriter, *http.Request) error {
		return errNotFound("no such path; the API lives under /api/v1/")
	}
	// Unknown paths under /api/ need the token too: without it, nothing tells what exists.
	mux.Handle("/api/", s.wrap(route{pattern: "/api/", auth: true, handle: notFound}))
	mux.Handle("/", s.wrap(route{pattern: "/", handle: notFound}))
	return mux
}

// httpError is an error with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errBadParam(name, format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf("parameter %s: %s", name, fmt.Sprintf(format, args...))}
}

func errNotFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

func methodNotAllowed(allowed string) func(*server, http.ResponseWriter, *http.Request) error {
	return func(_ *server, w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allowed+", HEAD")
		return &httpError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, allowed)}
	}
}

// wrap adds authentication, error answers, logging and metrics to a route's handler.
func (s *server) wrap(rt route) http.Handler {
	name := rt.pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		err := s.authorize(rt, rec, r)
		if err == nil {
			err = rt.handle(s, rec, r)
		}
		if err != nil {
			s.answerError(rec, r, err)
		}
		elapsed := time.Since(start)
		s.metrics.observe(name, rec.status, elapsed)
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "api request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("elapsed", elapsed))
	})
}

func (s *server) authorize(rt route, w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Token == "" || !rt.auth {
		return nil
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flowwatch"`)
		return &httpError{http.StatusUnauthorized, "missing bearer token (Authorization: Bearer TOKEN)"}
	}
	// Compare digests: constant time, and the token's length is not leaked either.
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flowwatch", error="invalid_token"`)
		return &httpError{http.StatusUnauthorized, "invalid bearer token"}
	}
	return nil
}

func (s *server) answerError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) && errors.Is(err, storage.ErrInvalid) {
		he = &httpError{http.StatusBadRequest, err.Error()} // the store refused what was asked
	}
	if he == nil {
		status := http.StatusInternalServerError
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusServiceUnavailable
		}
		he = &httpError{status, err.Error()}
	}
	if he.status >= 500 {
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "api request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", he.status), slog.String("error", he.msg))
	}
	writeJSON(w, he.status, map[string]string{"error": he.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(fmt.Sprintf(`{"error":%q}`, "encode answer: "+err.Error()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// requestMetrics are the API's own Prometheus metrics.
type requestMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRequestMetrics(reg prometheus.Registerer) *requestMetrics {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowwatch_api_requests_total",
			Help: "Query API requests, by route pattern and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowwatch_api_request_duration_seconds",
			Help:    "Query API request durations, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	m.requests = register(reg, m.requests)
	m.duration = register(reg, m.duration)
	return m
}

// register registers c, or returns the collector already registered under the same
// description (several handlers in one process share the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clash with a different collector: keep this one unregistered rather than fail
		// the API.
	}
	return c
}

func (m *requestMetrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, fmt.Sprint(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.cfg.Metrics.ServeHTTP(w, r)
	return nil
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			// An answer, not a failure: a probe polls this while a detector rebuilds.
			s.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "not ready", slog.String("reason", err.Error()))
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "not ready: " + err.Error()})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
