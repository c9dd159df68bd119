package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
)

// Families in the instance detail: a parent is evaluated with its children, and lists them.

// children reads and evaluates at now the children of a parent instance, of every child flow
// of its versions: nil for an instance of a flow without a children checkpoint.
func (s *server) children(r *http.Request, set *model.Set, versions []*model.Flow, tenant, key string, now time.Time) ([]model.Child, error) {
	var out []model.Child
	seen := map[string]bool{}
	for _, v := range versions {
		for _, cf := range v.ChildFlows() {
			if seen[cf] {
				continue
			}
			seen[cf] = true
			if out == nil {
				out = []model.Child{}
			}
			byParent, err := s.cfg.Reader.ChildKeys(r.Context(), tenant, cf, []string{key})
			if err != nil {
				return nil, fmt.Errorf("read the children of %s/%s: %w", tenant, key, err)
			}
			keys := byParent[key]
			for start := 0; start < len(keys); start += childBatch {
				rows, err := s.cfg.Reader.InstancesEvents(r.Context(), tenant, cf, keys[start:min(start+childBatch, len(keys))])
				if err != nil {
					return nil, fmt.Errorf("read the children of %s/%s: %w", tenant, key, err)
				}
				out = append(out, flowstate.Children(set.Versions(cf), tenant, rows, now)...)
			}
		}
	}
	return out, nil
}

// childBatch bounds the children read in one query.
const childBatch = 1000
