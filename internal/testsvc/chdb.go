package testsvc

import (
	"fmt"
	"os"
	"testing"
)

// RunInChDBFolder is a package's TestMain body for tests of the embedded store: chDB allows
// one data folder per process, so the tests of a package share one (each in a database of its
// own). It creates the folder, sets *dir, runs the tests, removes the folder and returns the
// exit code.
func RunInChDBFolder(m *testing.M, prefix string, dir *string) int {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*dir = d
	code := m.Run()
	os.RemoveAll(d)
	return code
}
