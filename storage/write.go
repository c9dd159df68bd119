package storage

import (
	"context"
	"fmt"
	"time"
)

// The Writer side of store: every write is idempotent (see Writer), values are checked
// before anything is sent, and each call is one insert per table.

func (s *store) WriteEvents(ctx context.Context, events []CheckpointEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := s.now()
	b, err := PrepareEvents(events, now)
	if err != nil {
		return err
	}
	return s.writeEvents(ctx, b, now.UnixNano())
}

// WriteBatch writes the batch's aliases, then its events (so that a reader of new events can
// already resolve their aliases). A batch with an invalid row writes nothing and returns an
// error wrapping ErrInvalid that names every bad row (see CheckRow). The batch is not changed:
// rows without an ingest time get the time of this call.
func (s *store) WriteBatch(ctx context.Context, b *EventBatch) error {
	if b.Len() == 0 {
		return nil
	}
	if err := b.Check(); err != nil {
		return err
	}
	if err := s.WriteAliases(ctx, b.AliasRows()); err != nil {
		return err
	}
	return s.writeEvents(ctx, b, s.now().UnixNano())
}

func (s *store) writeEvents(ctx context.Context, b *EventBatch, now int64) error {
	start := time.Now()
	if err := s.b.insertEvents(ctx, s.table("checkpoint_events"), b, now); err != nil {
		return fmt.Errorf("write %d events: %w", b.Len(), err)
	}
	s.log.Debug("events written", "rows", b.Len(), "took", time.Since(start))
	return nil
}

func (s *store) WriteAliases(ctx context.Context, aliases []Alias) error {
	if len(aliases) == 0 {
		return nil
	}
	if err := CheckAliases(aliases); err != nil {
		return err
	}
	if err := s.b.insertAliases(ctx, s.table("aliases"), aliases); err != nil {
		return fmt.Errorf("write %d aliases: %w", len(aliases), err)
	}
	return nil
}

func (s *store) WriteStates(ctx context.Context, states []InstanceState) error {
	if err := s.d.unsupported("write states"); err != nil || len(states) == 0 {
		return err
	}
	if err := CheckStates(states); err != nil {
		return err
	}
	rs := make([][]any, len(states))
	now := s.now()
	for i := range states {
		st := StoredState(states[i], now)
		rs[i] = []any{st.Tenant, st.Flow, uint32(st.Version), st.Key, st.Status, s.d.timeValue(st.StartedAt), s.d.timeValue(st.LastSeen),
			st.LastCheckpoint, st.Expected, st.Reason, st.Violations, uint32(st.Shard), st.UpdatedAt}
	}
	cols := []string{"tenant", "flow", "version", "key", "status", "started_at", "last_seen", "last_checkpoint",
		"expected", "reason", "violations", "shard", "updated_at"}
	if err := s.b.insert(ctx, s.table("instance_states"), cols, rs); err != nil {
		return fmt.Errorf("write %d states: %w", len(states), err)
	}
	return nil
}

func (s *store) WriteAlerts(ctx context.Context, alerts []AlertRecord) error {
	if err := s.d.unsupported("write alerts"); err != nil || len(alerts) == 0 {
		return err
	}
	if err := CheckAlerts(alerts); err != nil {
		return err
	}
	rs := make([][]any, len(alerts))
	for i, a := range alerts {
		rs[i] = []any{s.d.timeValue(a.Time), a.Tenant, a.Flow, uint32(a.Version), a.Key, a.Checkpoint, a.State, a.Sink, a.Fingerprint, a.Summary, a.Error}
	}
	cols := []string{"time", "tenant", "flow", "version", "key", "checkpoint", "state", "sink", "fingerprint", "summary", "error"}
	if err := s.b.insert(ctx, s.table("alerts"), cols, rs); err != nil {
		return fmt.Errorf("write %d alerts: %w", len(alerts), err)
	}
	return nil
}

func (s *store) WriteCommands(ctx context.Context, commands []CommandRecord) error {
	if err := s.d.unsupported("write commands"); err != nil || len(commands) == 0 {
		return err
	}
	if err := CheckCommands(commands); err != nil {
		return err
	}
	rs := make([][]any, len(commands))
	for i, c := range commands {
		rs[i] = []any{c.ID, s.d.timeValue(c.Time), c.Tenant, c.Flow, uint32(c.Version), c.Key, c.Checkpoint, uint32(c.Attempt), c.Sink, c.Subject, c.Outcome, c.Error, c.Payload}
	}
	cols := []string{"id", "time", "tenant", "flow", "version", "key", "checkpoint", "attempt", "sink", "subject", "outcome", "error", "payload"}
	if err := s.b.insert(ctx, s.table("commands"), cols, rs); err != nil {
		return fmt.Errorf("write %d commands: %w", len(commands), err)
	}
	return nil
}
