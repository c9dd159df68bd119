package detector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	promconfig "github.com/prometheus/common/config"
)

// NATSSink publishes commands to NATS JetStream with Nats-Msg-Id = the command id, so the
// stream drops a second publish of the same attempt inside its duplicate window.
type NATSSink struct {
	SinkName string
	Stream   string
	Subjects []string
	conn     *nats.Conn
	js       jetstream.JetStream
	ensured  bool
}

// DefaultCommandStream is the JetStream stream commands go to when none is configured.
const DefaultCommandStream = "FLOWWATCH_COMMANDS"

// NewNATSSink connects to NATS, authenticating and securing the connection with opts
// (SinkFile.NATSOptions makes them from a sink's configuration). The connection retries in
// the background, so a NATS that is down at start only delays commands (each send fails and
// is retried) instead of failing start.
func NewNATSSink(name, serverURL, stream string, subjects []string, opts ...nats.Option) (*NATSSink, error) {
	if stream == "" {
		stream = DefaultCommandStream
	}
	opts = append([]nats.Option{nats.Name("flowwatch-detector"), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}, opts...)
	nc, err := nats.Connect(serverURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", redact(serverURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream on %s: %w", redact(serverURL), err)
	}
	return &NATSSink{SinkName: name, Stream: stream, Subjects: subjects, conn: nc, js: js}, nil
}

// Name implements Sink.
func (n *NATSSink) Name() string { return n.SinkName }

// Close closes the connection.
func (n *NATSSink) Close() { n.conn.Close() }

// ensureStream creates the command stream, or adds our subjects to an existing one without
// removing anyone else's (a consumer may have created it first).
func (n *NATSSink) ensureStream(ctx context.Context) error {
	st, err := n.js.Stream(ctx, n.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = n.js.CreateStream(ctx, jetstream.StreamConfig{Name: n.Stream, Subjects: n.Subjects,
			Duplicates: 10 * time.Minute, Storage: jetstream.FileStorage})
		return err
	}
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	have := map[string]bool{}
	for _, s := range cfg.Subjects {
		have[s] = true
	}
	changed := false
	for _, s := range n.Subjects {
		if !have[s] && !coveredBy(cfg.Subjects, s) {
			cfg.Subjects = append(cfg.Subjects, s)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err = n.js.UpdateStream(ctx, cfg)
	return err
}

// coveredBy reports whether one of the stream subjects (which may hold * and > wildcards)
// already takes every message of subject s; adding s then would only overlap.
func coveredBy(streamSubjects []string, s string) bool {
	for _, p := range streamSubjects {
		if subjectCovers(p, s) {
			return true
		}
	}
	return false
}

func subjectCovers(pattern, s string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(s, ".")
	for i, tok := range pt {
		if tok == ">" {
			return i < len(st) // ">" takes one or more tokens, of any kind
		}
		if i >= len(st) {
			return false
		}
		if tok != "*" && tok != st[i] {
			return false
		}
		if tok == "*" && st[i] == ">" {
			return false
		}
	}
	return len(pt) == len(st)
}

// Send implements Sink.
func (n *NATSSink) Send(ctx context.Context, cmd Command) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !n.ensured && len(n.Subjects) > 0 {
		if err := n.ensureStream(ctx); err != nil {
			return fmt.Errorf("ensure stream %s: %w", n.Stream, err)
		}
		n.ensured = true
	}
	subject := cmd.Subject
	if subject == "" {
		subject = "flowwatch.commands"
	}
	msg := nats.NewMsg(subject)
	msg.Data = cmd.Body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(nats.MsgIdHdr, cmd.ID)
	if _, err := n.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s to %s: %w", cmd.ID, subject, err)
	}
	return nil
}

// NATSOptions are the connection options of a nats sink's configuration: its credentials
// file, NKey seed file or user and password, and its TLS settings. Problems name the sink's
// key (key: how the configuration names the sink, e.g. "sinks[0]").
func (s SinkFile) NATSOptions(key string) ([]nats.Option, error) {
	var opts []nats.Option
	var errs []error
	methods := 0
	if s.CredentialsFile != "" {
		methods++
		if err := checkCredentialsFile(s.CredentialsFile); err != nil {
			errs = append(errs, fmt.Errorf("'%s.credentials_file': %w", key, err))
		}
		opts = append(opts, nats.UserCredentials(s.CredentialsFile))
	}
	if s.NKeySeedFile != "" {
		methods++
		opt, err := nats.NkeyOptionFromSeed(s.NKeySeedFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("'%s.nkey_seed_file': %w", key, err))
		}
		opts = append(opts, opt)
	}
	if s.User != "" || s.Password != "" {
		methods++
		if s.User == "" || s.Password == "" {
			errs = append(errs, fmt.Errorf("'%s.user' and '%s.password' go together", key, key))
		}
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	}
	if methods > 1 {
		errs = append(errs, fmt.Errorf("'%s' takes one of credentials_file, nkey_seed_file or user and password", key))
	}
	if s.TLSConfig != nil {
		tc, err := promconfig.NewTLSConfig(s.TLSConfig)
		if err != nil {
			errs = append(errs, fmt.Errorf("'%s.tls_config': %w", key, err))
		} else {
			opts = append(opts, nats.Secure(tc))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}

// checkCredentialsFile reads a NATS credentials file as the client will: a user JWT and an
// NKey seed, each between its BEGIN and END lines.
func checkCredentialsFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if jwt, _ := nkeys.ParseDecoratedJWT(data); strings.Count(jwt, ".") != 2 {
		return fmt.Errorf("%s holds no user JWT", path)
	}
	if _, err := nkeys.ParseDecoratedUserNKey(data); err != nil {
		return fmt.Errorf("%s holds no user NKey seed: %w", path, err)
	}
	return nil
}
