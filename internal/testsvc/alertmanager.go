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

	"golang.org/x/crypto/bcrypt"
)

// AlertmanagerBinary is Debian's Alertmanager (scripts/deps.sh installs it).
const AlertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// Alertmanager is one prometheus-alertmanager process of our own, listening on 127.0.0.1
// with no cluster gossip port; its config and data live in Dir.
type Alertmanager struct {
	Dir  string
	Port int
	// Secure is set when it serves its API over TLS, requiring a client certificate from
	// the PKI and basic auth (Alertmanager's --web.config.file).
	Secure *AlertmanagerSecurity
	cmd    *exec.Cmd
	done   chan error
}

// AlertmanagerSecurity is how a secure Alertmanager is reached: TLS with a server
// certificate of PKI, a client certificate (ClientCert, ClientKey) and basic auth.
type AlertmanagerSecurity struct {
	PKI                   *PKI
	ClientCert, ClientKey string
	Username, Password    string
}

// URL is the base URL of its API.
func (a *Alertmanager) URL() string {
	if a.Secure != nil {
		return fmt.Sprintf("https://127.0.0.1:%d", a.Port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", a.Port)
}

// Client is an HTTP client that reaches its API (with the client certificate; Get adds the
// basic auth).
func (a *Alertmanager) Client() (*http.Client, error) {
	if a.Secure == nil {
		return http.DefaultClient, nil
	}
	tc, err := a.Secure.PKI.ClientTLS("client")
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}, nil
}

// Get sends GET path to its API, with the credentials it needs.
func (a *Alertmanager) Get(ctx context.Context, path string) (*http.Response, error) {
	client, err := a.Client()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+path, nil)
	if err != nil {
		return nil, err
	}
	if a.Secure != nil {
		req.SetBasicAuth(a.Secure.Username, a.Secure.Password)
	}
	return client.Do(req)
}

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
	return startAlertmanager(ctx, dir, nil)
}

// StartSecureAlertmanager starts an Alertmanager that serves its API over TLS only, to
// clients with a certificate of its own test CA and basic auth (user flowwatch): its
// --web.config.file, in the exporter-toolkit format.
func StartSecureAlertmanager(ctx context.Context, dir string) (*Alertmanager, error) {
	pki, err := NewPKI(dir)
	if err != nil {
		return nil, err
	}
	serverCert, serverKey, err := pki.Issue("server", true)
	if err != nil {
		return nil, err
	}
	clientCert, clientKey, err := pki.Issue("client", false)
	if err != nil {
		return nil, err
	}
	sec := &AlertmanagerSecurity{PKI: pki, ClientCert: clientCert, ClientKey: clientKey, Username: "flowwatch", Password: "am-s3cret"}
	hash, err := bcrypt.GenerateFromPassword([]byte(sec.Password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("hash the alertmanager password: %w", err)
	}
	web := fmt.Sprintf("tls_server_config:\n  cert_file: %q\n  key_file: %q\n  client_auth_type: RequireAndVerifyClientCert\n"+
		"  client_ca_file: %q\nbasic_auth_users:\n  %s: %q\n", serverCert, serverKey, pki.CAFile, sec.Username, hash)
	return startAlertmanager(ctx, dir, &secureStart{sec: sec, webConfig: web})
}

type secureStart struct {
	sec       *AlertmanagerSecurity
	webConfig string
}

func startAlertmanager(ctx context.Context, dir string, secure *secureStart) (*Alertmanager, error) {
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
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address="}
	if secure != nil {
		a.Secure = secure.sec
		web := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(web, []byte(secure.webConfig), 0o600); err != nil {
			logf.Close()
			return nil, fmt.Errorf("write alertmanager web config: %w", err)
		}
		args = append(args, "--web.config.file="+web)
	}
	a.cmd = exec.Command(AlertmanagerBinary, args...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", AlertmanagerBinary, err)
	}
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := a.Get(ctx, "/-/ready"); err == nil {
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
	return alertmanagerT(t, StartAlertmanager)
}

// SecureAlertmanagerT is AlertmanagerT for StartSecureAlertmanager.
func SecureAlertmanagerT(t testing.TB) *Alertmanager {
	t.Helper()
	return alertmanagerT(t, StartSecureAlertmanager)
}

func alertmanagerT(t testing.TB, start func(context.Context, string) (*Alertmanager, error)) *Alertmanager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return a
}
