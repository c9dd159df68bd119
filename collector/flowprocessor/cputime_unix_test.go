//go:build unix

package flowprocessor

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared machine it tells the cost of
// a benchmark better than the wall clock, which counts time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
