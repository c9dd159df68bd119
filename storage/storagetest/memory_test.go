package storagetest

import (
	"testing"

	"github.com/flowwatch/flowwatch/storage"
)

// The in-memory store keeps the same contract as the real stores.
func TestMemoryContract(t *testing.T) {
	Run(t, Target{Open: func(*testing.T, string) storage.Store { return &Memory{} }})
}
