package flowstate

import (
	"strings"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// ModelEvent converts a stored checkpoint row to the model's event.
func ModelEvent(e *storage.CheckpointEvent) model.Event {
	return model.Event{ID: e.EventID, Checkpoint: e.Checkpoint, Time: e.Time, Service: e.Service,
		Name: e.Name, TraceID: e.TraceID, SpanID: e.SpanID, Status: e.Status, Message: e.Message,
		Attributes: e.Attributes}
}

// Owner tells which instance key an alias value of attr belongs to; ok is false when the
// value is not known as an alias.
type Owner func(attr, value string) (key string, ok bool)

// Rebuild is the one way to build an instance from its stored rows — the rows of its own key
// and the rows keyed by its aliases, as storage.Reader's InstanceEvents and InstancesEvents
// return them. versions are the flow's versions the instance may be pinned to (one, when the
// pin is known). With an owner, a row keyed by an alias attribute of these versions that
// belongs to another instance is left out; Rebuild returns how many were. Without one, the
// store's alias join is trusted.
func Rebuild(versions []*model.Flow, tenant, key string, rows []storage.CheckpointEvent, owner Owner) (*model.Instance, int) {
	in := model.NewInstance(versions, tenant, key)
	foreign := 0
	for i := range rows {
		e := &rows[i]
		if owner != nil && e.Key != key && isAlias(versions, e.KeyAttr) {
			if k, ok := owner(e.KeyAttr, e.Key); ok && k != key {
				foreign++
				continue
			}
		}
		in.Apply(ModelEvent(e))
	}
	return in, foreign
}

// IsAlias reports whether attr is an alias attribute in one of the versions, so that a key
// read from it must be resolved to the instance's key.
func IsAlias(versions []*model.Flow, attr string) bool { return isAlias(versions, attr) }

func isAlias(versions []*model.Flow, attr string) bool {
	if attr == "" {
		return false
	}
	for _, f := range versions {
		if f.IsAlias(attr) {
			return true
		}
	}
	return false
}

// HasCheckpoint reports whether an instance holds at least one checkpoint event (an instance
// of only error notes is not an instance yet).
func HasCheckpoint(in *model.Instance) bool {
	for _, e := range in.Events() {
		if !e.IsErrorNote() {
			return true
		}
	}
	return false
}

// Operator event attributes (see OperatorEvent).
const (
	AttrOperatorBy         = "operator.by"
	AttrOperatorReason     = "operator.reason"
	AttrOperatorCheckpoint = "operator.checkpoint"
	// OperatorService is the service name operator events carry.
	OperatorService = "flowwatch-operator"
)

// OperatorEvent is the stored row of an operator action on an instance (model.OperatorCancel
// or model.OperatorUnblock): who (by), why (reason), for which checkpoint (unblock), at when.
// Its id is deterministic, so a retried write stores it once.
func OperatorEvent(tenant, flow, key, action, checkpoint, by, reason string, at time.Time) storage.CheckpointEvent {
	name := strings.TrimPrefix(action, "@")
	if checkpoint != "" {
		name += " " + checkpoint
	}
	ev := storage.CheckpointEvent{Tenant: tenant, Flow: flow, Checkpoint: action, Key: key, Time: at,
		Service: OperatorService, Name: name, Status: "ok", Message: reason,
		Attributes: map[string]string{AttrOperatorBy: by}}
	if reason != "" {
		ev.Attributes[AttrOperatorReason] = reason
	}
	if checkpoint != "" {
		ev.Attributes[AttrOperatorCheckpoint] = checkpoint
	}
	ev.EventID = storage.EventID(tenant, flow, action, key, by, checkpoint, at.UnixNano(), name)
	return ev
}

// ReachService is the service name the record of a children checkpoint's reach carries.
const ReachService = "flowwatch"

// ChildrenReachEvent is the stored row that records that a parent instance reached a children
// checkpoint at (model.Flow.ReachedByChildren): no item of the parent's reaches it, so without
// it the views that count rows (graph, series, the instance's events) would not see the
// reach. keyAttr is the parent flow's key attribute. Its id is deterministic from (tenant,
// flow, key, checkpoint) alone, so judging the family again (a restart, another tick) never
// stores a second one. The judgement ignores it (model.Flow.IsChildrenReach).
func ChildrenReachEvent(tenant, flow, key, keyAttr, checkpoint string, at time.Time) storage.CheckpointEvent {
	return storage.CheckpointEvent{Tenant: tenant, Flow: flow, Checkpoint: checkpoint, Key: key, KeyAttr: keyAttr,
		Time: at, Service: ReachService, Name: model.ChildrenReachName, Status: "ok",
		EventID: storage.EventID(tenant, flow, checkpoint, key, "", "", 0, model.ChildrenReachName)}
}
