package flowstate

import (
	"sort"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Children evaluates the children of one child flow from their stored rows (by child key, as
// storage.Reader.InstancesEvents returns them) at now: the summaries a parent is judged with
// (model.Instance.SetChildren, model.Progress.Children), by key. versions are the child flow's.
// The detector's read-backs, the API's detail and replay rebuild a family this one way.
func Children(versions []*model.Flow, tenant string, rows map[string][]storage.CheckpointEvent, now time.Time) []model.Child {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]model.Child, 0, len(keys))
	for _, k := range keys {
		in, _ := Rebuild(versions, tenant, k, rows[k], nil)
		if !HasCheckpoint(in) {
			continue
		}
		out = append(out, in.Evaluate(now).AsChild())
	}
	return out
}
