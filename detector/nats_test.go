package detector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// natsServer starts an embedded NATS server with JetStream and the given security (on a free
// port and in a new folder unless opts name them), shut down when the test ends.
func natsServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	if opts.Port == 0 {
		opts.Port = -1
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	opts.Host, opts.JetStream, opts.NoSigs, opts.NoLog = "127.0.0.1", true, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// sendThrough builds a nats sink from its configuration, as `flowwatch detector` does, and
// publishes one command to JetStream through it.
func sendThrough(t *testing.T, url string, s SinkFile) error {
	t.Helper()
	s.Name, s.Type, s.URL = "nats", "nats", url
	opts, err := s.NATSOptions("sinks[0]")
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewNATSSink(s.Name, s.URL, "", []string{"payments.>"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return sink.Send(ctx, Command{ID: "cmd-" + strings.ReplaceAll(t.Name(), "/", "-"), Subject: "payments.retry", Body: []byte(`{}`)})
}

// NATS sinks authenticate with user and password or an NKey, over TLS with a client
// certificate, against a real nats-server that requires them; wrong credentials fail.
func TestNATSSinkUserNKeyAndTLS(t *testing.T) {
	dir := t.TempDir()
	pki, err := testsvc.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey, err := pki.Issue("nats", true)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := pki.Issue("client", false)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: serverCert, KeyFile: serverKey, CaFile: pki.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := natsServer(t, &server.Options{TLS: true, TLSConfig: tc, TLSVerify: true, TLSTimeout: 2,
		Users: []*server.User{{Username: "flowwatch", Password: "n4ts-pw"}}, Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	url := strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)
	tlsCfg := &TLSConfig{CAFile: pki.CAFile, CertFile: clientCert, KeyFile: clientKey}

	if err := sendThrough(t, url, SinkFile{User: "flowwatch", Password: "n4ts-pw", TLSConfig: tlsCfg}); err != nil {
		t.Fatalf("user and password over TLS: %v", err)
	}
	if err := sendThrough(t, url, SinkFile{NKeySeedFile: seedFile, TLSConfig: tlsCfg}); err != nil {
		t.Fatalf("NKey over TLS: %v", err)
	}
	if err := sendThrough(t, url, SinkFile{User: "flowwatch", Password: "wrong", TLSConfig: tlsCfg}); err == nil {
		t.Fatal("a wrong password published")
	}
	noCert := &TLSConfig{CAFile: pki.CAFile}
	if err := sendThrough(t, url, SinkFile{User: "flowwatch", Password: "n4ts-pw", TLSConfig: noCert}); err == nil {
		t.Fatal("published without a client certificate")
	}
}

// A NATS sink authenticates with a credentials file (user JWT and NKey seed) against a server
// in operator mode, as NGS / Synadia Cloud and decentralized-auth deployments run.
func TestNATSSinkCredentialsFile(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opub, _ := operator.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	oclaims, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	account, _ := nkeys.CreateAccount()
	apub, _ := account.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "flowwatch.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	system, _ := nkeys.CreateAccount() // JetStream in operator mode needs a system account
	spub, _ := system.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	for pub, claims := range map[string]string{apub: ajwt, spub: sjwt} {
		if err := resolver.Store(pub, claims); err != nil {
			t.Fatal(err)
		}
	}
	ns := natsServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{oclaims}, AccountResolver: resolver,
		SystemAccount: spub})

	if err := sendThrough(t, ns.ClientURL(), SinkFile{CredentialsFile: credsFile}); err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	if err := sendThrough(t, ns.ClientURL(), SinkFile{User: "flowwatch", Password: "x"}); err == nil {
		t.Fatal("published without the credentials")
	}
}
