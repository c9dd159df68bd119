// Package testctx holds contexts for tests that must end at a chosen point of the work, not at
// a chosen time. It is for tests only.
package testctx

import (
	"context"
	"sync"
)

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

// OnFirstCheck is a context that calls Do the first time its Err is asked for: a test learns
// that the work under it has started (and checks its context) without guessing a time.
type OnFirstCheck struct {
	context.Context
	Do   func()
	once sync.Once
}

// Err implements context.Context.
func (c *OnFirstCheck) Err() error {
	c.once.Do(c.Do)
	return c.Context.Err()
}
