// Package testctx holds contexts for tests that must end at a chosen point of the work, not at
// a chosen time. It is for tests only.
package testctx

import "context"

// CancelAfter is a context whose Err turns to context.Canceled after N calls: work that checks
// its context between steps is interrupted after N steps, deterministically.
type CancelAfter struct {
	context.Context
	N int
}

// Err implements context.Context.
func (c *CancelAfter) Err() error {
	if c.N--; c.N < 0 {
		return context.Canceled
	}
	return nil
}
