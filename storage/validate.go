package storage

import (
	"fmt"
	"time"
)

// What a Writer refuses, in one place for every store (the transports and the in-memory one
// of package storagetest): each Check function returns an error wrapping ErrInvalid that names
// the first bad record, or nil. A refused call writes nothing.

// CheckAliases reports an alias without its tenant, flow, attribute or key, or with an
// identity that is not valid UTF-8 (ErrNotUTF8).
func CheckAliases(aliases []Alias) error {
	for i, a := range aliases {
		if a.Tenant == "" || a.Flow == "" || a.Attr == "" || a.Key == "" {
			return fmt.Errorf("write aliases: %w: alias %d: tenant, flow, attr and key are required", ErrInvalid, i)
		}
		for _, v := range [...]string{a.Tenant, a.Flow, a.Attr, a.Value, a.Key} {
			if !ValidUTF8(v) {
				return fmt.Errorf("write aliases: alias %d: %w", i, ErrNotUTF8)
			}
		}
	}
	return nil
}

// CheckStates reports a state without its tenant, flow or key, or with a negative version
// or shard.
func CheckStates(states []InstanceState) error {
	for i, st := range states {
		if st.Tenant == "" || st.Flow == "" || st.Key == "" {
			return fmt.Errorf("write states: %w: state %d: tenant, flow and key are required", ErrInvalid, i)
		}
		if st.Version < 0 || st.Shard < 0 {
			return fmt.Errorf("write states: %w: state %d: negative version or shard", ErrInvalid, i)
		}
	}
	return nil
}

// CheckAlerts reports an alert record with a negative version.
func CheckAlerts(alerts []AlertRecord) error {
	for i, a := range alerts {
		if a.Version < 0 {
			return fmt.Errorf("write alerts: %w: alert %d: negative version", ErrInvalid, i)
		}
	}
	return nil
}

// CheckCommands reports a command record without its id, or with a negative version or
// attempt.
func CheckCommands(commands []CommandRecord) error {
	for i, c := range commands {
		if c.ID == "" {
			return fmt.Errorf("write commands: %w: command %d: id is required", ErrInvalid, i)
		}
		if c.Version < 0 || c.Attempt < 0 {
			return fmt.Errorf("write commands: %w: command %d: negative version or attempt", ErrInvalid, i)
		}
	}
	return nil
}

// CheckFlowVersions reports a flow version without its flow, a version number (>= 1) or the
// time it was loaded.
func CheckFlowVersions(vs []FlowVersion) error {
	for i, v := range vs {
		if v.Flow == "" || v.Version < 1 || v.LoadedAt.IsZero() {
			return fmt.Errorf("write flow versions: %w: version %d: flow, version and loaded_at are required", ErrInvalid, i)
		}
	}
	return nil
}

// Defaults of the JSON documents of an InstanceState written without them.
const (
	DefaultExpected   = "[]"
	DefaultReason     = "{}"
	DefaultViolations = "[]"
)

// StoredState is st as every store keeps it: the JSON documents default to
// DefaultExpected, DefaultReason and DefaultViolations, and a zero UpdatedAt is now.
func StoredState(st InstanceState, now time.Time) InstanceState {
	st.Expected = jsonOr(st.Expected, DefaultExpected)
	st.Reason = jsonOr(st.Reason, DefaultReason)
	st.Violations = jsonOr(st.Violations, DefaultViolations)
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = now
	}
	return st
}

func jsonOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
