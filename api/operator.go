package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Operator actions (DESIGN.md "Operator actions"): served only when Config.OperatorAPI is on,
// behind the bearer token when one is set. Each is written to the store as an operator event
// of the instance (model.OperatorCancel, model.OperatorUnblock) that the detector reads like
// any checkpoint row, so every shard and every restart sees it. The answer is 202: the
// detector acts on its next read.
var operatorRoutes = []route{
	{"POST", "/api/v1/flows/{flow}/instances/{key}/cancel", true, (*server).cancel},
	{"POST", "/api/v1/flows/{flow}/instances/{key}/unblock", true, (*server).unblock},
}

// maxActionBody bounds an operator action's request body.
const maxActionBody = 16 << 10

// CancelRequest is the body of POST .../cancel.
type CancelRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// UnblockRequest is the body of POST .../unblock.
type UnblockRequest struct {
	Checkpoint string `json:"checkpoint"`
	By         string `json:"by"`
}

// ActionAccepted is the answer to an operator action: what was recorded, for the detector to
// act on.
type ActionAccepted struct {
	Action     string    `json:"action"`
	Tenant     string    `json:"tenant"`
	Flow       string    `json:"flow"`
	Key        string    `json:"key"`
	Checkpoint string    `json:"checkpoint,omitempty"`
	By         string    `json:"by"`
	Reason     string    `json:"reason,omitempty"`
	Time       time.Time `json:"time"`
	EventID    string    `json:"event_id"`
}

// decodeAction reads a JSON body of at most maxActionBody with only known fields.
func decodeAction(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &httpError{http.StatusUnsupportedMediaType, "the body must be application/json"}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxActionBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return &httpError{http.StatusBadRequest, "a JSON body is required"}
		}
		return &httpError{http.StatusBadRequest, "malformed JSON body: " + err.Error()}
	}
	if dec.More() {
		return &httpError{http.StatusBadRequest, "the body must hold one JSON object"}
	}
	return nil
}

// actionTenant reads the one query parameter of an action.
func actionTenant(r *http.Request) (string, error) {
	q, err := query(r, "tenant")
	if err != nil {
		return "", err
	}
	return q["tenant"], nil
}

// actionTarget reads the instance an action names, and refuses an instance that is not open.
func (s *server) actionTarget(r *http.Request, tenant string) (flowstate.Document, error) {
	if tenant == "" {
		tenant = DefaultTenant
	}
	flow, key := r.PathValue("flow"), r.PathValue("key")
	if _, err := s.definedFlow(r); err != nil {
		return flowstate.Document{}, err
	}
	st, err := s.cfg.Reader.Instance(r.Context(), tenant, flow, key)
	if err != nil {
		return flowstate.Document{}, fmt.Errorf("read instance %s/%s/%s: %w", tenant, flow, key, err)
	}
	if st == nil {
		return flowstate.Document{}, errNotFound("no instance %q of flow %q in tenant %q", key, flow, tenant)
	}
	doc, err := flowstate.Parse(*st)
	if err != nil {
		return flowstate.Document{}, fmt.Errorf("read instance %s/%s/%s: %w", tenant, flow, key, err)
	}
	if model.Status(st.Status).Closed() {
		return flowstate.Document{}, &httpError{http.StatusConflict, fmt.Sprintf("instance %q of flow %q is %s: only an open instance (running, stuck or compensating) can be acted on", key, flow, st.Status)}
	}
	return doc, nil
}

func requireField(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return errBadParam(name, "is required")
	}
	if len(v) > 1024 {
		return errBadParam(name, "is longer than 1024 bytes")
	}
	return nil
}

func (s *server) cancel(w http.ResponseWriter, r *http.Request) error {
	tenant, err := actionTenant(r)
	if err != nil {
		return err
	}
	var req CancelRequest
	if err := decodeAction(r, &req); err != nil {
		return err
	}
	if err := errors.Join(requireField("reason", req.Reason), requireField("by", req.By)); err != nil {
		return err
	}
	doc, err := s.actionTarget(r, tenant)
	if err != nil {
		return err
	}
	return s.record(w, r, doc, model.OperatorCancel, "", req.By, req.Reason)
}

func (s *server) unblock(w http.ResponseWriter, r *http.Request) error {
	tenant, err := actionTenant(r)
	if err != nil {
		return err
	}
	var req UnblockRequest
	if err := decodeAction(r, &req); err != nil {
		return err
	}
	if err := errors.Join(requireField("checkpoint", req.Checkpoint), requireField("by", req.By)); err != nil {
		return err
	}
	doc, err := s.actionTarget(r, tenant)
	if err != nil {
		return err
	}
	f := s.cfg.Flows().Version(doc.Flow, doc.Version)
	if f == nil {
		return &httpError{http.StatusConflict, fmt.Sprintf("version %d of flow %q is not loaded", doc.Version, doc.Flow)}
	}
	c := f.Checkpoint(req.Checkpoint)
	if c == nil {
		return errBadParam("checkpoint", "%q is not a checkpoint of flow %q version %d", req.Checkpoint, doc.Flow, doc.Version)
	}
	if len(c.OnStuck) == 0 {
		return &httpError{http.StatusConflict, fmt.Sprintf("checkpoint %q has no on_stuck action to send", req.Checkpoint)}
	}
	now := s.cfg.Now()
	if !slices.ContainsFunc(doc.Expected, func(x flowstate.Expected) bool {
		return x.Checkpoint == req.Checkpoint && now.After(x.Deadline)
	}) {
		return &httpError{http.StatusConflict, fmt.Sprintf("checkpoint %q is not overdue on this instance", req.Checkpoint)}
	}
	return s.record(w, r, doc, model.OperatorUnblock, req.Checkpoint, req.By, "")
}

// record writes the operator event and answers 202 with it.
func (s *server) record(w http.ResponseWriter, r *http.Request, doc flowstate.Document, action, checkpoint, by, reason string) error {
	now := s.cfg.Now().UTC()
	ev := flowstate.OperatorEvent(doc.Tenant, doc.Flow, doc.Key, action, checkpoint, by, reason, now)
	if err := s.cfg.Writer.WriteEvents(r.Context(), []storage.CheckpointEvent{ev}); err != nil {
		return fmt.Errorf("record %s of %s/%s: %w", ev.Name, doc.Flow, doc.Key, err)
	}
	s.cfg.Logger.InfoContext(r.Context(), "operator action recorded", "action", ev.Name, "tenant", doc.Tenant,
		"flow", doc.Flow, "key", doc.Key, "by", by)
	writeJSON(w, http.StatusAccepted, ActionAccepted{Action: strings.TrimPrefix(action, "@"), Tenant: doc.Tenant, Flow: doc.Flow,
		Key: doc.Key, Checkpoint: checkpoint, By: by, Reason: reason, Time: now, EventID: ev.EventID})
	return nil
}
