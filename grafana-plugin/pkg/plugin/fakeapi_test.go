package plugin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// fakeAPI serves the documents of DESIGN.md's query API v1 from fixed data, with a bearer
// token, so the plugin's error paths and frame shapes are tested without a store. The real
// API is exercised by realapi_test.go.
func fakeAPI(token string) http.Handler {
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/v1/flows", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"flows":[
			{"name":"order-fulfilment","version":1,"checkpoints":["placed","paid","shipped"]},
			{"name":"order-fulfilment","version":2,"checkpoints":[{"name":"placed"},{"name":"paid"},{"name":"stock_reserved"},{"name":"shipped"}]},
			{"name":"refund","version":1,"checkpoints":["requested","refunded"]}]}`))
	}))
	mux.HandleFunc("GET /api/v1/instances", auth(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var out []map[string]any
		for _, in := range fakeInstances() {
			if (q.Get("flow") == "" || in["flow"] == q.Get("flow")) &&
				(q.Get("status") == "" || in["status"] == q.Get("status")) &&
				(q.Get("tenant") == "" || in["tenant"] == q.Get("tenant")) {
				out = append(out, in)
			}
		}
		// pages of at most limit, the cursor being the offset
		off, _ := strconv.Atoi(q.Get("cursor"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 || limit > 2 {
			limit = 2 // small pages: the plugin must follow the cursor
		}
		next := ""
		end := min(off+limit, len(out))
		if end < len(out) {
			next = strconv.Itoa(end)
		}
		writeJSON(w, http.StatusOK, map[string]any{"instances": out[min(off, len(out)):end], "next_cursor": next})
	}))
	mux.HandleFunc("GET /api/v1/flows/{flow}/instances/{key}", auth(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("flow") != "order-fulfilment" || r.PathValue("key") != "o-1" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "instance not found"})
			return
		}
		in := fakeInstances()[0]
		in["events"] = []map[string]any{
			{"checkpoint": "placed", "time": "2026-11-26T10:00:00Z", "service": "orders", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "status": "ok"},
			{"checkpoint": "", "time": "2026-11-26T10:01:00Z", "service": "payments", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b8", "status": "error"},
			{"checkpoint": "stock_reserved", "time": "2026-11-26T10:02:00Z", "service": "inventory", "trace_id": "5af92f3577b34da6a3ce929d0e0e4737", "span_id": "00f067aa0ba902b9", "status": "ok"},
			{"checkpoint": "stock_reserved", "time": "2026-11-26T10:03:00Z", "service": "inventory", "trace_id": "5af92f3577b34da6a3ce929d0e0e4737", "span_id": "00f067aa0ba902ba", "status": "ok"},
		}
		in["violations"] = []map[string]any{
			{"kind": "duplicate_checkpoint", "checkpoint": "stock_reserved", "time": "2026-11-26T10:03:00Z", "detail": `"stock_reserved" already reached at 2026-11-26T10:02:00Z`},
		}
		writeJSON(w, http.StatusOK, in)
	}))
	mux.HandleFunc("GET /api/v1/flows/{flow}/graph", auth(func(w http.ResponseWriter, r *http.Request) {
		if _, err := parseRange(r); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		_, _ = w.Write([]byte(`{"nodes":[{"id":"placed","count":10,"stuck":0},{"id":"paid","count":7,"stuck":2},
			{"id":"stock_reserved","count":9,"stuck":1},{"id":"shipped","count":0,"stuck":0}],
			"edges":[{"source":"placed","target":"paid","count":7,"p50_ms":1200,"p95_ms":5400.5},
			{"source":"placed","target":"stock_reserved","count":9,"p50_ms":300,"p95_ms":900},
			{"source":"paid","target":"shipped","count":0,"p50_ms":0,"p95_ms":0},
			{"source":"stock_reserved","target":"shipped","count":0,"p50_ms":0,"p95_ms":0}]}`))
	}))
	mux.HandleFunc("GET /api/v1/flows/{flow}/series", auth(func(w http.ResponseWriter, r *http.Request) {
		from, err := parseRange(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		step, err := time.ParseDuration(r.URL.Query().Get("step"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad step: " + err.Error()})
			return
		}
		p := func(i int, v float64) [2]float64 {
			return [2]float64{float64(from.Add(time.Duration(i) * step).UnixMilli()), v}
		}
		names := []string{"running", "stuck"}
		if r.URL.Query().Get("by") == "checkpoint" {
			names = []string{"placed", "paid"}
		}
		writeJSON(w, http.StatusOK, map[string]any{"series": []map[string]any{
			{"name": names[0], "points": [][2]float64{p(0, 3), p(1, 4), p(2, 4)}},
			{"name": names[1], "points": [][2]float64{p(0, 0), p(1, 1), p(2, 2)}},
		}})
	}))
	return mux
}

func parseRange(r *http.Request) (time.Time, error) {
	from, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("from"))
	if err != nil {
		return from, err
	}
	_, err = time.Parse(time.RFC3339Nano, r.URL.Query().Get("to"))
	return from, err
}

func fakeInstances() []map[string]any {
	var out []map[string]any
	_ = json.Unmarshal([]byte(`[
	{"tenant":"acme","flow":"order-fulfilment","version":2,"key":"o-1","status":"stuck",
	 "started_at":"2026-11-26T10:00:00Z","last_seen":"2026-11-26T10:03:00Z","last_checkpoint":"stock_reserved",
	 "expected":[{"checkpoint":"paid","deadline":"2026-11-26T10:15:00Z"}],
	 "reason":{"checkpoint":"paid","since":"2026-11-26T10:00:00Z","deadline":"2026-11-26T10:15:00Z","overdue":"1h45m0s",
	   "overdue_seconds":6300,"service":"payments","last_checkpoint":"stock_reserved",
	   "last_error":{"service":"payments","name":"POST /charge","message":"card declined","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","time":"2026-11-26T10:01:00Z"},
	   "trace_ids":["4bf92f3577b34da6a3ce929d0e0e4736","5af92f3577b34da6a3ce929d0e0e4737"],
	   "summary":"order-fulfilment o-1: \"paid\" expected from payments by 2026-11-26T10:15:00Z, overdue by 1h45m0s; last checkpoint \"stock_reserved\"; last error in payments \"POST /charge\": card declined"}},
	{"tenant":"acme","flow":"order-fulfilment","version":2,"key":"o-2","status":"running",
	 "started_at":"2026-11-26T11:50:00Z","last_seen":"2026-11-26T11:50:00Z","last_checkpoint":"placed",
	 "expected":[{"checkpoint":"stock_reserved","deadline":"2026-11-26T12:00:30Z"},{"checkpoint":"paid","deadline":"2026-11-26T12:05:00Z"}],"reason":null},
	{"tenant":"acme","flow":"order-fulfilment","version":1,"key":"o-0","status":"completed",
	 "started_at":"2026-11-25T09:00:00Z","last_seen":"2026-11-25T12:00:00Z","last_checkpoint":"shipped","expected":[],"reason":null},
	{"tenant":"globex","flow":"refund","version":1,"key":"r-9","status":"failed",
	 "started_at":"2026-11-26T08:00:00Z","last_seen":"2026-11-26T08:30:00Z","last_checkpoint":"rejected","expected":[],"reason":null}
	]`), &out)
	return out
}
