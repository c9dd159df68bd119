package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Families in the instance detail: a parent is evaluated with its children, and lists them.

// children reads and evaluates at now the children of a parent instance, of every child flow
// of its versions: nil for an instance of a flow without a children checkpoint.
func (s *server) children(r *http.Request, set *model.Set, versions []*model.Flow, tenant, key string, now time.Time) ([]model.Child, error) {
	var out []model.Child
	for _, cf := range model.ChildFlowsOf(versions) {
		if out == nil {
			out = []model.Child{}
		}
		rows, err := storage.ChildrenEvents(r.Context(), s.cfg.Reader, tenant, cf, []string{key}, 0)
		if err != nil {
			return nil, fmt.Errorf("read the children of %s/%s: %w", tenant, key, err)
		}
		out = append(out, flowstate.Children(set.Versions(cf), tenant, rows[key], now)...)
	}
	return out, nil
}
