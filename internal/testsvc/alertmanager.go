package testsvc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// AlertmanagerBinary is Debian's Alertmanager (scripts/deps.sh installs it).
const AlertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// Alertmanager is one prometheus-alertmanager process of our own, listening on 127.0.0.1
// with no cluster gossip port; its config and data live in Dir.
type Alertmanager struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan error
}

// URL is the base URL of its API.
func (a *Alertmanager) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", a.Port) }

const alertmanagerConfig = `route:
  receiver: hook
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
`

// StartAlertmanager starts an Alertmanager on a free loopback port and returns once it is
// ready (GET /-/ready).
func StartAlertmanager(ctx context.Context, dir string) (*Alertmanager, error) {
	if _, err := os.Stat(AlertmanagerBinary); err != nil {
		return nil, fmt.Errorf("start alertmanager: %s missing (run `make deps`): %w", AlertmanagerBinary, err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(alertmanagerConfig), 0o600); err != nil {
		return nil, fmt.Errorf("write alertmanager config: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		return nil, fmt.Errorf("create alertmanager log: %w", err)
	}
	a := &Alertmanager{Dir: dir, Port: port, done: make(chan error, 1)}
	a.cmd = exec.Command(AlertmanagerBinary, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", AlertmanagerBinary, err)
	}
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+"/-/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, nil
			}
		}
		select {
		case err := <-a.done:
			log, _ := os.ReadFile(filepath.Join(dir, "alertmanager.log"))
			return nil, fmt.Errorf("alertmanager exited before ready: %v\n%s", err, log)
		case <-ctx.Done():
			_ = a.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = a.Stop()
			return nil, errors.New("alertmanager not ready after 20s")
		}
	}
}

// Stop sends SIGTERM to the process's PID and waits for it (SIGKILL after 10 s).
func (a *Alertmanager) Stop() error {
	if a.cmd == nil || a.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
	return nil
}

// AlertmanagerT starts an Alertmanager for a test and stops it at cleanup. It fails the test
// (never skips) when Alertmanager cannot start: `make test` installs it.
func AlertmanagerT(t testing.TB) *Alertmanager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := StartAlertmanager(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return a
}
