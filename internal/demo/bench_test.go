//go:build unix

package demo_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/flowwatch/flowwatch/internal/demo"
)

// BenchmarkDemoOrders measures how fast the demo plays whole order journeys (about 17
// spans, 3 span events and 1 log each) through the SDK and OTLP/gRPC into an in-process
// receiver that discards them: the CPU of both sides is counted.
func BenchmarkDemoOrders(b *testing.B) {
	addr := freeAddr(b)
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = addr
	set := receivertest.NewNopSettings(f.Type())
	tr, err := f.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(b, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, tr.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(b, tr.Shutdown(context.Background())) }()
	require.NoError(b, lr.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(b, lr.Shutdown(context.Background())) }()

	dc := demo.DefaultConfig()
	dc.OTLP = addr
	dc.Rate = 1e6
	dc.Delay = 0
	dc.Orders = b.N
	dc.CancelRate, dc.ErrorRate, dc.PaymentShare, dc.OnboardingShare = 0, 0, 0, 0
	dc.Seed = 1
	dc.ReportEvery = 0
	d, err := demo.New(context.Background(), dc)
	require.NoError(b, err)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	require.NoError(b, d.Run(context.Background()))
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	st := d.Stats()
	require.EqualValues(b, b.N, st.Delivered)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	// The machine is shared: CPU time per order is the figure that holds under load.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/order")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
