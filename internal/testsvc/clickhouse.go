// Package testsvc starts real services for tests — ClickHouse server, Alertmanager — on free
// loopback ports in temporary folders, and stops them by PID. It never touches system-wide
// configuration or services it did not start.
package testsvc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ClickHouseBinary is Debian's server binary (scripts/deps.sh installs it).
const ClickHouseBinary = "/usr/sbin/clickhouse-server"

// ClickHouseUser and ClickHousePassword name a second account of the test server, for tests
// of authentication (the default user has no password).
const (
	ClickHouseUser     = "flowwatch"
	ClickHousePassword = "s3cret-pw"
)

// ClickHouse is one clickhouse-server process of our own: its config, data and logs live in
// Dir; it listens on 127.0.0.1 only.
type ClickHouse struct {
	Dir      string
	TCPPort  int
	HTTPPort int
	// TLSPort serves the native protocol over TLS, with a self-signed certificate for
	// 127.0.0.1 (CertFile).
	TLSPort  int
	CertFile string
	// PKI, when set before the server starts (StartMTLSClickHouse), issues the server's
	// certificate and signs the client certificates the TLS port requires (mutual TLS).
	PKI  *PKI
	cmd  *exec.Cmd
	done chan error
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartClickHouse writes a config into dir and starts a server on free ports, returning once
// it answers /ping. Stop it with Stop (or Kill).
func StartClickHouse(ctx context.Context, dir string) (*ClickHouse, error) {
	return startClickHouse(ctx, dir, false)
}

// StartMTLSClickHouse is StartClickHouse with a TLS port that requires a client certificate
// signed by the server's PKI (in dir/pki): c.PKI.Issue makes one.
func StartMTLSClickHouse(ctx context.Context, dir string) (*ClickHouse, error) {
	return startClickHouse(ctx, dir, true)
}

func startClickHouse(ctx context.Context, dir string, mutual bool) (*ClickHouse, error) {
	if _, err := os.Stat(ClickHouseBinary); err != nil {
		return nil, fmt.Errorf("start clickhouse: %s missing (run `make deps`): %w", ClickHouseBinary, err)
	}
	tcp, err := FreePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	if httpPort == tcp {
		if httpPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	tlsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	c := &ClickHouse{Dir: dir, TCPPort: tcp, HTTPPort: httpPort, TLSPort: tlsPort}
	if tlsPort == tcp || tlsPort == httpPort {
		return nil, fmt.Errorf("start clickhouse: free ports collided, try again")
	}
	if mutual {
		if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o755); err != nil {
			return nil, fmt.Errorf("start clickhouse: %w", err)
		}
		if c.PKI, err = NewPKI(filepath.Join(dir, "pki")); err != nil {
			return nil, fmt.Errorf("start clickhouse: %w", err)
		}
	}
	if err := c.writeConfig(); err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// DSN is the native-protocol address of the server.
func (c *ClickHouse) DSN() string {
	return fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default?dial_timeout=2s&read_timeout=10s", c.TCPPort)
}

// TLSDSN is the native-protocol address over TLS (the client must trust CertFile or skip
// verification).
func (c *ClickHouse) TLSDSN() string {
	return fmt.Sprintf("clickhouse://default@127.0.0.1:%d/default?dial_timeout=2s&read_timeout=10s", c.TLSPort)
}

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1 and its key (PEM).
func writeSelfSigned(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// Addr is host:port of the native protocol.
func (c *ClickHouse) Addr() string { return "127.0.0.1:" + strconv.Itoa(c.TCPPort) }

func (c *ClickHouse) writeConfig() error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return fmt.Errorf("start clickhouse: %w", err)
		}
	}
	c.CertFile = filepath.Join(c.Dir, "server.crt")
	keyFile := filepath.Join(c.Dir, "server.key")
	verify := "<verificationMode>none</verificationMode>"
	if c.PKI != nil {
		var err error
		if c.CertFile, keyFile, err = c.PKI.Issue("clickhouse-server", true); err != nil {
			return fmt.Errorf("start clickhouse: %w", err)
		}
		verify = "<verificationMode>strict</verificationMode>\n            <caConfig>" + c.PKI.CAFile + "</caConfig>"
	} else if err := writeSelfSigned(c.CertFile, keyFile); err != nil {
		return fmt.Errorf("start clickhouse: %w", err)
	}
	config := `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>` + filepath.Join(c.Dir, "log", "server.log") + `</log>
        <errorlog>` + filepath.Join(c.Dir, "log", "error.log") + `</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>` + strconv.Itoa(c.TCPPort) + `</tcp_port>
    <http_port>` + strconv.Itoa(c.HTTPPort) + `</http_port>
    <tcp_port_secure>` + strconv.Itoa(c.TLSPort) + `</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>` + c.CertFile + `</certificateFile>
            <privateKeyFile>` + keyFile + `</privateKeyFile>
            ` + verify + `
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <path>` + filepath.Join(c.Dir, "data") + `/</path>
    <tmp_path>` + filepath.Join(c.Dir, "tmp") + `/</tmp_path>
    <user_files_path>` + filepath.Join(c.Dir, "user_files") + `/</user_files_path>
    <format_schema_path>` + filepath.Join(c.Dir, "format_schemas") + `/</format_schema_path>
    <users_config>` + filepath.Join(c.Dir, "users.xml") + `</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
`
	users := `<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <` + ClickHouseUser + `>
            <password>` + ClickHousePassword + `</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </` + ClickHouseUser + `>
    </users>
    <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(c.Dir, "config.xml"), []byte(config), 0o644); err != nil {
		return fmt.Errorf("start clickhouse: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "users.xml"), []byte(users), 0o644); err != nil {
		return fmt.Errorf("start clickhouse: %w", err)
	}
	return nil
}

// Start launches the server (again, after Stop or Kill: same folder, same ports) and waits
// until it answers, at most 30 s.
func (c *ClickHouse) Start(ctx context.Context) error {
	if c.cmd != nil {
		return errors.New("start clickhouse: already running")
	}
	cmd := exec.Command(ClickHouseBinary, "--config-file="+filepath.Join(c.Dir, "config.xml"))
	cmd.Dir = c.Dir
	out, err := os.OpenFile(filepath.Join(c.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start clickhouse: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start clickhouse: %w", err)
	}
	out.Close()
	c.cmd = cmd
	c.done = make(chan error, 1)
	go func() { c.done <- cmd.Wait() }()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/ping", c.HTTPPort)
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-c.done:
			c.cmd = nil
			return fmt.Errorf("start clickhouse: exited before answering (%v); see %s", err, c.logTail())
		case <-ctx.Done():
			_ = c.Kill()
			return fmt.Errorf("start clickhouse: no answer on %s: %w; see %s", url, ctx.Err(), c.logTail())
		case <-tick.C:
		}
	}
}

func (c *ClickHouse) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "log", "error.log"))
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if s == "" {
		b, _ = os.ReadFile(filepath.Join(c.Dir, "log", "stdout.log"))
		s = strings.TrimSpace(string(b))
	}
	return s
}

// Stop sends SIGTERM to the server's PID and waits for it to exit (SIGKILL after 15 s).
func (c *ClickHouse) Stop() error { return c.signal(syscall.SIGTERM, 15*time.Second) }

// Kill sends SIGKILL to the server's PID: a crash, with no chance to flush anything.
func (c *ClickHouse) Kill() error { return c.signal(syscall.SIGKILL, 15*time.Second) }

func (c *ClickHouse) signal(sig syscall.Signal, wait time.Duration) error {
	if c.cmd == nil {
		return nil
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(pid, sig)
	select {
	case <-c.done:
	case <-time.After(wait):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-c.done
	}
	c.cmd = nil
	return nil
}

// ClickHouseT starts a server for test t in t.TempDir() and stops it when the test ends. It
// fails (never skips) the test without the server binary: `make test` installs it.
func ClickHouseT(t testing.TB) *ClickHouse { return clickHouseT(t, StartClickHouse) }

// MTLSClickHouseT is ClickHouseT with a TLS port that requires client certificates (see
// StartMTLSClickHouse).
func MTLSClickHouseT(t testing.TB) *ClickHouse { return clickHouseT(t, StartMTLSClickHouse) }

func clickHouseT(t testing.TB, start func(context.Context, string) (*ClickHouse, error)) *ClickHouse {
	t.Helper()
	if _, err := os.Stat(ClickHouseBinary); err != nil {
		t.Fatalf("%s missing: `make deps` installs it", ClickHouseBinary)
	}
	c, err := start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}
