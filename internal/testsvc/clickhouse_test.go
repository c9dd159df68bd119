package testsvc

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestClickHouseStopStart(t *testing.T) {
	ch := ClickHouseT(t)
	pid := ch.cmd.Process.Pid
	conn, err := net.Dial("tcp", ch.Addr())
	if err != nil {
		t.Fatalf("native port not listening: %v", err)
	}
	conn.Close()
	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still alive after Stop", pid)
	}
	if _, err := net.Dial("tcp", ch.Addr()); err == nil {
		t.Fatal("port still answers after Stop")
	}
	if err := ch.Start(context.Background()); err != nil {
		t.Fatalf("restart on the same folder and ports: %v", err)
	}
	if ch.cmd.Process.Pid == pid {
		t.Fatal("restart reused the old process")
	}
	if err := ch.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start while running: %v", err)
	}
	cert, err := os.ReadFile(ch.CertFile)
	if err != nil || !strings.Contains(string(cert), "BEGIN CERTIFICATE") {
		t.Fatalf("certificate: %v", err)
	}
}
